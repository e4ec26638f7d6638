/**
 * Agent and tool safety. Request side: the offered tools against the allow-list, and their
 * descriptions/schemas scanned for injection (tool poisoning); tool results with injection
 * findings become taint sources. Response side: each model-proposed call validated (offered,
 * allowed, JSON, schema), its argument values scanned (injection, secrets, data-carrying URLs),
 * SQL tools through the SQL guard (LIMIT rewritten into the arguments), and calls that need a
 * human (configured tools, SQL writes, tainted arguments) marked for approval.
 */
import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { scanOutputLinks } from '../../detect/exfil/index.js';
import { detectInjection } from '../../detect/injection/index.js';
import { detectSecrets } from '../../detect/secrets/index.js';
import { checkSql } from '../../detect/sql/index.js';
import { detectTaint, toolAllowed, toolArgumentStrings, validateToolCall, type OfferedTool } from '../../detect/tools/index.js';
import type { Finding } from '../../detect/types.js';
import type { ToolGuardsConfig } from '../response/config.js';

/** A tool offered in a request, normalised across APIs. */
export interface OfferedToolInfo {
  /** Position in the body's `tools` array. */
  index: number;
  name: string;
  description: string;
  schema?: object;
  /** The raw entry (for validateToolCall). */
  raw: OfferedTool;
}

/** Lists the function tools a request body offers (chat, responses, messages). Built-in tools without a name are skipped. */
export function offeredTools(body: Record<string, unknown>): OfferedToolInfo[] {
  const tools = Array.isArray(body.tools) ? body.tools : [];
  const out: OfferedToolInfo[] = [];
  tools.forEach((t, index) => {
    if (!t || typeof t !== 'object') return;
    const o = t as Record<string, any>;
    const fn = o.function && typeof o.function === 'object' ? o.function : undefined;
    const name = fn?.name ?? o.name;
    if (typeof name !== 'string') return;
    const description = String(fn?.description ?? o.description ?? '');
    const schema = fn?.parameters ?? o.parameters ?? o.input_schema;
    out.push({ index, name, description, ...(schema && typeof schema === 'object' ? { schema } : {}), raw: fn ? { function: { name, ...(schema ? { parameters: schema } : {}) } } : { name, ...(schema ? { parameters: schema } : {}) } });
  });
  return out;
}

/** Injection bands of untrusted texts (tool descriptions, tool results) by hash: resent history is not rescanned. */
const bandCache = new LRUCache<string, { band: 'allow' | 'uncertain' | 'act'; score: number }>({ max: 10_000 });

function untrustedBand(text: string): { band: 'allow' | 'uncertain' | 'act'; score: number } {
  const k = createHash('sha256').update(text).digest('base64url');
  let v = bandCache.get(k);
  if (!v) {
    const r = detectInjection(text, { trust: 'untrusted' });
    v = { band: r.band, score: r.score };
    bandCache.set(k, v);
  }
  return v;
}

/** Finds tool poisoning: injection in a tool's description or schema text (descriptions of parameters included). */
export function detectToolPoisoning(tool: OfferedToolInfo): Finding[] {
  const text = `${tool.description}\n${tool.schema ? JSON.stringify(tool.schema).slice(0, 64_000) : ''}`;
  if (text.trim().length < 12) return [];
  const r = untrustedBand(text);
  if (r.band !== 'act') return [];
  return [{ detector: 'tools.poisoning', category: 'tool_poisoning', severity: 'high', score: r.score, start: 0, end: text.length, reason: 'tool description or schema carries instructions' }];
}

/** Texts of tool results that had injection findings (taint sources), capped in number and size. */
export function taintSources(toolResults: readonly string[], maxSources = 32): string[] {
  const out: string[] = [];
  for (const t of toolResults) {
    if (out.length >= maxSources) break;
    if (t.length < 16) continue;
    if (untrustedBand(t).band !== 'allow') out.push(t.slice(0, 100_000));
  }
  return out;
}

/** What the tool guard knows about one request. */
export interface ToolCallContext {
  cfg: ToolGuardsConfig;
  offered: readonly OfferedTool[];
  /** Allow-list from `guards.tools.allow` (the policy scopes were enforced on the offered tools already). */
  allowed?: readonly string[];
  /** Texts of flagged tool results (taint sources). */
  tainted: readonly string[];
  /** Hosts allowed in URLs (the response exfil allow-list). */
  allowHosts: readonly string[];
}

/** The decision on one model-proposed tool call. */
export type ToolCallDecision =
  | { kind: 'allow'; arguments: string; findings: Finding[]; rewritten: boolean }
  | { kind: 'violation'; findings: Finding[]; categories: string[] }
  | { kind: 'approval'; arguments: string; findings: Finding[]; categories: string[]; reason: 'requires_approval' | 'sql_write' | 'taint' };

