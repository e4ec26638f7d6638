/** Failed-authentication limiting: in-memory token buckets per client address and per key id. */
import { LRUCache } from 'lru-cache';

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
export class FailureBuckets {
  private readonly buckets: LRUCache<string, Bucket>;
  constructor(
    private readonly spec: BucketSpec,
    max = 100_000,
    private readonly now: () => number = Date.now,
  ) {
    this.buckets = new LRUCache({ max });
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
