/**
 * Behaviour baselines per entity (a key or a tenant): traffic is folded into fixed time buckets;
 * when a bucket closes, each signal (request rate, tokens, prompt length, error rate, guard block
 * rate, distinct models) is compared with its EWMA mean and variance (z-score), then folded in.
 * Alerts need a warm-up (buckets seen) and a minimum volume in the bucket, so new or quiet keys
 * never page anyone.
 */
import type { LRUCache } from 'lru-cache';
import { growingLru } from '../util/lru.js';

/** The signals tracked per entity. */
export const SIGNALS = ['request_rate', 'tokens', 'prompt_length', 'error_rate', 'block_rate', 'distinct_models'] as const;

/** A tracked signal. */
export type Signal = (typeof SIGNALS)[number];

/** Options of the anomaly detector. */
export interface BaselineOptions {
  /** Bucket length in ms (e.g. 60 000). */
  bucketMs: number;
  /** EWMA smoothing factor per bucket (0–1). */
  alpha: number;
  /** z-score above which a signal alerts. */
  zThreshold: number;
  /** Buckets an entity must have seen before it can alert. */
  warmupBuckets: number;
  /** Requests a bucket needs before it can alert. */
  minRequests: number;
  /** Standard deviation floor as a fraction of the mean (steady traffic must not alert on noise). */
  minStdRatio: number;
  /** Absolute standard deviation floor per signal. */
  minStd: Record<Signal, number>;
  /** Most entities kept in memory (least recently seen are dropped). */
  maxEntities: number;
  /** Idle buckets folded in as zero traffic when an entity comes back (bounded). */
  maxGapBuckets: number;
}

/** Defaults: one-minute buckets, ~1 h half-life, z ≥ 6, 2 h warm-up, ≥ 20 requests. */
export const DEFAULT_BASELINE: BaselineOptions = {
  bucketMs: 60_000,
  alpha: 0.01,
  zThreshold: 6,
  warmupBuckets: 120,
  minRequests: 20,
  minStdRatio: 0.25,
  minStd: { request_rate: 2, tokens: 200, prompt_length: 50, error_rate: 0.05, block_rate: 0.05, distinct_models: 1 },
  maxEntities: 100_000,
  maxGapBuckets: 240,
};

/** One observed request. */
export interface Observation {
  /** Epoch ms. */
  at: number;
  tokens: number;
  promptTokens: number;
  error: boolean;
  blocked: boolean;
  model?: string;
}

/** An anomaly: a signal of a closed bucket far above its baseline. */
export interface AnomalyAlert {
  entity: string;
  signal: Signal;
  value: number;
  mean: number;
  std: number;
  z: number;
  /** Start of the bucket (epoch ms). */
  bucket: number;
  requests: number;
}

interface Ewma {
  mean: number;
  variance: number;
}

interface EntityState {
  bucket: number;
  requests: number;
  tokens: number;
  prompt: number;
  errors: number;
  blocks: number;
  models: Set<string>;
  seen: number;
  stats: Record<Signal, Ewma>;
}

function fresh(bucket: number): EntityState {
  const e = (): Ewma => ({ mean: 0, variance: 0 });
  return { bucket, requests: 0, tokens: 0, prompt: 0, errors: 0, blocks: 0, models: new Set(), seen: 0, stats: { request_rate: e(), tokens: e(), prompt_length: e(), error_rate: e(), block_rate: e(), distinct_models: e() } };
}

/** Per-entity EWMA baselines with z-score alerts. */
export class BaselineDetector {
  readonly opts: BaselineOptions;
  private readonly entities: LRUCache<string, EntityState>;
  constructor(opts: Partial<BaselineOptions> = {}) {
    this.opts = { ...DEFAULT_BASELINE, ...opts, minStd: { ...DEFAULT_BASELINE.minStd, ...(opts.minStd ?? {}) } };
    this.entities = growingLru(this.opts.maxEntities);
  }

  /** Adds one request of `entity`; returns alerts of any bucket this closes. */
  observe(entity: string, o: Observation): AnomalyAlert[] {
    const b = Math.floor(o.at / this.opts.bucketMs) * this.opts.bucketMs;
    let st = this.entities.get(entity);
    if (!st) {
      st = fresh(b);
      this.entities.set(entity, st);
    }
    const alerts = b > st.bucket ? this.roll(entity, st, b) : [];
    st.requests++;
    st.tokens += o.tokens;
    st.prompt += o.promptTokens;
    if (o.error) st.errors++;
    if (o.blocked) st.blocks++;
    if (o.model && st.models.size < 1000) st.models.add(o.model);
    return alerts;
  }

  /** Closes buckets that ended before `now` for every entity (call from a timer). */
  tick(now: number): AnomalyAlert[] {
    const b = Math.floor(now / this.opts.bucketMs) * this.opts.bucketMs;
    const out: AnomalyAlert[] = [];
    for (const [entity, st] of this.entities.entries()) if (b > st.bucket && st.requests > 0) out.push(...this.roll(entity, st, b));
    return out;
  }

  /** The current baseline of an entity (for the admin API). */
  baseline(entity: string): { seen: number; signals: Record<Signal, { mean: number; std: number }> } | undefined {
    const st = this.entities.get(entity);
    if (!st) return undefined;
    const signals = Object.fromEntries(SIGNALS.map((s) => [s, { mean: st.stats[s].mean, std: Math.sqrt(st.stats[s].variance) }])) as Record<Signal, { mean: number; std: number }>;
    return { seen: st.seen, signals };
  }

  private roll(entity: string, st: EntityState, newBucket: number): AnomalyAlert[] {
    const alerts: AnomalyAlert[] = [];
    if (st.requests > 0) {
      const values: Record<Signal, number> = {
        request_rate: st.requests,
        tokens: st.tokens,
        prompt_length: st.prompt / st.requests,
        error_rate: st.errors / st.requests,
        block_rate: st.blocks / st.requests,
        distinct_models: st.models.size,
      };
      const canAlert = st.seen >= this.opts.warmupBuckets && st.requests >= this.opts.minRequests;
      for (const s of SIGNALS) {
        const e = st.stats[s];
        const x = values[s];
        const std = Math.max(Math.sqrt(e.variance), this.opts.minStdRatio * Math.abs(e.mean), this.opts.minStd[s]);
        const z = (x - e.mean) / std;
        if (canAlert && z >= this.opts.zThreshold) alerts.push({ entity, signal: s, value: x, mean: e.mean, std, z, bucket: st.bucket, requests: st.requests });
        // Per-request signals only learn from buckets with traffic; rates also learn from idle ones (below).
        this.fold(e, x, st.seen === 0);
      }
      st.seen++;
    }
    // Idle buckets between the closed one and the new one count as zero traffic for the volume signals.
    const gap = Math.min(Math.max(0, Math.round((newBucket - st.bucket) / this.opts.bucketMs) - 1), this.opts.maxGapBuckets);
    for (let i = 0; i < gap; i++) {
      this.fold(st.stats.request_rate, 0, false);
      this.fold(st.stats.tokens, 0, false);
      st.seen++;
    }
    st.bucket = newBucket;
    st.requests = st.tokens = st.prompt = st.errors = st.blocks = 0;
    st.models = new Set();
    return alerts;
  }

  private fold(e: Ewma, x: number, first: boolean): void {
    if (first) {
      e.mean = x;
      e.variance = 0;
      return;
    }
    const diff = x - e.mean;
    const inc = this.opts.alpha * diff;
    e.mean += inc;
    e.variance = (1 - this.opts.alpha) * (e.variance + diff * inc);
  }
}
