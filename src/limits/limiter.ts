/**
 * The limiter: turns one request into an admission plan (rates, concurrency slot, budgets
 * for each of the key, tenant and user scopes), runs it as ONE atomic store operation, and
 * maps the outcome to an Admission with OpenAI-style headers or a GatewayError.
 */
import { randomBytes } from 'node:crypto';
import { GatewayError } from '../errors.js';
import { DEFAULT_MAX_OUTPUT_TOKENS, mergeLimitSets, type LimitsConfig } from './config.js';
import { globTable } from './glob.js';
import { formatResetDuration, retryAfterSeconds } from './headers.js';
import { periodCache, type Periods } from './periods.js';
import { nanoCost, NANO_PER_USD, priceFor, usageNanoCost } from './pricing.js';
import { createMemoryCounterStore, type MemoryCounterStore } from './store/memory.js';
import type {
  Admission,
  AdmitOutcome,
  AdmitPlan,
  AdmitRequest,
  BudgetKind,
  BudgetOp,
  CounterStore,
  LimiterStats,
  LimitSet,
  Limiter,
  RateOp,
  Scope,
  SettlePlan,
  SlotOp,
  Ticket,
  TicketPlan,
  Usage,
} from './types.js';

/** Logger shape the limiter needs (pino-compatible). */
export interface LimiterLog {
  warn(obj: object, msg: string): void;
}

/** Options of createLimiter. */
export interface CreateLimiterOptions {
  config: LimitsConfig;
  store: CounterStore;
  /** Wall clock in ms (tests inject one). */
  clock?: () => number;
  log?: LimiterLog;
}

const MINUTE = 60_000;
/** Budget counters outlive their period by this much (late settlements still land). */
const BUDGET_GRACE_MS = 2 * 86_400_000;
/** At most one fallback/unavailable warning per this interval per limiter. */
const WARN_EVERY_MS = 5_000;

let globalFallbackAdmissions = 0;

/** Admissions decided by a local fallback limiter across all limiters of this process (for /metrics). */
export function limitsFallbackAdmissions(): number {
  return globalFallbackAdmissions;
}

const enc = (s: string) => encodeURIComponent(s);

const SCOPE_WORD: Record<Scope, string> = { key: 'key', tenant: 'tenant', user: 'user' };
const BUDGET_WORD: Record<BudgetKind, string> = { tokens: 'token', cost: 'spending', requests: 'request' };

/** What a rate operation of the plan is, for headers and refusal messages. */
interface RateDesc {
  kind: 'requests' | 'tokens';
  scope: Scope;
  /** The limit as a header value. */
  limitText: string;
}

/** What a budget operation of the plan is. */
interface BudgetDesc {
  key: string;
  kind: BudgetKind;
  period: 'day' | 'month';
  scope: Scope;
  /** In counter units (tokens, nano-dollars or requests). */
  limit: number;
  /** End of the calendar period (epoch ms). */
  resetAt: number;
}

/**
 * One scope's limits turned into store operations, built once per (counter keys, limit set) and
 * day: the per-request work is then filling in costs, amounts and the lease id.
 */
interface CompiledScope {
  set: LimitSet;
  scope: Scope;
  /** Requests per minute: the operation itself (its cost is always 1, so it is shared). */
  rpm?: RateOp;
  rpmDesc?: RateDesc;
  tpm?: { key: string; limit: number };
  tpmDesc?: RateDesc;
  conc?: { key: string; limit: number };
  budgets: BudgetDesc[];
}

/** A store answer for a plan with no operations. */
const NOTHING_TO_CHECK: AdmitOutcome = Object.freeze({ ok: true, rates: [], budgets: [] }) as AdmitOutcome;

/** An admission being decided: the plan and what is needed to answer. */
interface Pending {
  req: AdmitRequest;
  now: number;
  plan: AdmitPlan;
  rateDescs: RateDesc[];
  slotScopes: Scope[];
  budgetDescs: BudgetDesc[];
  leaseId: string;
  reserveTokens: number;
  reserveNano: number;
  outputCap: number;
  outputCount: number;
}

