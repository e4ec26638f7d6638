/** Failed-authentication limiting: in-memory token buckets per client address and per key id. */
import type { LRUCache } from 'lru-cache';
import { growingLru } from '../util/lru.js';
import type { CounterStore } from '../limits/types.js';

/** Bucket parameters. */
export interface BucketSpec {
  burst: number;
  perMinute: number;
}

interface Bucket {
  tokens: number;
  at: number;
}

/** A bounded map of token buckets; each failure takes one token. */
export class FailureBuckets implements FailureLimiter {
  private readonly buckets: LRUCache<string, Bucket>;
  constructor(
    private readonly spec: BucketSpec,
    max = 100_000,
    private readonly now: () => number = Date.now,
  ) {
    this.buckets = growingLru(max);
  }

  private refill(k: string): Bucket | undefined {
    const b = this.buckets.get(k);
    if (!b) return undefined;
    const t = this.now();
    b.tokens = Math.min(this.spec.burst, b.tokens + ((t - b.at) / 60_000) * this.spec.perMinute);
    b.at = t;
    return b;
  }

  /** Seconds until one more failure is allowed, or 0 when the bucket has a token. */
  blockedFor(k: string): number {
    const b = this.refill(k);
    if (!b || b.tokens >= 1) return 0;
    return Math.max(1, Math.ceil(((1 - b.tokens) * 60) / this.spec.perMinute));
  }

  /** Records one failure. */
  fail(k: string): void {
    const b = this.refill(k);
    if (b) b.tokens = Math.max(0, b.tokens - 1);
    else this.buckets.set(k, { tokens: this.spec.burst - 1, at: this.now() });
  }
}

/** What the identity service needs of a failure limiter. */
export interface FailureLimiter {
  /** Seconds until one more failure is allowed, or 0 (decided in this process, no round trip). */
  blockedFor(k: string): number;
  /** Records one failure. */
  fail(k: string): void;
}

/** The part of the limits' counter store used here: one atomic GCRA take per failure. */
export type FailureCounterStore = Pick<CounterStore, 'admit'>;

/**
 * Failure buckets shared by every gateway instance (Redis) or worker (the primary over IPC)
 * through the limits' counter store, so N instances do not allow N times the burst.
 *
 * Each failure is one atomic GCRA take in the store (burst = `burst`, refilling at `perMinute`,
 * the same arithmetic as the local token bucket); its answer tells this instance how long the
 * bucket is empty, and that is remembered locally, so checking a request never waits for the
 * store — successful authentication costs no round trip. Another instance learns of an empty
 * bucket on its own next failure, so a spread-out attacker gets at most one extra attempt per
 * instance. A local bucket runs beside it: it answers while a store call is in flight and when the
 * store fails (then each instance limits on its own, as without sharing, and `onError` is told).
 */
export class SharedFailureBuckets implements FailureLimiter {
  private readonly local: FailureBuckets;
  private readonly until: LRUCache<string, number>;
  private readonly periodMs: number;
  private readonly intervalMs: number;
  constructor(
    private readonly spec: BucketSpec,
    private readonly store: FailureCounterStore,
    private readonly prefix: string,
    private readonly opts: { max?: number; now?: () => number; onError?: (e: unknown) => void } = {},
  ) {
    this.local = new FailureBuckets(spec, opts.max ?? 100_000, opts.now ?? Date.now);
    this.until = growingLru(opts.max ?? 100_000);
    this.intervalMs = 60_000 / spec.perMinute;
    this.periodMs = Math.max(1, Math.round(spec.burst * this.intervalMs));
  }

  private now(): number {
    return (this.opts.now ?? Date.now)();
  }

  blockedFor(k: string): number {
    const local = this.local.blockedFor(k);
    const u = this.until.get(k);
    if (u === undefined) return local;
    const ms = u - this.now();
    if (ms <= 0) {
      this.until.delete(k);
      return local;
    }
    return Math.max(local, Math.ceil(ms / 1000));
  }

  fail(k: string): void {
    this.local.fail(k);
    const now = this.now();
    this.store
      .admit({ now, rates: [{ key: this.prefix + k, limit: this.spec.burst, periodMs: this.periodMs, cost: 1 }], slots: [], budgets: [] })
      .then((o) => {
        const r = o.rates[0];
        if (!r) return;
        // Refused: empty for retryMs. Taken: empty once less than one interval of room is left.
        const ms = o.ok ? r.fillMs + this.intervalMs - this.periodMs : r.retryMs;
        if (ms > 0) this.until.set(k, now + ms);
      })
      .catch((e) => this.opts.onError?.(e));
  }
}
