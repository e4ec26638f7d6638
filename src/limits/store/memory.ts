/**
 * In-process counter store: the embedded default, the IPC host's backing store, and the
 * local fallback when Redis is down and failMode is open. Every operation is synchronous
 * inside one call, hence atomic.
 */
import { gcraAdjust, gcraTake } from '../gcra.js';
import type { AdmitOutcome, AdmitPlan, CounterStore, RateState, RenewPlan, SettlePlan } from '../types.js';

/** Options of the memory store. */
export interface MemoryStoreOptions {
  /** How often expired entries are swept (ms); 0 disables the timer. Default 60 s. */
  sweepMs?: number;
}

/** The memory store plus introspection used by tests and the IPC host. */
export interface MemoryCounterStore extends CounterStore {
  /** Number of live entries (rates + slot sets + budgets), for tests and metrics. */
  size(): number;
  /** Drops expired entries now (`now` in ms). */
  sweep(now: number): void;
  /** Current value of a budget counter (0 if absent). */
  budgetValue(key: string, now: number): number;
  /** Live leases of a concurrency key. */
  slotCount(key: string, now: number): number;
  admitNow(plan: AdmitPlan): AdmitOutcome;
  settleNow(plan: SettlePlan): void;
}

/** Creates an in-memory CounterStore. */
export function createMemoryCounterStore(opts: MemoryStoreOptions = {}): MemoryCounterStore {
  const tats = new Map<string, number>(); // µs
  const slots = new Map<string, Map<string, number>>(); // leaseId → expiry ms
  const budgets = new Map<string, { v: number; exp: number }>();
  let lastNow = 0;

  function liveSlots(key: string, now: number): Map<string, number> | undefined {
    const m = slots.get(key);
    if (!m) return undefined;
    for (const [id, exp] of m) if (exp <= now) m.delete(id);
    if (m.size === 0) {
      slots.delete(key);
      return undefined;
    }
    return m;
  }
  function budget(key: string, now: number): number {
    const b = budgets.get(key);
    if (!b) return 0;
    if (b.exp <= now) {
      budgets.delete(key);
      return 0;
    }
    return b.v;
  }

  function sweep(now: number): void {
    const nowUs = now * 1000;
    for (const [k, t] of tats) if (t <= nowUs) tats.delete(k);
    for (const k of slots.keys()) liveSlots(k, now);
    for (const [k, b] of budgets) if (b.exp <= now) budgets.delete(k);
  }
  const sweepMs = opts.sweepMs ?? 60_000;
  const timer = sweepMs > 0 ? setInterval(() => sweep(Math.max(lastNow, Date.now())), sweepMs) : undefined;
  timer?.unref();

  function admitSync(plan: AdmitPlan): AdmitOutcome {
    const now = plan.now;
    lastNow = now;
    const nowUs = Math.round(now * 1000);
    const nR = plan.rates.length;
    const rates: RateState[] = new Array(nR);
    const newTats: number[] = new Array(nR);
    let failed: AdmitOutcome['failed'];
    for (let i = 0; i < nR; i++) {
      const r = plan.rates[i];
      const step = gcraTake(tats.get(r.key), nowUs, r.cost, r.limit, r.periodMs);
      rates[i] = { fillMs: step.fillUs / 1000, retryMs: step.retryUs / 1000 };
      newTats[i] = step.tat;
      if (!step.allowed && !failed) failed = { kind: 'rate', index: i };
    }
    if (!failed) {
      for (let i = 0; i < plan.slots.length; i++) {
        const sl = plan.slots[i];
        // Expired leases are dropped only when the set is at its limit (fewer entries than the
        // limit, live or not, cannot refuse); the periodic sweep drops the rest.
        const m = slots.get(sl.key);
        if (m && m.size >= sl.limit && (liveSlots(sl.key, now)?.size ?? 0) >= sl.limit) {
          failed = { kind: 'slot', index: i };
          break;
        }
      }
    }
    const nB = plan.budgets.length;
    const values: number[] = new Array(nB);
    for (let i = 0; i < nB; i++) {
      const b = plan.budgets[i];
      values[i] = budget(b.key, now);
      if (!failed && values[i] + b.amount > b.limit) failed = { kind: 'budget', index: i };
    }
    if (failed) {
      // Nothing was applied: report the current state of every rate limiter.
      for (let i = 0; i < nR; i++) {
        const t = tats.get(plan.rates[i].key);
        rates[i].fillMs = t !== undefined && t > nowUs ? (t - nowUs) / 1000 : 0;
      }
      return { ok: false, failed, rates, budgets: values };
    }
    for (let i = 0; i < nR; i++) tats.set(plan.rates[i].key, newTats[i]);
    for (const sl of plan.slots) {
      let m = slots.get(sl.key);
      if (!m) slots.set(sl.key, (m = new Map()));
      m.set(sl.leaseId, now + sl.ttlMs);
    }
    for (let i = 0; i < nB; i++) {
      const b = plan.budgets[i];
      values[i] += b.amount;
      const cur = budgets.get(b.key);
      if (cur) cur.v = values[i];
      else budgets.set(b.key, { v: values[i], exp: now + b.ttlMs });
    }
    return { ok: true, rates, budgets: values };
  }

  function settleSync(plan: SettlePlan): void {
    const now = plan.now;
    lastNow = now;
    const nowUs = Math.round(now * 1000);
    for (const r of plan.rates) {
      if (r.delta === 0) continue;
      const t = gcraAdjust(tats.get(r.key), nowUs, r.delta, r.limit, r.periodMs);
      if (t === undefined) tats.delete(r.key);
      else tats.set(r.key, t);
    }
    for (const s of plan.slots) {
      const m = slots.get(s.key);
      if (m) {
        m.delete(s.leaseId);
        if (m.size === 0) slots.delete(s.key);
      }
    }
    for (const b of plan.budgets) {
      if (b.delta === 0) continue;
      const cur = budgets.get(b.key);
      if (cur && cur.exp > now) cur.v = Math.max(0, cur.v + b.delta);
      else if (b.delta > 0) budgets.set(b.key, { v: b.delta, exp: now + b.ttlMs });
    }
  }

  // A lease still in its set is renewed even when its expiry has just passed: nobody can have
  // been admitted in its place, since an admission counts every lease still in the set and
  // drops expired ones (then gone for good) only when the set is at its limit.
  function renewSync(plan: RenewPlan): number {
    lastNow = plan.now;
    const exp = plan.now + plan.ttlMs;
    let n = 0;
    for (const s of plan.slots) {
      const m = slots.get(s.key);
      const cur = m?.get(s.leaseId);
      if (cur === undefined) continue;
      if (cur < exp) m!.set(s.leaseId, exp);
      n++;
    }
    return n;
  }

  return {
    kind: 'memory',
    async admit(plan) {
      return admitSync(plan);
    },
    async settle(plan) {
      settleSync(plan);
    },
    admitNow: admitSync,
    settleNow: settleSync,
    async renew(plan) {
      return renewSync(plan);
    },
    async close() {
      if (timer) clearInterval(timer);
    },
    size: () => tats.size + slots.size + budgets.size,
    sweep,
    budgetValue: budget,
    slotCount: (key, now) => liveSlots(key, now)?.size ?? 0,
  };
}