/** Creates a Limiter over a CounterStore. */
export function createLimiter(opts: CreateLimiterOptions): Limiter {
  const { config, store } = opts;
  const clock = opts.clock ?? Date.now;
  const log = opts.log;
  const periods = periodCache(config.timeZone);
  const outputCaps = globTable(
    typeof config.defaultMaxOutputTokens === 'number'
      ? { '*': config.defaultMaxOutputTokens }
      : { ...DEFAULT_MAX_OUTPUT_TOKENS, ...config.defaultMaxOutputTokens },
  );
  // Counter key strings per (tenant, scope, id), rebuilt when the day changes: flat, reused
  // strings keep store lookups cheap (V8 caches a string's hash). Each entry also keeps the
  // scope's compiled operations for the limit set last used with it.
  const keyCache = new Map<string, TenantKeys>();
  let keyCacheSize = 0;
  function keysFor(tenantId: string, scope: Scope, id: string, p: Periods): ScopeKeys {
    let byTenant = keyCache.get(tenantId);
    if (!byTenant) {
      if (keyCacheSize > 100_000) {
        keyCache.clear();
        keyCacheSize = 0;
      }
      keyCache.set(tenantId, (byTenant = { key: new Map(), user: new Map() }));
    }
    if (scope === 'tenant') {
      let k = byTenant.tenant;
      if (!k || k.day !== p.day) {
        if (!k) keyCacheSize++;
        byTenant.tenant = k = buildKeys(tenantId, scope, id, p);
      }
      return k;
    }
    const m = scope === 'key' ? byTenant.key : byTenant.user;
    let k = m.get(id);
    if (!k || k.day !== p.day) {
      if (!k) keyCacheSize++;
      m.set(id, (k = buildKeys(tenantId, scope, id, p)));
    }
    return k;
  }

  const stats: LimiterStats = { fallbackAdmissions: 0, unavailableRefusals: 0, storeErrors: 0 };
  let fallbackStore: MemoryCounterStore | undefined;
  let lastWarn = -Infinity;

  function warn(obj: object, msg: string): void {
    const now = Date.now();
    if (now - lastWarn < WARN_EVERY_MS) return;
    lastWarn = now;
    log?.warn({ ...obj, store: store.kind, ...stats }, msg);
  }

  // Lease ids: a random prefix per limiter and a counter (unique across processes sharing a store).
  const leasePrefix = randomBytes(12).toString('base64url') + '.';
  let leaseSeq = 0;

  // Concurrency leases of requests in flight are renewed every third of concurrencyLeaseMs, so
  // a stream that outlives the lease keeps its slot, while the leases of a crashed instance
  // (no more renewals) still expire. One unref'd timer per limiter, running while some admitted
  // request holds a slot (it stops at the first tick that finds none, rather than being
  // cleared and re-armed whenever the last request in flight finishes); settle/release/close
  // stop the renewals.
  const leaseMs = config.concurrencyLeaseMs;
  const renewEveryMs = Math.max(10, Math.floor(leaseMs / 3));
  const held = new Set<Ticket>();
  let renewTimer: NodeJS.Timeout | undefined;
  let renewing = false;

  function hold(ticket: Ticket): void {
    held.add(ticket);
    if (!renewTimer) {
      renewTimer = setInterval(onRenewTick, renewEveryMs);
      renewTimer.unref();
    }
  }
  function onRenewTick(): void {
    if (held.size === 0) {
      if (renewTimer) clearInterval(renewTimer);
      renewTimer = undefined;
      return;
    }
    void renewHeld();
  }
  async function renewHeld(): Promise<void> {
    if (renewing) return; // a slow store: skip a tick rather than pile up renewals
    renewing = true;
    try {
      const onStore: SlotOp[] = [];
      const onFallback: SlotOp[] = [];
      for (const t of held) for (const sl of t.plan.slots) (t.fallback ? onFallback : onStore).push(sl);
      const now = clock();
      const jobs: Promise<number>[] = [];
      if (onStore.length) jobs.push(store.renew({ now, slots: onStore, ttlMs: leaseMs }));
      if (onFallback.length && fallbackStore) jobs.push(fallbackStore.renew({ now, slots: onFallback, ttlMs: leaseMs }));
      for (const r of await Promise.allSettled(jobs)) {
        if (r.status === 'rejected') {
          stats.storeErrors++;
          warn({ event: 'limits_renew_failed', err: errMessage(r.reason) }, 'limits store unavailable for lease renewal; in-flight leases expire after concurrencyLeaseMs unless a later renewal succeeds');
        }
      }
    } finally {
      renewing = false;
    }
  }

  // Effective sets (defaults merged under the request's) per request-limits object: callers
  // usually pass the same resolved (cached) objects.
  const effectiveSets = new WeakMap<AdmitRequest['limits'], (LimitSet | undefined)[]>();
  function setsOf(limits: AdmitRequest['limits']): (LimitSet | undefined)[] {
    let sets = effectiveSets.get(limits);
    if (!sets) {
      sets = [effective('key', limits.key), effective('tenant', limits.tenant), effective('user', limits.user)];
      effectiveSets.set(limits, sets);
    }
    return sets;
  }
  const merged = { key: new WeakMap<LimitSet, LimitSet | undefined>(), tenant: new WeakMap<LimitSet, LimitSet | undefined>(), user: new WeakMap<LimitSet, LimitSet | undefined>() };
  function effective(scope: Scope, given: LimitSet | undefined): LimitSet | undefined {
    if (!given) return config.defaults[scope];
    const cache = merged[scope];
    if (cache.has(given)) return cache.get(given);
    const set = mergeLimitSets(config.defaults[scope], given);
    cache.set(given, set);
    return set;
  }

  /** The compiled operations of one scope (cached on its keys entry). */
  function compiled(tenantId: string, scope: Scope, id: string, set: LimitSet, p: Periods): CompiledScope {
    const keys = keysFor(tenantId, scope, id, p);
    let c = keys.compiled;
    if (c && c.set === set) return c;
    c = { set, scope, budgets: [] };
    if (set.requestsPerMinute !== undefined) {
      c.rpm = Object.freeze({ key: keys.rpm, limit: set.requestsPerMinute, periodMs: MINUTE, cost: 1 });
      c.rpmDesc = { kind: 'requests', scope, limitText: String(set.requestsPerMinute) };
    }
    if (set.tokensPerMinute !== undefined) {
      c.tpm = { key: keys.tpm, limit: set.tokensPerMinute };
      c.tpmDesc = { kind: 'tokens', scope, limitText: String(set.tokensPerMinute) };
    }
    if (set.concurrency !== undefined) c.conc = { key: keys.conc, limit: set.concurrency };
    const budget = (kind: BudgetKind, period: 'day' | 'month', limit: number) =>
      c!.budgets.push({
        key: kind === 'tokens' ? (period === 'day' ? keys.btd : keys.btm) : kind === 'cost' ? (period === 'day' ? keys.bcd : keys.bcm) : period === 'day' ? keys.brd : keys.brm,
        kind,
        period,
        scope,
        limit: kind === 'cost' ? Math.floor(limit * NANO_PER_USD) : limit,
        resetAt: period === 'day' ? p.dayEnd : p.monthEnd,
      });
    if (set.dailyTokens !== undefined) budget('tokens', 'day', set.dailyTokens);
    if (set.monthlyTokens !== undefined) budget('tokens', 'month', set.monthlyTokens);
    if (set.dailyCostUsd !== undefined) budget('cost', 'day', set.dailyCostUsd);
    if (set.monthlyCostUsd !== undefined) budget('cost', 'month', set.monthlyCostUsd);
    if (set.dailyRequests !== undefined) budget('requests', 'day', set.dailyRequests);
    if (set.monthlyRequests !== undefined) budget('requests', 'month', set.monthlyRequests);
    keys.compiled = c;
    return c;
  }

  function sizeError(req: AdmitRequest, sets: (LimitSet | undefined)[], present: boolean[]): GatewayError | undefined {
    for (let i = 0; i < 3; i++) {
      const set = sets[i];
      if (!set || !present[i]) continue;
      const scope = SCOPE_ORDER[i]!;
      if (set.maxMessages !== undefined && req.messages > set.maxMessages)
        return new GatewayError('PCL_INVALID_REQUEST', {
          status: 413,
          param: 'messages',
          message: `The request has ${req.messages} messages; this ${SCOPE_WORD[scope]} allows at most ${set.maxMessages}.`,
        });
      if (set.maxInputTokens !== undefined && req.inputTokens > set.maxInputTokens)
        return new GatewayError('PCL_INVALID_REQUEST', {
          status: 413,
          param: 'messages',
          message: `The request has about ${req.inputTokens} input tokens; this ${SCOPE_WORD[scope]} allows at most ${set.maxInputTokens}.`,
        });
      if (set.maxOutputTokens !== undefined && req.requestedOutputTokens !== undefined && req.requestedOutputTokens > set.maxOutputTokens)
        return new GatewayError('PCL_INVALID_REQUEST', {
          param: 'max_tokens',
          message: `The requested output cap of ${req.requestedOutputTokens} tokens exceeds the limit of ${set.maxOutputTokens} for this ${SCOPE_WORD[scope]}.`,
        });
    }
    return undefined;
  }

  function refuse(message: string, headers: Record<string, string> = {}): Admission {
    return { ok: false, error: new GatewayError('PCL_RATE_LIMITED', { message, headers: { 'x-should-retry': 'false', ...headers } }) };
  }

  /** Builds the admission plan, or answers right away (size limits, unpriced model, a zero limit, a request larger than a limit). */
  function prepare(req: AdmitRequest, now: number): Pending | Admission {
    const sets = setsOf(req.limits);
    const present = [req.keyId !== undefined && req.keyId !== '', req.tenantId !== undefined && req.tenantId !== '', req.userId !== undefined && req.userId !== ''];
    const bad = sizeError(req, sets, present);
    if (bad) return { ok: false, error: bad };

    const price = priceFor(req.model, config);
    if (config.unpricedModels === 'refuse' && !price) {
      for (let i = 0; i < 3; i++) {
        const set = sets[i];
        if (set && present[i] && (set.dailyCostUsd !== undefined || set.monthlyCostUsd !== undefined)) {
          return {
            ok: false,
            error: new GatewayError('PCL_FORBIDDEN', {
              message: `The model '${req.model.slice(0, 100)}' has no price configured, so the money budget that applies to this request cannot be enforced. Ask the gateway operator to add a limits.pricing entry.`,
              param: 'model',
              internal: { limits: 'unpriced_model_under_money_budget' },
            }),
          };
        }
      }
    }
    let outputCap: number;
    if (req.noOutput) outputCap = 0;
    else if (req.requestedOutputTokens !== undefined && req.requestedOutputTokens >= 0) outputCap = Math.floor(req.requestedOutputTokens);
    else {
      outputCap = outputCaps.get(req.model) ?? 4096;
      for (let i = 0; i < 3; i++) {
        const set = sets[i];
        if (set && present[i] && set.maxOutputTokens !== undefined) outputCap = Math.min(outputCap, set.maxOutputTokens);
      }
    }
    if (req.outputCapLimit !== undefined && req.outputCapLimit >= 0) outputCap = Math.min(outputCap, Math.floor(req.outputCapLimit));
    // Every answer the upstream generates (chat `n`, completions `best_of`) may reach the cap.
    const outputCount = req.outputCount !== undefined && req.outputCount > 1 ? Math.floor(req.outputCount) : 1;
    const reserveOutput = outputCap * outputCount;
    const reserveTokens = Math.max(0, Math.ceil(req.inputTokens)) + reserveOutput;
    const reserveNano = nanoCost(price, req.inputTokens, reserveOutput);
    const leaseId = leasePrefix + (++leaseSeq).toString(36);

    // The scopes' compiled operations first, and the plan's size, so that the plan's arrays are
    // allocated once at their exact length (arrays grown by push cost more than all the rest).
    const cs: (CompiledScope | undefined)[] = [undefined, undefined, undefined];
    let nR = 0;
    let nS = 0;
    let nB = 0;
    let p: Periods | undefined;
    for (let i = 0; i < 3; i++) {
      const set = sets[i];
      if (!set || !present[i]) continue;
      p ??= periods(now);
      const c = (cs[i] = compiled(req.tenantId, SCOPE_ORDER[i]!, i === 0 ? req.keyId! : i === 1 ? req.tenantId : req.userId!, set, p));
      if (c.rpm) nR++;
      if (c.tpm && reserveTokens > 0) nR++;
      if (c.conc) nS++;
      nB += c.budgets.length;
    }
    const rates = new Array<RateOp>(nR);
    const rateDescs = new Array<RateDesc>(nR);
    const slots = new Array<SlotOp>(nS);
    const slotScopes = new Array<Scope>(nS);
    const budgets = new Array<BudgetOp>(nB);
    const budgetDescs = new Array<BudgetDesc>(nB);
    let r = 0;
    let sl = 0;
    let bi = 0;
    for (let i = 0; i < 3; i++) {
      const c = cs[i];
      if (!c) continue;
      const scope = c.scope;
      if (c.rpm) {
        if (c.rpm.limit === 0) return refuse(`Requests are not allowed for this ${SCOPE_WORD[scope]} (requests-per-minute limit is 0).`);
        rates[r] = c.rpm;
        rateDescs[r++] = c.rpmDesc!;
      }
      if (c.tpm) {
        if (reserveTokens > c.tpm.limit)
          return refuse(
            `This request needs up to ${reserveTokens} tokens (input plus output cap${outputCount > 1 ? ` × ${outputCount} answers` : ''}), more than the tokens-per-minute limit of ${c.tpm.limit} for this ${SCOPE_WORD[scope]}; lower max_tokens or the input.`,
          );
        if (reserveTokens > 0) {
          rates[r] = { key: c.tpm.key, limit: c.tpm.limit, periodMs: MINUTE, cost: reserveTokens };
          rateDescs[r++] = c.tpmDesc!;
        }
      }
      if (c.conc) {
        if (c.conc.limit === 0) return refuse(`Requests are not allowed for this ${SCOPE_WORD[scope]} (concurrency limit is 0).`);
        slots[sl] = { key: c.conc.key, limit: c.conc.limit, leaseId, ttlMs: leaseMs };
        slotScopes[sl++] = scope;
      }
      for (const b of c.budgets) {
        budgets[bi] = { key: b.key, limit: b.limit, amount: b.kind === 'tokens' ? reserveTokens : b.kind === 'cost' ? reserveNano : 1, ttlMs: Math.max(1000, b.resetAt - now + BUDGET_GRACE_MS) };
        budgetDescs[bi++] = b;
      }
    }
    return { req, now, plan: { now, rates, slots, budgets }, rateDescs, slotScopes, budgetDescs, leaseId, reserveTokens, reserveNano, outputCap, outputCount };
  }

  /** The admission for the store's outcome. */
  function conclude(x: Pending, outcome: AdmitOutcome, fallback: boolean): Admission {
    const { rates, slots, budgets } = x.plan;
    const headers = rateHeaders(rates, x.rateDescs, outcome);
    if (!outcome.ok) {
      const f = outcome.failed!;
      if (f.kind === 'rate') {
        const m = x.rateDescs[f.index]!;
        const retryMs = outcome.rates[f.index]!.retryMs;
        return {
          ok: false,
          error: new GatewayError('PCL_RATE_LIMITED', {
            message: `Rate limit reached for ${m.kind} per minute of this ${SCOPE_WORD[m.scope]}; retry after ${retryAfterSeconds(retryMs)}s.`,
            headers: { ...headers, 'Retry-After': retryAfterSeconds(retryMs) },
          }),
        };
      }
      if (f.kind === 'slot') {
        return {
          ok: false,
          error: new GatewayError('PCL_RATE_LIMITED', {
            message: `Too many concurrent requests for this ${SCOPE_WORD[x.slotScopes[f.index]!]} (limit ${slots[f.index]!.limit}).`,
            headers: { ...headers, 'Retry-After': '1' },
          }),
        };
      }
      const m = x.budgetDescs[f.index]!;
      const used = outcome.budgets[f.index]!;
      const what = `${m.period === 'day' ? 'daily' : 'monthly'} ${BUDGET_WORD[m.kind]} budget of this ${SCOPE_WORD[m.scope]}`;
      // A request budget reserves 1, so it refuses only when used up (or lowered below its use).
      const message =
        used >= m.limit || m.kind === 'requests'
          ? `The ${what} is exhausted.`
          : `This request's reservation (${m.kind === 'tokens' ? `${x.reserveTokens} tokens` : `$${(x.reserveNano / NANO_PER_USD).toFixed(6)}`}) does not fit in the remaining ${what}; lower max_tokens or the input.`;
      return {
        ok: false,
        error: new GatewayError('PCL_QUOTA_EXCEEDED', {
          message,
          headers: { ...headers, 'Retry-After': retryAfterSeconds(m.resetAt - x.now), 'x-should-retry': 'false' },
        }),
      };
    }

    const rateKinds: TicketPlan['rateKinds'] = new Array(rates.length);
    for (let i = 0; i < rates.length; i++) rateKinds[i] = x.rateDescs[i]!.kind;
    const budgetKinds: TicketPlan['budgetKinds'] = new Array(budgets.length);
    for (let i = 0; i < budgets.length; i++) budgetKinds[i] = x.budgetDescs[i]!.kind;
    const ticket: Ticket = {
      id: x.leaseId,
      model: x.req.model,
      reservedTokens: x.reserveTokens,
      reservedCostUsd: x.reserveNano / NANO_PER_USD,
      maxOutputTokens: x.outputCap,
      outputCount: x.outputCount,
      fallback,
      plan: { tenantId: x.req.tenantId, rates, rateKinds, slots, budgets, budgetKinds, done: false },
    };
    if (slots.length) hold(ticket);
    return { ok: true, ticket, headers };
  }

  /** The store failed: refuse (fail-closed) or decide with the local fallback store (fail-open). */
  function storeFailed(x: Pending, err: unknown): Admission {
    stats.storeErrors++;
    if (config.failMode === 'closed') {
      stats.unavailableRefusals++;
      warn({ event: 'limits_store_unavailable', err: errMessage(err) }, 'limits store unavailable; refusing requests (failMode closed)');
      return {
        ok: false,
        error: new GatewayError('PCL_UNAVAILABLE', { headers: { 'Retry-After': '1' }, internal: errMessage(err), cause: err }),
      };
    }
    stats.fallbackAdmissions++;
    globalFallbackAdmissions++;
    warn(
      { event: 'limits_store_fallback', err: errMessage(err) },
      'limits store unavailable; deciding with the LOCAL fallback limiter (limits are per instance until the store recovers)',
    );
    fallbackStore ??= createMemoryCounterStore();
    return conclude(x, fallbackStore.admitNow(x.plan), true);
  }

  function admitNow(req: AdmitRequest): Admission | Promise<Admission> {
    const x = prepare(req, clock());
    if (!('plan' in x)) return x;
    const { plan } = x;
    if (plan.rates.length + plan.slots.length + plan.budgets.length === 0) return conclude(x, NOTHING_TO_CHECK, false);
    if (store.admitNow) {
      let outcome: AdmitOutcome;
      try {
        outcome = store.admitNow(plan);
      } catch (err) {
        return storeFailed(x, err);
      }
      return conclude(x, outcome, false);
    }
    return store.admit(plan).then(
      (outcome) => conclude(x, outcome, false),
      (err: unknown) => storeFailed(x, err),
    );
  }

  function settleFailed(err: unknown): void {
    stats.storeErrors++;
    warn({ event: 'limits_settle_failed', err: errMessage(err) }, 'limits store unavailable at settlement; reservation left in place until it expires');
  }

  function apply(ticket: Ticket, plan: SettlePlan): void | Promise<void> {
    const target: CounterStore | undefined = ticket.fallback ? fallbackStore : store;
    if (!target || plan.rates.length + plan.slots.length + plan.budgets.length === 0) return;
    if (target.settleNow) {
      try {
        target.settleNow(plan);
      } catch (err) {
        settleFailed(err);
      }
      return;
    }
    return target.settle(plan).then(undefined, settleFailed);
  }

  function settleNow(ticket: Ticket, usage: Usage): { costUsd: number } | Promise<{ costUsd: number }> {
    const t = ticket.plan;
    const cost = usageNanoCost(priceFor(ticket.model, config), usage);
    const result = { costUsd: cost / NANO_PER_USD };
    if (t.done) return result;
    t.done = true;
    if (t.slots.length) held.delete(ticket);
    const tokens = Math.max(0, Math.ceil(usage.inputTokens)) + Math.max(0, Math.ceil(usage.outputTokens));
    // Counted first, then filled: arrays at their exact length (see prepare).
    let nR = 0;
    for (let i = 0; i < t.rates.length; i++) if (t.rateKinds[i] === 'tokens' && tokens !== t.rates[i]!.cost) nR++;
    const rates = new Array<SettlePlan['rates'][number]>(nR);
    for (let i = 0, j = 0; j < nR; i++) {
      const r = t.rates[i]!;
      if (t.rateKinds[i] === 'tokens' && tokens !== r.cost) rates[j++] = { key: r.key, limit: r.limit, periodMs: r.periodMs, delta: tokens - r.cost };
    }
    let nB = 0;
    for (let i = 0; i < t.budgets.length; i++) if (settledAmount(t.budgetKinds[i]!, t.budgets[i]!.amount, tokens, cost) !== t.budgets[i]!.amount) nB++;
    const budgets = new Array<SettlePlan['budgets'][number]>(nB);
    for (let i = 0, j = 0; j < nB; i++) {
      const b = t.budgets[i]!;
      const delta = settledAmount(t.budgetKinds[i]!, b.amount, tokens, cost) - b.amount;
      if (delta !== 0) budgets[j++] = { key: b.key, ttlMs: b.ttlMs, delta };
    }
    const pending = apply(ticket, { now: clock(), rates, slots: t.slots, budgets });
    return pending ? pending.then(() => result) : result;
  }

  function releaseNow(ticket: Ticket): void | Promise<void> {
    const t = ticket.plan;
    if (t.done) return;
    t.done = true;
    if (t.slots.length) held.delete(ticket);
    const rates: SettlePlan['rates'] = [];
    for (let i = 0; i < t.rates.length; i++) {
      const r = t.rates[i]!;
      if (t.rateKinds[i] === 'tokens') rates.push({ key: r.key, limit: r.limit, periodMs: r.periodMs, delta: -r.cost });
    }
    const budgets: SettlePlan['budgets'] = [];
    for (const b of t.budgets) if (b.amount !== 0) budgets.push({ key: b.key, ttlMs: b.ttlMs, delta: -b.amount });
    return apply(ticket, { now: clock(), rates, slots: t.slots, budgets });
  }

  return {
    async admit(req) {
      return admitNow(req);
    },
    async settle(ticket, usage) {
      return settleNow(ticket, usage);
    },
    async release(ticket) {
      return releaseNow(ticket);
    },
    admitNow,
    settleNow,
    releaseNow,
    stats: () => ({ ...stats }),
    async close() {
      if (renewTimer) clearInterval(renewTimer);
      renewTimer = undefined;
      held.clear(); // leases not settled by now are left to expire
      await fallbackStore?.close();
      await store.close();
    },
  };
}