function cats(fs: readonly Finding[]): string[] {
  return [...new Set(fs.map((f) => f.category))];
}

/** Scans argument string values: injection (trusted thresholds), secrets, data-carrying URLs to hosts not allowed. */
export function scanArguments(args: unknown, allowHosts: readonly string[]): Finding[] {
  const out: Finding[] = [];
  for (const { value } of toolArgumentStrings(args, { maxStrings: 2_000 })) {
    if (value.length < 8) continue;
    const inj = detectInjection(value);
    if (inj.band === 'act') out.push({ detector: 'tools.arguments', category: 'argument_injection', severity: 'high', score: inj.score, start: 0, end: 0, reason: 'tool argument carries instructions' });
    for (const s of detectSecrets(value)) out.push({ ...s, detector: 'tools.arguments', category: `argument_secret:${s.category}`, start: 0, end: 0, reason: 'tool argument carries a secret' });
    if (/[a-z][a-z0-9+.-]*:|www\./i.test(value)) {
      for (const f of scanOutputLinks(value, { allowHosts, maxUrls: 1_000 }).findings) {
        if (f.category === 'data_exfiltration' || f.category === 'char_by_char' || f.category === 'dangerous_scheme') out.push({ ...f, detector: 'tools.arguments', category: `argument_${f.category}`, start: 0, end: 0 });
      }
    }
  }
  return out;
}

/** Checks one model-proposed tool call (synchronous; approvals are resolved by the caller). */
export function checkToolCall(call: { name: string; arguments: string }, c: ToolCallContext): ToolCallDecision {
  const cfg = c.cfg;
  const findings = validateToolCall(call, c.offered, c.allowed);
  if (findings.length > 0) return { kind: 'violation', findings, categories: cats(findings) };
  let args: Record<string, unknown>;
  try {
    args = call.arguments.trim() === '' ? {} : (JSON.parse(call.arguments) as Record<string, unknown>);
  } catch {
    const f: Finding[] = [{ detector: 'tools.call', category: 'invalid_json', severity: 'high', score: 0.9, start: 0, end: 0, reason: 'arguments are not valid JSON' }];
    return { kind: 'violation', findings: f, categories: cats(f) };
  }
  let argText = call.arguments;
  let rewritten = false;
  let approval: 'requires_approval' | 'sql_write' | 'taint' | undefined;
  const sql = cfg.sql[call.name];
  if (sql) {
    const q = args[sql.argument];
    if (typeof q !== 'string') {
      const f: Finding[] = [{ detector: 'sql.guard', category: 'sql_missing', severity: 'high', score: 0.9, start: 0, end: 0, reason: `argument ${sql.argument} is not a string` }];
      return { kind: 'violation', findings: f, categories: cats(f) };
    }
    const r = checkSql(q, {
      dialect: sql.dialect,
      allowedTables: sql.allowedTables,
      ...(sql.allowedColumns ? { allowedColumns: sql.allowedColumns } : {}),
      maxLimit: sql.maxLimit,
      allowWrites: sql.allowWrites,
      allowComments: sql.allowComments,
      ...(sql.deniedFunctions ? { deniedFunctions: sql.deniedFunctions } : {}),
    });
    if (!r.ok && !r.requiresApproval) return { kind: 'violation', findings: r.findings, categories: cats(r.findings) };
    if (r.rewritten !== undefined && r.rewritten !== q) {
      args = { ...args, [sql.argument]: r.rewritten };
      argText = JSON.stringify(args);
      rewritten = true;
    }
    if (r.requiresApproval) approval = 'sql_write';
    findings.push(...r.findings);
  }
  if (cfg.scanArguments) {
    const fs = scanArguments(args, c.allowHosts);
    if (fs.length > 0) return { kind: 'violation', findings: fs, categories: cats(fs) };
  }
  if (cfg.taint.enabled && c.tainted.length > 0) {
    const t = detectTaint(call.arguments, c.tainted, { minChars: cfg.taint.minChars });
    if (t.length > 0) {
      if (cfg.taint.action === 'block') return { kind: 'violation', findings: t, categories: cats(t) };
      findings.push(...t);
      approval ??= 'taint';
    }
  }
  if (!approval && cfg.requireApproval.length > 0 && toolAllowed(call.name, cfg.requireApproval)) approval = 'requires_approval';
  if (approval) return { kind: 'approval', arguments: argText, findings, categories: [approval, ...cats(findings)], reason: approval };
  return { kind: 'allow', arguments: argText, findings, rewritten };
}
