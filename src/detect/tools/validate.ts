/**
 * Validation of model-proposed tool calls: the name was offered and is allowed, the arguments
 * are JSON and match the tool's JSON Schema (ajv, compiled once per schema, bounded cache).
 */
import { createHash } from 'node:crypto';
import AjvModule from 'ajv';
import type { ValidateFunction, Options as AjvOptions } from 'ajv';
import { LRUCache } from 'lru-cache';
import safeRegex from 'safe-regex2';
import type { Finding, Severity } from '../types.js';

// ajv ships CommonJS with a default export; NodeNext sees the module object.
interface AjvLike {
  compile(schema: object): ValidateFunction;
}
const Ajv = ((AjvModule as unknown as { default?: unknown }).default ?? AjvModule) as unknown as new (opts: AjvOptions) => AjvLike;

/** A tool as offered in a request: OpenAI (`{type, function: {name, parameters}}`), flat, or Anthropic (`input_schema`). */
export type OfferedTool =
  | { name: string; parameters?: object; input_schema?: object }
  | { type?: string; function: { name: string; parameters?: object } };

/** A tool call proposed by the model. */
export interface ToolCall {
  name: string;
  /** The arguments as the model produced them (a JSON string). */
  arguments: string;
}

/** Limits applied while validating. */
export interface ToolValidationOptions {
  /** Largest schema accepted, in JSON characters. Default 65 536. */
  maxSchemaChars?: number;
  /** Largest arguments string accepted. Default 1 000 000. */
  maxArgumentChars?: number;
}

const cache = new LRUCache<string, ValidateFunction | { error: string }>({ max: 256 });
let ajv: AjvLike | null = null;

function getAjv(): AjvLike {
  if (!ajv) ajv = new Ajv({ strict: false, allErrors: false, logger: false, validateSchema: true, addUsedSchema: false, loopRequired: 200, loopEnum: 200 });
  return ajv;
}

function finding(category: string, severity: Severity, reason: string, end = 0): Finding {
  return { detector: 'tools.call', category, severity, score: severity === 'critical' ? 1 : 0.9, start: 0, end, reason };
}

function normalizeTool(t: OfferedTool): { name: string; schema: object | undefined } {
  if ('function' in t && t.function) return { name: t.function.name, schema: t.function.parameters };
  const flat = t as { name: string; parameters?: object; input_schema?: object };
  return { name: flat.name, schema: flat.parameters ?? flat.input_schema };
}

/** Whether `name` matches an allow-list entry (exact, or a trailing `*` prefix glob). */
export function toolAllowed(name: string, allowed: readonly string[]): boolean {
  return allowed.some((a) => (a.endsWith('*') ? name.startsWith(a.slice(0, -1)) : a === name));
}

/** Finds regex patterns in a schema that could backtrack catastrophically. */
function unsafePatterns(schema: unknown, depth = 0): number {
  if (depth > 64 || schema === null || typeof schema !== 'object') return 0;
  let n = 0;
  for (const [k, v] of Object.entries(schema as Record<string, unknown>)) {
    if (k === 'pattern' && typeof v === 'string' && !safeRegex(v)) n++;
    if (k === 'patternProperties' && v && typeof v === 'object') for (const p of Object.keys(v)) if (!safeRegex(p)) n++;
    n += unsafePatterns(v, depth + 1);
  }
  return n;
}

/** Compiles (or fetches from the bounded cache) the validator of one schema. */
function compile(schema: object, maxChars: number): ValidateFunction | { error: string } {
  const json = JSON.stringify(schema);
  if (json.length > maxChars) return { error: `schema larger than ${maxChars} characters` };
  const key = createHash('sha256').update(json).digest('base64url');
  const hit = cache.get(key);
  if (hit) return hit;
  let result: ValidateFunction | { error: string };
  if (unsafePatterns(schema) > 0) {
    result = { error: 'schema has a regex pattern that can backtrack catastrophically' };
  } else {
    try {
      result = getAjv().compile(schema);
    } catch (e) {
      result = { error: `schema does not compile (${e instanceof Error ? e.message.slice(0, 120) : 'error'})` };
    }
  }
  cache.set(key, result);
  return result;
}

/**
 * Validates one model-proposed tool call against the tools the request offered and the
 * caller's allow-list; returns findings (empty when the call is valid).
 */
export function validateToolCall(call: ToolCall, offered: readonly OfferedTool[], allowed?: readonly string[], opts: ToolValidationOptions = {}): Finding[] {
  const findings: Finding[] = [];
  const tools = offered.map(normalizeTool);
  const tool = tools.find((t) => t.name === call.name);
  if (!tool) findings.push(finding('tool_not_offered', 'critical', 'the model called a tool the request did not offer'));
  if (allowed && !toolAllowed(call.name, allowed)) findings.push(finding('tool_not_allowed', 'critical', 'the caller may not use this tool'));
  const maxArgs = opts.maxArgumentChars ?? 1_000_000;
  const raw = call.arguments ?? '';
  if (raw.length > maxArgs) {
    findings.push(finding('arguments_too_large', 'high', `arguments longer than ${maxArgs} characters`, raw.length));
    return findings;
  }
  let args: unknown;
  try {
    args = raw.trim() === '' ? {} : JSON.parse(raw);
  } catch {
    findings.push(finding('invalid_json', 'high', 'arguments are not valid JSON', raw.length));
    return findings;
  }
  if (args === null || typeof args !== 'object' || Array.isArray(args)) {
    findings.push(finding('arguments_not_object', 'high', 'arguments are not a JSON object', raw.length));
    return findings;
  }
  if (tool?.schema && typeof tool.schema === 'object') {
    const v = compile(tool.schema, opts.maxSchemaChars ?? 65_536);
    if ('error' in v) {
      findings.push(finding('schema_rejected', 'high', v.error));
    } else if (!v(args)) {
      for (const err of (v.errors ?? []).slice(0, 5)) {
        const path = err.instancePath || '/';
        findings.push(finding('schema_violation', 'high', `arguments ${path}: ${err.message ?? err.keyword}`.slice(0, 200), raw.length));
      }
    }
  }
  return findings;
}

/** Number of compiled schemas currently cached (for metrics and tests). */
export function toolSchemaCacheSize(): number {
  return cache.size;
}