const SCOPE_ORDER: readonly Scope[] = ['key', 'tenant', 'user'];

/** What a budget finally counts for a settled request: its tokens, its cost, or (request budgets) the 1 reserved. */
function settledAmount(kind: BudgetKind, reserved: number, tokens: number, nanoCost: number): number {
  return kind === 'tokens' ? tokens : kind === 'cost' ? nanoCost : reserved;
}

/** Keys entries of one tenant, per scope. */
interface TenantKeys {
  key: Map<string, ScopeKeys>;
  user: Map<string, ScopeKeys>;
  tenant?: ScopeKeys;
}

/** Store keys of one scope (all under the tenant's hash tag). */
interface ScopeKeys {
  day: string;
  rpm: string;
  tpm: string;
  conc: string;
  btd: string;
  btm: string;
  bcd: string;
  bcm: string;
  brd: string;
  brm: string;
  /** The scope's operations for the limit set last used with these keys. */
  compiled?: CompiledScope;
}

function buildKeys(tenantId: string, scope: Scope, id: string, p: Periods): ScopeKeys {
  const t = `{t:${enc(tenantId)}}`;
  const sid = `${scope}:${enc(id)}`;
  return {
    day: p.day,
    rpm: `${t}:rpm:${sid}`,
    tpm: `${t}:tpm:${sid}`,
    conc: `${t}:conc:${sid}`,
    btd: `${t}:bt:${p.day}:${sid}`,
    btm: `${t}:bt:${p.month}:${sid}`,
    bcd: `${t}:bc:${p.day}:${sid}`,
    bcm: `${t}:bc:${p.month}:${sid}`,
    brd: `${t}:br:${p.day}:${sid}`,
    brm: `${t}:br:${p.month}:${sid}`,
  };
}

