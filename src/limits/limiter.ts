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
import { periodCache } from './periods.js';
import { costNanoUsd, NANO_PER_USD } from './pricing.js';
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
  const stats: LimiterStats = { fallbackAdmissions: 0, unavailableRefusals: 0, storeErrors: 0 };
  let fallbackStore: MemoryCounterStore | undefined;
  let lastWarn = -Infinity;

  function warn(obj: object, msg: string): void {
    const now = Date.now();
    if (now - lastWarn < WARN_EVERY_MS) return;
    lastWarn = now;
    log?.warn({ ...obj, store: store.kind, ...stats }, msg);
  }

  function scopesOf(req: AdmitRequest): ScopeEntry[] {
    const out: ScopeEntry[] = [];
    const add = (scope: Scope, id: string | undefined) => {
      if (id === undefined || id === '') return;
      const set = mergeLimitSets(config.defaults[scope], req.limits[scope]);
      if (set) out.push({ scope, id, set });
    };
    add('key', req.keyId);
    add('tenant', req.tenantId);
    add('user', req.userId);
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

    const outputCap = outputCapOf(req, scopes);
    const reserveTokens = Math.max(0, Math.ceil(req.inputTokens)) + outputCap;
    const reserveNano = costNanoUsd(req.model, { inputTokens: req.inputTokens, outputTokens: outputCap }, config);
    const p = periods(now);
    const t = `{t:${enc(req.tenantId)}}`;
    const leaseId = randomUUID();

    const rates: RateOp[] = [];
    const rateMeta: { kind: 'requests' | 'tokens'; scope: Scope }[] = [];
    const slots: SlotOp[] = [];
    const slotMeta: Scope[] = [];
    const budgets: BudgetOp[] = [];
    const budgetMeta: BudgetMeta[] = [];

    for (const { scope, id, set } of scopes) {
      const sid = `${scope}:${enc(id)}`;
      const who = `this ${SCOPE_WORD[scope]}`;
      if (set.requestsPerMinute !== undefined) {
        if (set.requestsPerMinute === 0) return refuse(`Requests are not allowed for ${who} (requests-per-minute limit is 0).`);
        rates.push({ key: `${t}:rpm:${sid}`, limit: set.requestsPerMinute, periodMs: MINUTE, cost: 1 });
        rateMeta.push({ kind: 'requests', scope });
      }
      if (set.tokensPerMinute !== undefined) {
        if (reserveTokens > set.tokensPerMinute)
          return refuse(
            `This request needs up to ${reserveTokens} tokens (input plus output cap), more than the tokens-per-minute limit of ${set.tokensPerMinute} for ${who}; lower max_tokens or the input.`,
          );
        if (reserveTokens > 0) {
          rates.push({ key: `${t}:tpm:${sid}`, limit: set.tokensPerMinute, periodMs: MINUTE, cost: reserveTokens });
          rateMeta.push({ kind: 'tokens', scope });
        }
      }
      if (set.concurrency !== undefined) {
        if (set.concurrency === 0) return refuse(`Requests are not allowed for ${who} (concurrency limit is 0).`);
        slots.push({ key: `${t}:conc:${sid}`, limit: set.concurrency, leaseId, ttlMs: config.concurrencyLeaseMs });
        slotMeta.push(scope);
      }
      const addBudget = (kind: 'tokens' | 'cost', period: 'day' | 'month', limit: number | undefined) => {
        if (limit === undefined) return;
        const end = period === 'day' ? p.dayEnd : p.monthEnd;
        const limitUnits = kind === 'cost' ? Math.floor(limit * NANO_PER_USD) : limit;
        budgets.push({
          key: `${t}:b${kind === 'tokens' ? 't' : 'c'}:${period === 'day' ? p.day : p.month}:${sid}`,
          limit: limitUnits,
          amount: kind === 'tokens' ? reserveTokens : reserveNano,
          ttlMs: Math.max(1000, end - now + BUDGET_GRACE_MS),
        });
        budgetMeta.push({ kind, period, scope, limit: limitUnits, resetAt: end });
      };
      addBudget('tokens', 'day', set.dailyTokens);
      addBudget('tokens', 'month', set.monthlyTokens);
      addBudget('cost', 'day', set.dailyCostUsd);
      addBudget('cost', 'month', set.monthlyCostUsd);
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
      await fallbackStore?.close();
      await store.close();
    },
  };
}

/** x-ratelimit-* headers from the tightest request and token limiters of the plan. */
function rateHeaders(rates: RateOp[], meta: { kind: 'requests' | 'tokens' }[], outcome: AdmitOutcome): Record<string, string> {
  const h: Record<string, string> = {};
  for (const kind of ['requests', 'tokens'] as const) {
    let best: { limit: number; remaining: number; fillMs: number } | undefined;
    rates.forEach((r, i) => {
      if (meta[i].kind !== kind) return;
      const st = outcome.rates[i];
      if (!st) return;
      const remaining = Math.max(0, Math.floor(r.limit * (1 - st.fillMs / r.periodMs) + 1e-9));
      if (!best || remaining < best.remaining) best = { limit: r.limit, remaining, fillMs: st.fillMs };
    });
    if (best) {
      const b: { limit: number; remaining: number; fillMs: number } = best;
      h[`x-ratelimit-limit-${kind}`] = String(b.limit);
      h[`x-ratelimit-remaining-${kind}`] = String(b.remaining);
      h[`x-ratelimit-reset-${kind}`] = formatResetDuration(b.fillMs);
    }
  }
  return h;
}

function errMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
