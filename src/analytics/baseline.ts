/**
 * Behaviour baselines per entity (a key or a tenant): traffic is folded into fixed time buckets;
 * when a bucket with traffic closes, each signal (requests, tokens, prompt length, error rate,
 * guard block rate, distinct models in the bucket) is compared with its EWMA mean and variance
 * (z-score), then folded in. Idle buckets are not folded in: the baseline is the key's traffic
 * per active minute, so nights, weekends and hourly jobs do not drag it towards zero (where
 * every morning, or every run of the job, would look like a burst). Alerts need a warm-up of
 * buckets with traffic and a minimum volume in the bucket, so new, quiet or long-dormant keys
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
  /** Buckets with traffic (idle ones do not count) an entity needs before it can alert. */
  warmupBuckets: number;
  /** Requests a bucket needs before it can alert. */
  minRequests: number;
  /** Standard deviation floor as a fraction of the mean (steady traffic must not alert on noise). */
  minStdRatio: number;
  /** Absolute standard deviation floor per signal. */
  minStd: Record<Signal, number>;
  /** Most entities kept in memory (least recently seen are dropped). */
  maxEntities: number;
  /**
   * Idle buckets after which an entity's history is stale: it starts over (new baseline, warm-up
   * again). Longer than a weekend, so business-hours keys keep their baseline.
   */
  dormantBuckets: number;
}

/** Defaults: one-minute buckets, ~1 h half-life, z ≥ 6, 2 h of active warm-up, ≥ 20 requests, stale after 7 idle days. */
export const DEFAULT_BASELINE: BaselineOptions = {
  bucketMs: 60_000,
  alpha: 0.01,
  zThreshold: 6,
  warmupBuckets: 120,
  minRequests: 20,
  minStdRatio: 0.25,
  minStd: { request_rate: 2, tokens: 200, prompt_length: 50, error_rate: 0.05, block_rate: 0.05, distinct_models: 1 },
  maxEntities: 100_000,
  dormantBuckets: 7 * 1440,
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
  /** Buckets with traffic folded in: the real history the warm-up counts. */
  seen: number;
  /** Start of the last bucket that had traffic. */
  lastActive: number;
  stats: Record<Signal, Ewma>;
}

function fresh(bucket: number): EntityState {
  const e = (): Ewma => ({ mean: 0, variance: 0 });
  return { bucket, requests: 0, tokens: 0, prompt: 0, errors: 0, blocks: 0, models: new Set(), seen: 0, lastActive: bucket, stats: { request_rate: e(), tokens: e(), prompt_length: e(), error_rate: e(), block_rate: e(), distinct_models: e() } };
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
    let alerts: AnomalyAlert[] = [];
    if (st && b > st.bucket) {
      alerts = this.roll(entity, st, b);
      // Idle for longer than `dormantBuckets`: the old baseline says little about today's traffic,
      // so the entity starts over and warms up again on real traffic.
      if ((b - st.lastActive) / this.opts.bucketMs > this.opts.dormantBuckets) st = undefined;
    }
    if (!st) {
      st = fresh(b);
      this.entities.set(entity, st);
    }
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
      // Only buckets with traffic are history: one request followed by hours of silence does not
      // make a key "established".
      const canAlert = st.seen >= this.opts.warmupBuckets && st.requests >= this.opts.minRequests;
      for (const s of SIGNALS) {
        const e = st.stats[s];
        const x = values[s];
        const std = Math.max(Math.sqrt(e.variance), this.opts.minStdRatio * Math.abs(e.mean), this.opts.minStd[s]);
        const z = (x - e.mean) / std;
        if (canAlert && z >= this.opts.zThreshold) alerts.push({ entity, signal: s, value: x, mean: e.mean, std, z, bucket: st.bucket, requests: st.requests });
        this.fold(e, x, st.seen === 0);
      }
      st.seen++;
      st.lastActive = st.bucket;
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