/** Header names per kind, as constants (template-built names would be new strings on every request). */
const HEADER_NAMES = {
  requests: { limit: 'x-ratelimit-limit-requests', remaining: 'x-ratelimit-remaining-requests', reset: 'x-ratelimit-reset-requests' },
  tokens: { limit: 'x-ratelimit-limit-tokens', remaining: 'x-ratelimit-remaining-tokens', reset: 'x-ratelimit-reset-tokens' },
} as const;
const KINDS = ['requests', 'tokens'] as const;

/** x-ratelimit-* headers from the tightest request and token limiters of the plan. */
function rateHeaders(rates: RateOp[], descs: RateDesc[], outcome: AdmitOutcome): Record<string, string> {
  const h: Record<string, string> = {};
  if (rates.length === 0) return h;
  for (const kind of KINDS) {
    let bestI = -1;
    let bestRemaining = Infinity;
    for (let i = 0; i < rates.length; i++) {
      const o = outcome.rates[i];
      if (descs[i]!.kind !== kind || !o) continue;
      const r = rates[i]!;
      const remaining = Math.max(0, Math.floor(r.limit * (1 - o.fillMs / r.periodMs) + 1e-9));
      if (remaining < bestRemaining) {
        bestRemaining = remaining;
        bestI = i;
      }
    }
    if (bestI >= 0) {
      const names = HEADER_NAMES[kind];
      h[names.limit] = descs[bestI]!.limitText;
      h[names.remaining] = String(bestRemaining);
      h[names.reset] = formatResetDuration(outcome.rates[bestI]!.fillMs);
    }
  }
  return h;
}

function errMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
