/** Configuration of identification (`identity:`) and of the admin API (`admin:`). */
import { z } from 'zod';

const bucketSchema = z
  .object({
    /** Failed attempts allowed in a burst. */
    burst: z.number().int().min(1).max(100_000),
    /** Sustained failed attempts per minute. */
    perMinute: z.number().positive().max(1_000_000),
  })
  .strict();

/** `identity:` section. */
export const identityConfigSchema = z
  .object({
    /** Key lookups cached per instance (bounded LRU). */
    cacheSize: z.number().int().min(1).max(10_000_000).default(10_000),
    /** Safety-net TTL of a cached key record; revocations invalidate the cache explicitly. */
    cacheTtlMs: z.number().int().min(100).max(3_600_000).default(60_000),
    /**
     * How often each instance polls the key-change sequence in the database (SQLite, and the
     * fallback behind LISTEN/NOTIFY on PostgreSQL). Bounds revocation latency on SQLite workers.
     */
    revocationPollMs: z.number().int().min(20).max(60_000).default(250),
    /** last_used_at is written in batches at most this often (never one write per request). */
    lastUsedFlushMs: z.number().int().min(100).max(3_600_000).default(30_000),
    /**
     * Keys written per transaction by that flush, with a turn of the event loop between
     * transactions: on SQLite each UPDATE runs on the event loop (20 000 keys in one transaction
     * held it 480-600 ms; in transactions of 200 the longest pause was 29 ms).
     */
    lastUsedFlushChunk: z.number().int().min(1).max(100_000).default(200),
    /** Default overlap of a rotated key with its successor. */
    rotationGraceSeconds: z.number().int().min(0).max(90 * 86_400).default(86_400),
    /**
     * Failed-authentication limits (token buckets per client address and per key id). Shared by
     * all instances through the limits' counter store when that is shared (`limits.store: redis`,
     * or the primary under `serve --workers`), unless `shared` is false.
     */
    failedAuth: z
      .object({
        perAddress: bucketSchema.default({ burst: 20, perMinute: 30 }),
        perKey: bucketSchema.default({ burst: 10, perMinute: 10 }),
        shared: z.boolean().default(true),
      })
      .strict()
      .default({}),
  })
  .strict()
  .default({});

/** `admin:` section. */
export const adminConfigSchema = z
  .object({
    /** Serve the admin API under /admin/v1. */
    enabled: z.boolean().default(true),
    /** Largest page size of list endpoints. */
    maxPageSize: z.number().int().min(1).max(10_000).default(500),
  })
  .strict()
  .default({});

export type IdentityConfig = z.infer<typeof identityConfigSchema>;
export type AdminConfig = z.infer<typeof adminConfigSchema>;
