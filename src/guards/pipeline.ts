/**
 * The guard pipeline: runs the guards registered for a stage, cheapest first, one after the
 * other (each sees the segments as earlier transforms left them), stops at the first block,
 * enforces timeouts and failure modes, and records every verdict with its latency.
 *
 * Failure semantics: a guard that throws or exceeds `timeoutMs` is recorded with `error`.
 * Fail-open: the run continues as if the guard allowed. Fail-closed (the default of every
 * built-in guard): the run stops with `action: 'block', failed: true`; the gateway answers
 * 503 `guard_unavailable` (PCL_GUARD_FAILED) — not a content-policy 400, because nothing
 * was found, the check just could not be completed — and never forwards the request.
 * Shadow guards are evaluated and recorded but never change the outcome, even when they fail.
 */
import { GatewayError } from '../errors.js';
import { COSTS, STAGES, type Guard, type GuardInput, type GuardRecord, type PipelineOutcome, type RunScratch, type Segment, type SegmentFinding, type Stage, type Verdict, type VerdictAction } from './types.js';

/** What a pipeline run needs besides the segments. */
export interface RunOptions {
  /** The API of the body (`chat`, `messages` …, or `text`). */
  api: string;
  tenant?: string;
  conversationId?: string;
  requestId?: string;
  /** Per-request state (`ctx.state`): records are appended to `state.guards`. */
  state?: Record<string, unknown>;
  /** Only run guards with these names (per-route lists); undefined runs all. */
  only?: ReadonlySet<string>;
  /** Pre-filled scratch (e.g. a conversation vault's mapping). */
  run?: RunScratch;
  /** Aborts the whole run (client went away). */
  signal?: AbortSignal;
}

/** A set of guards grouped by stage. */
export interface Pipeline {
  /** Guards per stage, in run order. */
  readonly byStage: ReadonlyMap<Stage, readonly Guard[]>;
  /** Runs the guards of `stage` over `segments`. Never throws for guard failures. */
  run(stage: Stage, segments: readonly Segment[], opts: RunOptions): Promise<PipelineOutcome>;
}

/** Verdict actions by strength: block > transform > flag > allow. */
export const ACTION_RANK: Readonly<Record<VerdictAction, number>> = { allow: 0, flag: 1, transform: 2, block: 3 };
const COST_RANK = new Map<string, number>(COSTS.map((c, i) => [c, i]));

/** Thrown when a guard is registered for a stage that does not exist or is malformed. */
export class GuardRegistrationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'GuardRegistrationError';
  }
}

/** Checks a guard's declared shape once, at registration. */
export function validateGuard(g: Guard): void {
  if (!g || typeof g.name !== 'string' || !/^[a-z0-9][a-z0-9_.:-]{0,63}$/i.test(g.name)) throw new GuardRegistrationError(`guard name ${JSON.stringify(g?.name)} is invalid (letters, digits, . _ : -; at most 64)`);
  if (!Array.isArray(g.stages) || g.stages.length === 0) throw new GuardRegistrationError(`guard ${g.name}: stages must list at least one of ${STAGES.join('|')}`);
  for (const s of g.stages) if (!(STAGES as readonly string[]).includes(s)) throw new GuardRegistrationError(`guard ${g.name}: unknown stage '${String(s)}' (expected one of ${STAGES.join('|')})`);
  if (!COST_RANK.has(g.cost)) throw new GuardRegistrationError(`guard ${g.name}: unknown cost '${String(g.cost)}' (expected one of ${COSTS.join('|')})`);
  if (!(Number.isFinite(g.timeoutMs) && g.timeoutMs > 0)) throw new GuardRegistrationError(`guard ${g.name}: timeoutMs must be a positive number`);
  if (g.failMode !== 'open' && g.failMode !== 'closed') throw new GuardRegistrationError(`guard ${g.name}: failMode must be open or closed`);
  if (g.mode !== 'enforce' && g.mode !== 'shadow') throw new GuardRegistrationError(`guard ${g.name}: mode must be enforce or shadow`);
  if (typeof g.check !== 'function') throw new GuardRegistrationError(`guard ${g.name}: check must be a function`);
}

