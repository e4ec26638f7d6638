/**
 * The authorization decision: one function over layered scopes (installation defaults →
 * tier template → tenant → key; every layer narrows), plus data boundaries and optional
 * Cedar policies. Returns allow/deny with a machine-readable reason and the layer that decided.
 */
import { globToRegExp } from '../config/glob.js';
import type { Principal } from '../identity/types.js';
import type { CedarEvaluator } from './cedar.js';
import type { PolicyConfig, TiersConfig } from './config.js';
import { parseScopes, type Scopes } from './scopes.js';

/** What is being asked for. */
export interface AuthzRequest {
  /** Operation name (`chat`, `embeddings`, `models:list`, `files`, …). */
  operation: string;
  /** Requested model, when the operation has one. */
  model?: string;
  /** Tool names the request offers to the model. */
  tools?: string[];
  /** Requested output token cap (max_tokens / max_output_tokens), when present. */
  maxOutputTokens?: number;
  /** Extra Cedar context (e.g. `stream`). */
  context?: Record<string, string | number | boolean>;
}

/** Machine-readable denial reasons. */
export type DenyReason =
  | 'operation_not_allowed'
  | 'model_not_allowed'
  | 'model_denied'
  | 'tool_not_allowed'
  | 'max_output_tokens_exceeded'
  | 'data_boundary'
  | 'unknown_tier'
  | 'invalid_scopes'
  | 'cedar_denied'
  | 'cedar_error';

/** The decision. `layer` names the scope layer (or `cedar`) that denied. */
export type Decision =
  | {
      allow: true;
      /** Smallest output-token cap over all layers, if any. */
      maxOutputTokens?: number;
      /** The model's data-boundary label, if it has one. */
      dataBoundary?: string;
      /** Layers consulted, outermost first. */
      layers: string[];
    }
  | { allow: false; reason: DenyReason; layer: string; detail: string; layers: string[] };

interface Compiled {
  allow?: RegExp[];
  deny?: RegExp[];
  ops?: RegExp[];
  tools?: RegExp[];
  maxOutputTokens?: number;
  boundaries?: Set<string>;
}

interface Layer {
  name: string;
  c: Compiled;
}

const compileCache = new WeakMap<object, Compiled>();

function compile(s: Scopes): Compiled {
  const c: Compiled = {};
  if (s.models?.allow) c.allow = s.models.allow.map(globToRegExp);
  if (s.models?.deny) c.deny = s.models.deny.map(globToRegExp);
  if (s.operations) c.ops = s.operations.map(globToRegExp);
  if (s.tools) c.tools = s.tools.map(globToRegExp);
  if (s.maxOutputTokens !== undefined) c.maxOutputTokens = s.maxOutputTokens;
  if (s.dataBoundaries) c.boundaries = new Set(s.dataBoundaries);
  return c;
}

/** Compiles stored (untrusted JSON) scopes once per object; throws on invalid scopes. */
function compileStored(raw: unknown): Compiled {
  if (raw && typeof raw === 'object') {
    const hit = compileCache.get(raw);
    if (hit) return hit;
    const c = compile(parseScopes(raw));
    compileCache.set(raw, c);
    return c;
  }
  return compile(parseScopes(raw));
}

const any = (res: RegExp[], s: string) => res.some((r) => r.test(s));

/** The policy engine. */
export interface PolicyEngine {
  /** Decides one request. */
  authorize(p: Principal, req: AuthzRequest): Decision;
  /** True when the principal may use `model` for some operation (for /v1/models). */
  modelVisible(p: Principal, model: string): boolean;
  /** The tier names configured. */
  tiers(): string[];
  /** The effective tier of a principal (its own, else the default tier). */
  tierOf(p: Principal): string | undefined;
  /** Whether Cedar policies are loaded. */
  readonly cedar: boolean;
}

