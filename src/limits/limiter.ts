/**
 * The limiter: turns one request into an admission plan (rates, concurrency slot, budgets
 * for each of the key, tenant and user scopes), runs it as ONE atomic store operation, and
 * maps the outcome to an Admission with OpenAI-style headers or a GatewayError.
 */
import { randomUUID } from 'node:crypto';
import { GatewayError } from '../errors.js';
import { DEFAULT_MAX_OUTPUT_TOKENS, mergeLimitSets, type LimitsConfig } from './config.js';
import { globTable } from './glob.js';
import { formatResetDuration, retryAfterSeconds } from './headers.js';
import { periodCache, type Periods } from './periods.js';
import { costNanoUsd, NANO_PER_USD, priceFor } from './pricing.js';
import { createMemoryCounterStore, type MemoryCounterStore } from './store/memory.js';
import type {
  Admission,
  AdmitOutcome,
  AdmitPlan,
  AdmitRequest,
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

interface ScopeEntry {
  scope: Scope;
  id: string;
  set: LimitSet;
}

const SCOPES: readonly Scope[] = ['key', 'tenant', 'user'];
const SCOPE_WORD: Record<Scope, string> = { key: 'key', tenant: 'tenant', user: 'user' };

type BudgetMeta = { kind: 'tokens' | 'cost'; period: 'day' | 'month'; scope: Scope; limit: number; resetAt: number };

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
  // strings keep store lookups cheap (V8 caches a string's hash).
  const keyCache = new Map<string, Map<string, ScopeKeys>>();
  let keyCacheSize = 0;
  function keysFor(tenantId: string, scope: Scope, id: string, p: Periods): ScopeKeys {
    let byTenant = keyCache.get(tenantId);
    if (!byTenant) {
      if (keyCacheSize > 100_000) {
        keyCache.clear();
        keyCacheSize = 0;
      }
      keyCache.set(tenantId, (byTenant = new Map()));
    }
    const ck = scope === 'key' ? id : `${scope}\u0000${id}`;
    let k = byTenant.get(ck);
    if (!k || k.day !== p.day) {
      k = buildKeys(tenantId, scope, id, p);
      if (!byTenant.has(ck)) keyCacheSize++;
      byTenant.set(ck, k);
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

  // Concurrency leases of requests in flight are renewed every third of concurrencyLeaseMs, so
  // a stream that outlives the lease keeps its slot, while the leases of a crashed instance
  // (no more renewals) still expire. One unref'd timer per limiter, running only while some
  // admitted request holds a slot; settle/release/close stop the renewals.
  const leaseMs = config.concurrencyLeaseMs;
  const renewEveryMs = Math.max(10, Math.floor(leaseMs / 3));
  const held = new Set<Ticket>();
  let renewTimer: NodeJS.Timeout | undefined;
  let renewing = false;

  function hold(ticket: Ticket): void {
    held.add(ticket);
    if (!renewTimer) {
      renewTimer = setInterval(() => void renewHeld(), renewEveryMs);
      renewTimer.unref();
    }
  }
  function unhold(ticket: Ticket): void {
    if (held.delete(ticket) && held.size === 0 && renewTimer) {
      clearInterval(renewTimer);
      renewTimer = undefined;
    }
  }
  async function renewHeld(): Promise<void> {
    if (renewing) return; // a slow store: skip a tick rather than pile up renewals
    renewing = true;
    try {
      const onStore: TicketPlan['slots'] = [];
      const onFallback: TicketPlan['slots'] = [];
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

  // Merged sets are cached per request-limits object (callers usually pass the same resolved objects).
  const merged = { key: new WeakMap<LimitSet, LimitSet | undefined>(), tenant: new WeakMap<LimitSet, LimitSet | undefined>(), user: new WeakMap<LimitSet, LimitSet | undefined>() };
  function effective(scope: Scope, given: LimitSet | undefined): LimitSet | undefined {
    if (!given) return config.defaults[scope];
    const cache = merged[scope];
    if (cache.has(given)) return cache.get(given);
    const set = mergeLimitSets(config.defaults[scope], given);
    cache.set(given, set);
    return set;
  }

  function scopesOf(req: AdmitRequest): ScopeEntry[] {
    const out: ScopeEntry[] = [];
    for (const scope of SCOPES) {
      const id = scope === 'key' ? req.keyId : scope === 'tenant' ? req.tenantId : req.userId;
      if (id === undefined || id === '') continue;
      const set = effective(scope, req.limits[scope]);
      if (set) out.push({ scope, id, set });
    }
    return out;
  }

  function sizeError(req: AdmitRequest, scopes: ScopeEntry[]): GatewayError | undefined {
    for (const { scope, set } of scopes) {
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

  function outputCapOf(req: AdmitRequest, scopes: ScopeEntry[]): number {
    if (req.requestedOutputTokens !== undefined && req.requestedOutputTokens >= 0) return Math.floor(req.requestedOutputTokens);
    let cap = outputCaps.get(req.model) ?? 4096;
    for (const { set } of scopes) if (set.maxOutputTokens !== undefined) cap = Math.min(cap, set.maxOutputTokens);
    return cap;
  }

  function refuse(message: string, headers: Record<string, string> = {}): Admission {
    return { ok: false, error: new GatewayError('PCL_RATE_LIMITED', { message, headers: { 'x-should-retry': 'false', ...headers } }) };
  }

  async function admit(req: AdmitRequest): Promise<Admission> {
    const now = clock();
    const scopes = scopesOf(req);
    const bad = sizeError(req, scopes);
    if (bad) return { ok: false, error: bad };

    if (config.unpricedModels === 'refuse' && scopes.some(({ set }) => set.dailyCostUsd !== undefined || set.monthlyCostUsd !== undefined) && !priceFor(req.model, config)) {
      return {
        ok: false,
        error: new GatewayError('PCL_FORBIDDEN', {
          message: `The model '${req.model.slice(0, 100)}' has no price configured, so the money budget that applies to this request cannot be enforced. Ask the gateway operator to add a limits.pricing entry.`,
          param: 'model',
          internal: { limits: 'unpriced_model_under_money_budget' },
        }),
      };
    }
    const outputCap = outputCapOf(req, scopes);
    const reserveTokens = Math.max(0, Math.ceil(req.inputTokens)) + outputCap;
    const reserveNano = costNanoUsd(req.model, { inputTokens: req.inputTokens, outputTokens: outputCap }, config);
    const p = periods(now);
    const leaseId = randomUUID();

    const rates: RateOp[] = [];
    const rateMeta: { kind: 'requests' | 'tokens'; scope: Scope }[] = [];
    const slots: SlotOp[] = [];
    const slotMeta: Scope[] = [];
    const budgets: BudgetOp[] = [];
    const budgetMeta: BudgetMeta[] = [];

    for (const { scope, id, set } of scopes) {
      const keys = keysFor(req.tenantId, scope, id, p);
      const who = `this ${SCOPE_WORD[scope]}`;
      if (set.requestsPerMinute !== undefined) {
        if (set.requestsPerMinute === 0) return refuse(`Requests are not allowed for ${who} (requests-per-minute limit is 0).`);
        rates.push({ key: keys.rpm, limit: set.requestsPerMinute, periodMs: MINUTE, cost: 1 });
        rateMeta.push({ kind: 'requests', scope });
      }
      if (set.tokensPerMinute !== undefined) {
        if (reserveTokens > set.tokensPerMinute)
          return refuse(
            `This request needs up to ${reserveTokens} tokens (input plus output cap), more than the tokens-per-minute limit of ${set.tokensPerMinute} for ${who}; lower max_tokens or the input.`,
          );
        if (reserveTokens > 0) {
          rates.push({ key: keys.tpm, limit: set.tokensPerMinute, periodMs: MINUTE, cost: reserveTokens });
          rateMeta.push({ kind: 'tokens', scope });
        }
      }
      if (set.concurrency !== undefined) {
        if (set.concurrency === 0) return refuse(`Requests are not allowed for ${who} (concurrency limit is 0).`);
        slots.push({ key: keys.conc, limit: set.concurrency, leaseId, ttlMs: config.concurrencyLeaseMs });
        slotMeta.push(scope);
      }
      const ctx: BudgetCtx = { keys, now, periods: p, reserveTokens, reserveNano, scope, budgets, budgetMeta };
      if (set.dailyTokens !== undefined) addBudget(ctx, 'tokens', 'day', set.dailyTokens);
      if (set.monthlyTokens !== undefined) addBudget(ctx, 'tokens', 'month', set.monthlyTokens);
      if (set.dailyCostUsd !== undefined) addBudget(ctx, 'cost', 'day', set.dailyCostUsd);
      if (set.monthlyCostUsd !== undefined) addBudget(ctx, 'cost', 'month', set.monthlyCostUsd);
    }

    const plan: AdmitPlan = { now, rates, slots, budgets };
    let outcome: AdmitOutcome;
    let fallback = false;
    if (rates.length + slots.length + budgets.length === 0) {
      outcome = { ok: true, rates: [], budgets: [] };
    } else {
      try {
        outcome = await store.admit(plan);
      } catch (err) {
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
        outcome = await fallbackStore.admit(plan);
        fallback = true;
      }
    }

    const headers = rateHeaders(rates, rateMeta, outcome);
    if (!outcome.ok) {
      const f = outcome.failed!;
      if (f.kind === 'rate') {
        const m = rateMeta[f.index];
        const retryMs = outcome.rates[f.index].retryMs;
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
            message: `Too many concurrent requests for this ${SCOPE_WORD[slotMeta[f.index]]} (limit ${slots[f.index].limit}).`,
            headers: { ...headers, 'Retry-After': '1' },
          }),
        };
      }
      const m = budgetMeta[f.index];
      const used = outcome.budgets[f.index];
      const what = `${m.period === 'day' ? 'daily' : 'monthly'} ${m.kind === 'tokens' ? 'token' : 'spending'} budget of this ${SCOPE_WORD[m.scope]}`;
      const message =
        used >= m.limit
          ? `The ${what} is exhausted.`
          : `This request's reservation (${m.kind === 'tokens' ? `${reserveTokens} tokens` : `$${(reserveNano / NANO_PER_USD).toFixed(6)}`}) does not fit in the remaining ${what}; lower max_tokens or the input.`;
      return {
        ok: false,
        error: new GatewayError('PCL_QUOTA_EXCEEDED', {
          message,
          headers: { ...headers, 'Retry-After': retryAfterSeconds(m.resetAt - now), 'x-should-retry': 'false' },
        }),
      };
    }

    const tplan: TicketPlan = {
      tenantId: req.tenantId,
      rates: rates.map((r, i) => ({ key: r.key, limit: r.limit, periodMs: r.periodMs, kind: rateMeta[i].kind, cost: r.cost })),
      slots: slots.map((s) => ({ key: s.key, leaseId: s.leaseId })),
      budgets: budgets.map((b, i) => ({ key: b.key, kind: budgetMeta[i].kind, amount: b.amount, ttlMs: b.ttlMs })),
      done: false,
    };
    const ticket: Ticket = {
      id: leaseId,
      model: req.model,
      reservedTokens: reserveTokens,
      reservedCostUsd: reserveNano / NANO_PER_USD,
      maxOutputTokens: outputCap,
      fallback,
      plan: tplan,
    };
    if (tplan.slots.length) hold(ticket);
    return { ok: true, ticket, headers };
  }

  async function apply(ticket: Ticket, plan: SettlePlan): Promise<void> {
    const target: CounterStore | undefined = ticket.fallback ? fallbackStore : store;
    if (!target || plan.rates.length + plan.slots.length + plan.budgets.length === 0) return;
    try {
      await target.settle(plan);
    } catch (err) {
      stats.storeErrors++;
      warn({ event: 'limits_settle_failed', err: errMessage(err) }, 'limits store unavailable at settlement; reservation left in place until it expires');
    }
  }

  async function settle(ticket: Ticket, usage: Usage): Promise<{ costUsd: number }> {
    const cost = costNanoUsd(ticket.model, usage, config);
    if (ticket.plan.done) return { costUsd: cost / NANO_PER_USD };
    ticket.plan.done = true;
    unhold(ticket);
    const tokens = Math.max(0, Math.ceil(usage.inputTokens)) + Math.max(0, Math.ceil(usage.outputTokens));
    await apply(ticket, {
      now: clock(),
      rates: ticket.plan.rates
        .filter((r) => r.kind === 'tokens' && tokens !== r.cost)
        .map((r) => ({ key: r.key, limit: r.limit, periodMs: r.periodMs, delta: tokens - r.cost })),
      slots: ticket.plan.slots,
      budgets: ticket.plan.budgets
        .map((b) => ({ key: b.key, ttlMs: b.ttlMs, delta: (b.kind === 'tokens' ? tokens : cost) - b.amount }))
        .filter((b) => b.delta !== 0),
    });
    return { costUsd: cost / NANO_PER_USD };
  }

  async function release(ticket: Ticket): Promise<void> {
    if (ticket.plan.done) return;
    ticket.plan.done = true;
    unhold(ticket);
    await apply(ticket, {
      now: clock(),
      rates: ticket.plan.rates.filter((r) => r.kind === 'tokens').map((r) => ({ key: r.key, limit: r.limit, periodMs: r.periodMs, delta: -r.cost })),
      slots: ticket.plan.slots,
      budgets: ticket.plan.budgets.filter((b) => b.amount !== 0).map((b) => ({ key: b.key, ttlMs: b.ttlMs, delta: -b.amount })),
    });
  }

  return {
    admit,
    settle,
    release,
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
  };
}

interface BudgetCtx {
  keys: ScopeKeys;
  now: number;
  periods: Periods;
  reserveTokens: number;
  reserveNano: number;
  scope: Scope;
  budgets: BudgetOp[];
  budgetMeta: BudgetMeta[];
}

/** Appends one calendar budget check to the plan. */
function addBudget(c: BudgetCtx, kind: 'tokens' | 'cost', period: 'day' | 'month', limit: number): void {
  const end = period === 'day' ? c.periods.dayEnd : c.periods.monthEnd;
  const limitUnits = kind === 'cost' ? Math.floor(limit * NANO_PER_USD) : limit;
  c.budgets.push({
    key: kind === 'tokens' ? (period === 'day' ? c.keys.btd : c.keys.btm) : period === 'day' ? c.keys.bcd : c.keys.bcm,
    limit: limitUnits,
    amount: kind === 'tokens' ? c.reserveTokens : c.reserveNano,
    ttlMs: Math.max(1000, end - c.now + BUDGET_GRACE_MS),
  });
  c.budgetMeta.push({ kind, period, scope: c.scope, limit: limitUnits, resetAt: end });
}

/** Header names per kind, as constants (template-built names would be new strings on every request). */
const HEADER_NAMES = {
  requests: { limit: 'x-ratelimit-limit-requests', remaining: 'x-ratelimit-remaining-requests', reset: 'x-ratelimit-reset-requests' },
  tokens: { limit: 'x-ratelimit-limit-tokens', remaining: 'x-ratelimit-remaining-tokens', reset: 'x-ratelimit-reset-tokens' },
} as const;
const KINDS = ['requests', 'tokens'] as const;

/** x-ratelimit-* headers from the tightest request and token limiters of the plan. */
function rateHeaders(rates: RateOp[], meta: { kind: 'requests' | 'tokens' }[], outcome: AdmitOutcome): Record<string, string> {
  const h: Record<string, string> = {};
  if (rates.length === 0) return h;
  for (const kind of KINDS) {
    let bestI = -1;
    let bestRemaining = Infinity;
    for (let i = 0; i < rates.length; i++) {
      if (meta[i].kind !== kind || !outcome.rates[i]) continue;
      const r = rates[i];
      const remaining = Math.max(0, Math.floor(r.limit * (1 - outcome.rates[i].fillMs / r.periodMs) + 1e-9));
      if (remaining < bestRemaining) {
        bestRemaining = remaining;
        bestI = i;
      }
    }
    if (bestI >= 0) {
      const names = HEADER_NAMES[kind];
      h[names.limit] = String(rates[bestI].limit);
      h[names.remaining] = String(bestRemaining);
      h[names.reset] = formatResetDuration(outcome.rates[bestI].fillMs);
    }
  }
  return h;
}

function errMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
