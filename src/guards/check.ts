/**
 * `check`: the detectors and guard policy as a library (no server). The same JSON is printed
 * by `portcullis check` and returned by `POST /v1/guard/check`.
 *
 *   import { check } from 'portcullis';
 *   const r = await check('Ignore previous instructions', { stage: 'request' });
 *   if (r.verdict === 'block') …
 */
import type { GuardsConfigInput, PolicyScope } from './config.js';
import type { GuardEngine } from './engine-core.js';
import { inspect } from './inspect.js';
import { GatewayError } from '../errors.js';
import { validateBody } from '../server/validate.js';
import type { Segment, Stage, VerdictAction } from './types.js';

/** The stage a text is checked as: a user prompt, untrusted content (tool output, documents), or a model response. */
export type CheckStage = 'request' | 'untrusted' | 'response';

/** Detector families `check` can be limited to. */
export const CHECK_DETECTORS = ['injection', 'pii', 'secrets', 'regex', 'prompt-guard', 'llama-guard'] as const;

/** A chat-style message given to `check`. */
export interface CheckMessage {
  role: string;
  content: unknown;
  name?: string;
}

/** Options of `check`. */
export interface CheckOptions {
  /** Default `request`. */
  stage?: CheckStage;
  /** Limit to these detector families (default: every guard the config enables). */
  detectors?: readonly string[];
  /** A `guards:` config section (default policy when absent). Ignored when `engine` is given. */
  config?: GuardsConfigInput;
  /** A pre-built engine (reuse it: building one compiles every guard). */
  engine?: GuardEngine;
  /** Tenant name whose overrides apply. */
  tenant?: string;
  /** Tier whose overrides apply (before the tenant's). */
  tier?: string;
  /** API key id whose overrides apply (last). */
  keyId?: string;
}

/** One finding in the check output (offsets into the segment's text; `segment` indexes messages). */
export interface CheckFinding {
  detector: string;
  category: string;
  start: number;
  end: number;
  score: number;
  segment?: number;
}

/** The result of `check` (one JSONL output line). */
export interface CheckResult {
  flagged: boolean;
  verdict: VerdictAction;
  categories: string[];
  score: number;
  findings: CheckFinding[];
}

/** Thrown for bad `check` arguments (unknown detector, bad stage). */
export class CheckInputError extends Error {
  /** The input field at fault (`input[0].content`, `detectors` …), when one is. */
  readonly param: string | undefined;
  constructor(message: string, param?: string) {
    super(message);
    this.name = 'CheckInputError';
    this.param = param;
  }
}

let defaultEngine: GuardEngine | undefined;
const engines = new WeakMap<object, GuardEngine>();

/** The engine of a call: the given one, or one built from `config` (the detectors load on this first use). */
async function engineFor(opts: CheckOptions): Promise<GuardEngine> {
  if (opts.engine) return opts.engine;
  const { createGuardEngine } = await import('./engine.js');
  if (!opts.config) return (defaultEngine ??= createGuardEngine({}));
  let e = engines.get(opts.config);
  if (!e) {
    e = createGuardEngine(opts.config);
    engines.set(opts.config, e);
  }
  return e;
}

/** Guard names selected by detector families. */
export function guardNamesFor(engine: GuardEngine, detectors: readonly string[] | undefined, stage: Stage, scope?: PolicyScope): Set<string> | undefined {
  if (!detectors) return undefined;
  const all = engine.pipelineFor(scope).byStage.get(stage) ?? [];
  const out = new Set<string>();
  for (const d of detectors) {
    if (!(CHECK_DETECTORS as readonly string[]).includes(d)) throw new CheckInputError(`unknown detector '${d}' (expected one of ${CHECK_DETECTORS.join(', ')})`, 'detectors');
    for (const g of all) {
      if (g.name === d || (d === 'regex' && g.name.startsWith('regex:')) || g.name === `judge:${d}` || (d === 'injection' && g.name === 'spotlight')) out.add(g.name);
    }
  }
  return out;
}

/**
 * Messages the detectors can read, checked as the proxy checks a chat request: content the check
 * cannot read (an object, a number) is an error naming it, not an `allow` verdict on text nobody
 * looked at.
 */
function readableMessages(input: readonly unknown[]): void {
  if (input.length === 0) return;
  try {
    validateBody('chat', { model: 'guard-check', messages: input });
  } catch (e) {
    // The proxy names the field `messages[i]…`; here it is `input[i]…`.
    if (e instanceof GatewayError) throw new CheckInputError(e.message.replaceAll("'messages", "'input"), e.param?.replace(/^messages/, 'input'));
    throw e;
  }
}

/** Checks a text or a list of messages with the same detectors and policy as the gateway. */
export async function check(input: string | readonly CheckMessage[], opts: CheckOptions = {}): Promise<CheckResult> {
  const stage = opts.stage ?? 'request';
  if (!['request', 'untrusted', 'response'].includes(stage)) throw new CheckInputError(`unknown stage '${String(stage)}' (expected request|untrusted|response)`);
  const engine = await engineFor(opts);
  let segments: Segment[];
  let inspected;
  if (typeof input === 'string') {
    inspected = inspect('text', { text: input });
  } else if (Array.isArray(input)) {
    readableMessages(input);
    inspected = inspect('chat', { messages: input as unknown[] });
  } else throw new CheckInputError('input must be a string or an array of messages');
  segments = inspected.segments;
  if (stage === 'untrusted') segments = segments.map((s) => (s.role === 'system' || s.role === 'developer' ? s : { ...s, role: 'retrieved', trust: 'untrusted' }));
  if (stage === 'response') segments = segments.map((s) => (s.role === 'user' && typeof input === 'string' ? { ...s, role: 'assistant' } : s));
  const scope: PolicyScope = { ...(opts.tenant !== undefined ? { tenantName: opts.tenant } : {}), ...(opts.tier !== undefined ? { tier: opts.tier } : {}), ...(opts.keyId !== undefined ? { keyId: opts.keyId } : {}) };
  engine.checkLimits({ ...inspected, segments }, scope);
  const pipelineStage: Stage = stage === 'response' ? 'response' : 'request';
  const only = guardNamesFor(engine, opts.detectors, pipelineStage, scope);
  const outcome = await engine.pipelineFor(scope).run(pipelineStage, segments, { api: typeof input === 'string' ? 'text' : 'chat', ...(opts.tenant ? { tenant: opts.tenant } : {}), ...(only ? { only } : {}) });
  const index = new Map(segments.map((s, i) => [s.id, i]));
  const findings: CheckFinding[] = outcome.findings.map((f) => ({
    detector: f.detector,
    category: f.category,
    start: f.start,
    end: f.end,
    score: f.score,
    ...(typeof input === 'string' ? {} : { segment: index.get(f.segment) ?? 0 }),
  }));
  const score = Math.max(outcome.score, ...findings.map((f) => f.score), 0);
  return { flagged: outcome.action !== 'allow', verdict: outcome.action, categories: outcome.categories, score: Math.round(score * 1000) / 1000, findings };
}