/** Creates an empty run scratch. */
export function newRunScratch(): RunScratch {
  return { pseudonyms: new Map(), systemNotes: [] };
}

class GuardTimeout extends Error {}

/**
 * What one guard is given (GuardInput). Its AbortSignal is created only when the guard reads
 * `signal` (most guards are synchronous detectors that never do): it then follows the outer
 * signal and is aborted when the guard's timeout fires. A class, so that the lazy getter costs no
 * per-call closures or object spread.
 */
class GuardCall implements GuardInput {
  #ac: AbortController | undefined;
  #finished = false;
  #timedOut: GuardTimeout | undefined;
  readonly #outer: AbortSignal | undefined;
  #onOuter: (() => void) | undefined;
  constructor(
    readonly stage: Stage,
    readonly segments: readonly Segment[],
    readonly api: string,
    readonly tenant: string | undefined,
    readonly conversationId: string | undefined,
    readonly requestId: string | undefined,
    readonly run: RunScratch,
    outer: AbortSignal | undefined,
  ) {
    this.#outer = outer;
  }
  get signal(): AbortSignal {
    if (!this.#ac) {
      this.#ac = new AbortController();
      if (this.#timedOut) this.#ac.abort(this.#timedOut);
      else if (this.#outer?.aborted) this.#ac.abort(this.#outer.reason);
      else if (!this.#finished && this.#outer) {
        const ac = this.#ac;
        const outer = this.#outer;
        this.#onOuter = () => ac.abort(outer.reason);
        outer.addEventListener('abort', this.#onOuter, { once: true });
      }
    }
    return this.#ac.signal;
  }
  /** The timeout fired: abort the signal if the guard holds one. */
  timeout(e: GuardTimeout): void {
    this.#timedOut = e;
    this.#ac?.abort(e);
  }
  /** The check is over: stop following the outer signal. */
  done(): void {
    this.#finished = true;
    if (this.#onOuter) this.#outer?.removeEventListener('abort', this.#onOuter);
  }
}

/**
 * Runs one guard's check under its timeout: the verdict itself when the guard answered
 * synchronously (no timer, no promise), else a promise of it that rejects on a throw or timeout.
 */
function checkWithTimeout(g: Guard, input: GuardCall): Verdict | Promise<Verdict> {
  let result: Verdict | Promise<Verdict>;
  try {
    result = g.check(input);
  } catch (e) {
    input.done();
    throw e;
  }
  if (!(result instanceof Promise)) {
    input.done();
    return result;
  }
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    result,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        input.timeout(new GuardTimeout(`guard ${g.name} timed out`));
        reject(new GuardTimeout(`guard ${g.name} timed out`));
      }, g.timeoutMs);
    }),
  ]).finally(() => {
    clearTimeout(timer);
    input.done();
  });
}

function assertVerdict(g: Guard, v: Verdict): void {
  if (!v || typeof v !== 'object' || !(v.action in ACTION_RANK)) throw new Error(`guard ${g.name} returned an invalid verdict`);
}