/** Creates the engine from config (validated and frozen). */
export function createPolicyEngine(cfg: { tiers: TiersConfig; policy: PolicyConfig }, cedar?: CedarEvaluator): PolicyEngine {
  const defaults = compile(cfg.policy.defaults);
  const tiers = new Map(Object.entries(cfg.tiers).map(([k, v]) => [k, compile(v)]));
  if (cfg.policy.defaultTier && !tiers.has(cfg.policy.defaultTier)) throw new Error(`policy.defaultTier: unknown tier "${cfg.policy.defaultTier}" (expected one of ${[...tiers.keys()].join('|') || 'none configured'})`);
  const boundaries = cfg.policy.dataBoundaries.map((b) => ({ re: globToRegExp(b.model), label: b.label }));
  const boundaryOf = (model: string) => boundaries.find((b) => b.re.test(model))?.label;
  const tierOf = (p: Principal) => p.tier ?? cfg.policy.defaultTier;

  function layersOf(p: Principal): Layer[] | { reason: DenyReason; layer: string; detail: string } {
    const out: Layer[] = [{ name: 'defaults', c: defaults }];
    const tier = tierOf(p);
    if (tier !== undefined) {
      const t = tiers.get(tier);
      if (!t) return { reason: 'unknown_tier', layer: `tier:${tier}`, detail: `tier "${tier}" is not configured` };
      out.push({ name: `tier:${tier}`, c: t });
    }
    try {
      if (p.tenantScopes != null) out.push({ name: 'tenant', c: compileStored(p.tenantScopes) });
    } catch (e) {
      return { reason: 'invalid_scopes', layer: 'tenant', detail: (e as Error).message };
    }
    try {
      if (p.scopes != null) out.push({ name: 'key', c: compileStored(p.scopes) });
    } catch (e) {
      return { reason: 'invalid_scopes', layer: 'key', detail: (e as Error).message };
    }
    return out;
  }

  function check(layers: Layer[], req: AuthzRequest, boundary: string | undefined): Decision {
    const names = layers.map((l) => l.name);
    const deny = (reason: DenyReason, layer: string, detail: string): Decision => ({ allow: false, reason, layer, detail, layers: names });
    let cap: number | undefined;
    for (const { name, c } of layers) {
      if (c.ops && !any(c.ops, req.operation)) return deny('operation_not_allowed', name, `operation "${req.operation}" is not in this layer's operations`);
      if (req.model !== undefined) {
        if (c.deny && any(c.deny, req.model)) return deny('model_denied', name, `model "${req.model}" matches a denied pattern`);
        if (c.allow && !any(c.allow, req.model)) return deny('model_not_allowed', name, `model "${req.model}" matches no allowed pattern`);
        if (boundary !== undefined && c.boundaries && !c.boundaries.has(boundary)) return deny('data_boundary', name, `model "${req.model}" is in data boundary "${boundary}", not allowed here`);
      }
      if (c.tools && req.tools) {
        const bad = req.tools.find((t) => !any(c.tools!, t));
        if (bad !== undefined) return deny('tool_not_allowed', name, `tool "${bad.slice(0, 100)}" is not allowed`);
      }
      if (c.maxOutputTokens !== undefined) {
        cap = cap === undefined ? c.maxOutputTokens : Math.min(cap, c.maxOutputTokens);
        if (req.maxOutputTokens !== undefined && req.maxOutputTokens > c.maxOutputTokens) {
          return deny('max_output_tokens_exceeded', name, `requested ${req.maxOutputTokens} output tokens, the limit is ${c.maxOutputTokens}`);
        }
      }
    }
    return { allow: true, layers: names, ...(cap !== undefined ? { maxOutputTokens: cap } : {}), ...(boundary !== undefined ? { dataBoundary: boundary } : {}) };
  }

  return {
    cedar: cedar !== undefined,
    authorize(p, req) {
      const layers = layersOf(p);
      if (!Array.isArray(layers)) return { allow: false, ...layers, layers: [] };
      const boundary = req.model !== undefined ? boundaryOf(req.model) : undefined;
      const d = check(layers, req, boundary);
      if (!d.allow || !cedar) return d;
      const c = cedar.evaluate(p, req, { tier: tierOf(p), dataBoundary: boundary });
      if (c.decision === 'allow') return { ...d, layers: [...d.layers, 'cedar'] };
      return { allow: false, reason: c.error ? 'cedar_error' : 'cedar_denied', layer: 'cedar', detail: c.detail, layers: [...d.layers, 'cedar'] };
    },
    modelVisible(p, model) {
      const layers = layersOf(p);
      if (!Array.isArray(layers)) return false;
      const boundary = boundaryOf(model);
      for (const { c } of layers) {
        if (c.deny && any(c.deny, model)) return false;
        if (c.allow && !any(c.allow, model)) return false;
        if (boundary !== undefined && c.boundaries && !c.boundaries.has(boundary)) return false;
      }
      return true;
    },
    tiers: () => [...tiers.keys()],
    tierOf,
  };
}

/** The operation a proxied API maps to. */
export function operationOf(api: string): string {
  return api;
}

/** Tool names a request body offers to the model (OpenAI chat/responses, Anthropic messages). */
export function toolsOf(api: string, body: Record<string, unknown>): string[] | undefined {
  const out: string[] = [];
  const tools = body.tools;
  if (Array.isArray(tools)) {
    for (const t of tools) {
      if (!t || typeof t !== 'object') continue;
      const o = t as Record<string, unknown>;
      const fn = o.function as Record<string, unknown> | undefined;
      const name = api === 'chat' ? (fn?.name ?? o.name ?? o.type) : (o.name ?? o.type);
      if (typeof name === 'string') out.push(name);
      else out.push(''); // an unnamed tool matches no allow-list
    }
  }
  if (Array.isArray(body.functions)) {
    for (const f of body.functions) out.push(typeof (f as Record<string, unknown>)?.name === 'string' ? ((f as Record<string, unknown>).name as string) : '');
  }
  return out.length ? out : undefined;
}

/** The output-token cap a request asks for, by API. */
export function maxOutputOf(api: string, body: Record<string, unknown>): number | undefined {
  const pick = (...ks: string[]) => {
    for (const k of ks) if (typeof body[k] === 'number') return body[k] as number;
    return undefined;
  };
  if (api === 'chat') return pick('max_completion_tokens', 'max_tokens');
  if (api === 'responses') return pick('max_output_tokens');
  if (api === 'completions' || api === 'messages') return pick('max_tokens');
  return undefined;
}
