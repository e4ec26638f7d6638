/**
 * The limits engine: rate limits, concurrency, token, money and request budgets, pricing and token
 * estimation, over memory, IPC (node:cluster) and Redis counter stores.
 */
import cluster from 'node:cluster';
import type { LimitsConfig } from './config.js';
import { createIpcCounterStore } from './store/ipc.js';
import { createMemoryCounterStore } from './store/memory.js';
import { createRedisCounterStore } from './store/redis.js';
import type { CounterStore } from './types.js';

export * from './types.js';
export {
  limitsConfigSchema,
  limitSetSchema,
  parseLimitsConfig,
  resolveLimitSets,
  mergeLimitSets,
  DEFAULT_PRICING,
  DEFAULT_TOKENIZERS,
  DEFAULT_MAX_OUTPUT_TOKENS,
  type LimitsConfig,
  type ModelPrice,
  type TokenizerSpec,
  type ScopedLimits,
} from './config.js';
export { createLimiter, limitsFallbackAdmissions, type CreateLimiterOptions, type LimiterLog } from './limiter.js';
export { estimateInputTokens, approxTokens, tokenizerFor, warmTokenizers } from './tokens.js';
export { costUsd, costNanoUsd, priceFor } from './pricing.js';
export { formatResetDuration, retryAfterSeconds } from './headers.js';
export { periodsAt, type Periods } from './periods.js';
export { createMemoryCounterStore, type MemoryCounterStore } from './store/memory.js';
export { createRedisCounterStore, type RedisStoreOptions } from './store/redis.js';
export { createIpcCounterStore, startCounterHost, type CounterHost, type IpcPeer, type IpcStoreOptions } from './store/ipc.js';

/**
 * The store a gateway process should use for this config: Redis for `store: redis`; for
 * `memory`, the primary's counters over IPC in a cluster worker, else local memory.
 * (The cluster primary must call `startCounterHost(createMemoryCounterStore())`.)
 */
export function createCounterStoreFromConfig(config: LimitsConfig): CounterStore {
  if (config.store === 'redis') {
    return createRedisCounterStore(config.redisUrl, { keyPrefix: config.keyPrefix, commandTimeoutMs: config.storeTimeoutMs });
  }
  if (cluster.isWorker) return createIpcCounterStore({ timeoutMs: Math.max(config.storeTimeoutMs, 1000) });
  return createMemoryCounterStore();
}