/** Builds a pipeline from guards; throws GuardRegistrationError for unknown stages or duplicate names. */
export function createPipeline(guards: readonly Guard[]): Pipeline {
  const names = new Set<string>();
  const byStage = new Map<Stage, Guard[]>(STAGES.map((s) => [s, []]));
  for (const g of guards) {
    validateGuard(g);
    if (names.has(g.name)) throw new GuardRegistrationError(`duplicate guard name '${g.name}'`);
    names.add(g.name);
    for (const s of g.stages) byStage.get(s)!.push(g);
  }
  // Stable sort: cheap first, configured order within a cost class.
  for (const [s, list] of byStage) byStage.set(s, [...list].sort((a, b) => COST_RANK.get(a.cost)! - COST_RANK.get(b.cost)!));

  return {
    byStage,
    async run(stage, segments, opts) {
      if (!(STAGES as readonly string[]).includes(stage)) throw new GuardRegistrationError(`unknown stage '${String(stage)}'`);
      const run = opts.run ?? newRunScratch();
      let current: Segment[] = segments.map((s) => ({ ...s }));
      const outcome: PipelineOutcome = { action: 'allow', categories: [], findings: [], segments: current, changed: new Set(), records: [], score: 0, run };
      const cats = new Set<string>();
      const list = (byStage.get(stage) ?? []).filter((g) => !opts.only || opts.only.has(g.name));
      const sink = opts.state ? ((opts.state.guards ??= []) as GuardRecord[]) : undefined;

      for (const g of list) {
        const shadow = g.mode === 'shadow';
        // Shadow guards get a throw-away scratch so they cannot leak pseudonyms or notes into the request.
        const scratch = shadow ? newRunScratch() : run;
        const t0 = performance.now();
        let verdict: Verdict | undefined;
        let error: 'timeout' | 'error' | undefined;
        try {
          const r = checkWithTimeout(g, new GuardCall(stage, current, opts.api, opts.tenant, opts.conversationId, opts.requestId, scratch, opts.signal));
          verdict = r instanceof Promise ? await r : r;
          assertVerdict(g, verdict);
        } catch (e) {
          error = e instanceof GuardTimeout ? 'timeout' : 'error';
          verdict = undefined;
        }
        const latencyMs = Math.round((performance.now() - t0) * 1000) / 1000;
        const rec: GuardRecord = {
          guard: g.name,
          stage,
          mode: g.mode,
          action: verdict?.action ?? (g.failMode === 'closed' ? 'block' : 'allow'),
          categories: verdict && verdict.action !== 'allow' ? [...new Set(verdict.categories)] : error ? ['guard_failure'] : [],
          findings: verdict?.findings?.length ?? 0,
          latencyMs,
          applied: false,
          ...(verdict?.score !== undefined ? { score: verdict.score } : {}),
          ...(verdict && verdict.action === 'flag' && verdict.uncertain ? { uncertain: true } : {}),
          ...(error ? { error } : {}),
        };
        outcome.records.push(rec);
        sink?.push(rec);
        if (verdict?.score !== undefined) outcome.score = Math.max(outcome.score, verdict.score);
        if (shadow) continue;

        if (!verdict) {
          if (g.failMode === 'open') continue;
          rec.applied = true;
          outcome.action = 'block';
          outcome.failed = true;
          outcome.decidedBy = g.name;
          outcome.categories = ['guard_failure'];
          break;
        }
        if (verdict.action === 'allow') continue;
        rec.applied = true;
        for (const c of verdict.categories) cats.add(c);
        outcome.findings.push(...(verdict.findings as SegmentFinding[]));
        if (ACTION_RANK[verdict.action] >= ACTION_RANK[outcome.action]) {
          outcome.action = verdict.action;
          outcome.decidedBy = g.name;
        }
        if (verdict.action === 'block') break;
        if (verdict.action === 'transform') {
          current = current.map((s) => {
            const t = verdict.rewrites[s.id];
            if (t === undefined || t === s.text) return s;
            outcome.changed.add(s.id);
            return { ...s, text: t };
          });
          outcome.segments = current;
        }
      }
      if (!outcome.failed) outcome.categories = [...cats];
      return outcome;
    },
  };
}

/** The client-facing error for a blocking outcome: 400 content_policy_violation, or 503 for fail-closed failures. */
export function blockError(outcome: PipelineOutcome): GatewayError {
  if (outcome.failed) return new GatewayError('PCL_GUARD_FAILED', { internal: { guard: outcome.decidedBy } });
  return new GatewayError('PCL_CONTENT_POLICY', { details: { categories: outcome.categories } });
}
