/**
 * Configuration of the limits engine: one zod schema with safe defaults, shipped price
 * and tokenizer tables for common models (overridable per model glob), and the merge of
 * defaults and tiers into per-scope limit sets.
 */
import { z } from 'zod';
import type { LimitSet } from './types.js';
import { isUtcZone } from './periods.js';

const count = z.number().int().nonnegative();
/** Dollars; capped so nano-dollar counters stay exact integers (2^53 nano-USD ≈ 9 million USD). */
const money = z.number().nonnegative().max(1_000_000);

/** Limits of one scope; every field optional (absent = unlimited). */
export const limitSetSchema = z
  .object({
    requestsPerMinute: count.optional(),
    tokensPerMinute: count.optional(),
    concurrency: count.optional(),
    dailyTokens: count.optional(),
    monthlyTokens: count.optional(),
    dailyCostUsd: money.optional(),
    monthlyCostUsd: money.optional(),
    dailyRequests: count.optional(),
    monthlyRequests: count.optional(),
    maxInputTokens: count.optional(),
    maxOutputTokens: z.number().int().positive().optional(),
    maxMessages: z.number().int().positive().optional(),
  })
  .strict();

const scopedLimitsSchema = z
  .object({ key: limitSetSchema.optional(), tenant: limitSetSchema.optional(), user: limitSetSchema.optional() })
  .strict();

/** Price of one model in US dollars per million tokens. */
export const modelPriceSchema = z
  .object({
    inputPerMTok: money,
    outputPerMTok: money,
    /** Input read from the provider's prompt cache (default: the input price). */
    cachedInputPerMTok: money.optional(),
    /** Input written to the prompt cache (Anthropic 5-minute writes; default: the input price). */
    cacheWritePerMTok: money.optional(),
    /** Input written to the prompt cache for an hour (Anthropic `ttl: 1h`; default: `cacheWritePerMTok`). */
    cacheWrite1hPerMTok: money.optional(),
  })
  .strict();
export type ModelPrice = z.infer<typeof modelPriceSchema>;

/** How input tokens are counted for a model: a real BPE tokenizer or a characters-per-token approximation. */
export const tokenizerSpecSchema = z
  .object({
    kind: z.enum(['o200k', 'cl100k', 'chars']),
    /** For `chars`: ASCII characters per token (non-ASCII characters count one token each). */
    charsPerToken: z.number().positive().max(100).optional(),
  })
  .strict();
export type TokenizerSpec = z.infer<typeof tokenizerSpecSchema>;

function validTimeZone(tz: string): boolean {
  if (isUtcZone(tz)) return true;
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

/** Shipped prices (USD per million tokens); config entries are merged over these. */
export const DEFAULT_PRICING: Record<string, ModelPrice> = {
  // OpenAI
  'gpt-4o*': { inputPerMTok: 2.5, outputPerMTok: 10, cachedInputPerMTok: 1.25 },
  'gpt-4o-mini*': { inputPerMTok: 0.15, outputPerMTok: 0.6, cachedInputPerMTok: 0.075 },
  'chatgpt-4o*': { inputPerMTok: 5, outputPerMTok: 15 },
  'gpt-4.1*': { inputPerMTok: 2, outputPerMTok: 8, cachedInputPerMTok: 0.5 },
  'gpt-4.1-mini*': { inputPerMTok: 0.4, outputPerMTok: 1.6, cachedInputPerMTok: 0.1 },
  'gpt-4.1-nano*': { inputPerMTok: 0.1, outputPerMTok: 0.4, cachedInputPerMTok: 0.025 },
  'gpt-4-turbo*': { inputPerMTok: 10, outputPerMTok: 30 },
  'gpt-4': { inputPerMTok: 30, outputPerMTok: 60 },
  'gpt-4-0*': { inputPerMTok: 30, outputPerMTok: 60 },
  'gpt-3.5-turbo*': { inputPerMTok: 0.5, outputPerMTok: 1.5 },
  'gpt-5*': { inputPerMTok: 1.25, outputPerMTok: 10, cachedInputPerMTok: 0.125 },
  'gpt-5-mini*': { inputPerMTok: 0.25, outputPerMTok: 2, cachedInputPerMTok: 0.025 },
  'gpt-5-nano*': { inputPerMTok: 0.05, outputPerMTok: 0.4, cachedInputPerMTok: 0.005 },
  'o1*': { inputPerMTok: 15, outputPerMTok: 60, cachedInputPerMTok: 7.5 },
  'o1-mini*': { inputPerMTok: 1.1, outputPerMTok: 4.4, cachedInputPerMTok: 0.55 },
  'o3*': { inputPerMTok: 2, outputPerMTok: 8, cachedInputPerMTok: 0.5 },
  'o3-mini*': { inputPerMTok: 1.1, outputPerMTok: 4.4, cachedInputPerMTok: 0.55 },
  'o4-mini*': { inputPerMTok: 1.1, outputPerMTok: 4.4, cachedInputPerMTok: 0.275 },
  'text-embedding-3-small': { inputPerMTok: 0.02, outputPerMTok: 0 },
  'text-embedding-3-large': { inputPerMTok: 0.13, outputPerMTok: 0 },
  'text-embedding-ada-002': { inputPerMTok: 0.1, outputPerMTok: 0 },
  // Anthropic (cachedInputPerMTok = cache reads; cache writes 1.25× input for 5 minutes, 2× for an hour)
  'claude-opus-4*': { inputPerMTok: 15, outputPerMTok: 75, cachedInputPerMTok: 1.5, cacheWritePerMTok: 18.75, cacheWrite1hPerMTok: 30 },
  'claude-opus-4-5*': { inputPerMTok: 5, outputPerMTok: 25, cachedInputPerMTok: 0.5, cacheWritePerMTok: 6.25, cacheWrite1hPerMTok: 10 },
  'claude-sonnet-4*': { inputPerMTok: 3, outputPerMTok: 15, cachedInputPerMTok: 0.3, cacheWritePerMTok: 3.75, cacheWrite1hPerMTok: 6 },
  'claude-3-7-sonnet*': { inputPerMTok: 3, outputPerMTok: 15, cachedInputPerMTok: 0.3, cacheWritePerMTok: 3.75, cacheWrite1hPerMTok: 6 },
  'claude-3-5-sonnet*': { inputPerMTok: 3, outputPerMTok: 15, cachedInputPerMTok: 0.3, cacheWritePerMTok: 3.75, cacheWrite1hPerMTok: 6 },
  'claude-haiku-4*': { inputPerMTok: 1, outputPerMTok: 5, cachedInputPerMTok: 0.1, cacheWritePerMTok: 1.25, cacheWrite1hPerMTok: 2 },
  'claude-3-5-haiku*': { inputPerMTok: 0.8, outputPerMTok: 4, cachedInputPerMTok: 0.08, cacheWritePerMTok: 1, cacheWrite1hPerMTok: 1.6 },
  'claude-3-haiku*': { inputPerMTok: 0.25, outputPerMTok: 1.25, cachedInputPerMTok: 0.03, cacheWritePerMTok: 0.3125, cacheWrite1hPerMTok: 0.5 },
  'claude-3-opus*': { inputPerMTok: 15, outputPerMTok: 75, cachedInputPerMTok: 1.5, cacheWritePerMTok: 18.75, cacheWrite1hPerMTok: 30 },
  // The built-in demo provider: small but nonzero, so money budgets can be demonstrated.
  'demo*': { inputPerMTok: 1, outputPerMTok: 2, cachedInputPerMTok: 0.5 },
};

/** Shipped tokenizer choices; config entries are merged over these. */
export const DEFAULT_TOKENIZERS: Record<string, TokenizerSpec> = {
  'gpt-4o*': { kind: 'o200k' },
  'chatgpt-4o*': { kind: 'o200k' },
  'gpt-4.1*': { kind: 'o200k' },
  'gpt-4.5*': { kind: 'o200k' },
  'gpt-5*': { kind: 'o200k' },
  'gpt-oss*': { kind: 'o200k' },
  'o1*': { kind: 'o200k' },
  'o3*': { kind: 'o200k' },
  'o4*': { kind: 'o200k' },
  'gpt-4': { kind: 'cl100k' },
  'gpt-4-*': { kind: 'cl100k' },
  'gpt-3.5*': { kind: 'cl100k' },
  'text-embedding-*': { kind: 'cl100k' },
  '*': { kind: 'chars', charsPerToken: 3.5 },
};

/** Shipped default output caps (reserved when the client sends none); reasoning models need more. */
export const DEFAULT_MAX_OUTPUT_TOKENS: Record<string, number> = {
  '*': 4096,
  'o1*': 32768,
  'o3*': 32768,
  'o4*': 32768,
  'gpt-5*': 32768,
};

/** The limits section of the gateway config. */
export const limitsConfigSchema = z
  .object({
    /** Where counters live: this process (`memory`; with --workers the primary over IPC) or Redis. */
    store: z.enum(['memory', 'redis']).default('memory'),
    /** Redis URL for `store: redis`. */
    redisUrl: z.string().url().default('redis://127.0.0.1:6379'),
    /** Prefix of every Redis key. */
    keyPrefix: z.string().min(1).max(64).regex(/^[^{}]+$/, 'must not contain { or }').default('pcl:lim'),
    /** Redis command timeout; a dead Redis fails requests after at most this long. */
    storeTimeoutMs: z.number().int().positive().max(60_000).default(250),
    /** On store failure: refuse with 503 (`closed`) or decide with a local in-memory limiter (`open`). */
    failMode: z.enum(['closed', 'open']).default('closed'),
    /** IANA time zone of calendar day/month budgets. */
    timeZone: z.string().refine(validTimeZone, { message: 'expected an IANA time zone such as UTC or Europe/Berlin' }).default('UTC'),
    /** Concurrency leases expire after this long unless released or renewed; requests in flight renew theirs every third of it, so only crashed instances lose slots this way. */
    concurrencyLeaseMs: z.number().int().positive().default(15 * 60_000),
    /** Limits applied to every request, per scope. */
    defaults: scopedLimitsSchema.default({}),
    /** Named tiers; a principal's tier is merged over the defaults. */
    tiers: z.record(z.string(), scopedLimitsSchema).default({}),
    /** Prices per model glob, merged over DEFAULT_PRICING. */
    pricing: z.record(z.string(), modelPriceSchema).default({}),
    /**
     * A request for a model without a price when a money budget applies to it: `refuse` (403: the
     * budget could not be enforced) or `allow` (the request costs $0 and the budget does not limit it).
     */
    unpricedModels: z.enum(['refuse', 'allow']).default('refuse'),
    /** Tokenizers per model glob, merged over DEFAULT_TOKENIZERS. */
    tokenizers: z.record(z.string(), tokenizerSpecSchema).default({}),
    /** Output cap reserved when the client sends none: one number or per model glob (merged over DEFAULT_MAX_OUTPUT_TOKENS). */
    defaultMaxOutputTokens: z.union([z.number().int().positive(), z.record(z.string(), z.number().int().positive())]).default({}),
    /** Tokens added per message by chat formatting (OpenAI uses about 3), plus the same once for the reply. */
    perMessageOverheadTokens: z.number().int().nonnegative().max(100).default(3),
    /** Inputs longer than this many characters are tokenized on a prefix and extrapolated (keeps admission fast). */
    maxExactTokenizeChars: z.number().int().positive().default(64_000),
  })
  .strict();

/** The parsed limits config. */
export type LimitsConfig = z.infer<typeof limitsConfigSchema>;

/** Parses a limits config (throws a ZodError naming the failing path). */
export function parseLimitsConfig(input: unknown): LimitsConfig {
  return limitsConfigSchema.parse(input ?? {});
}

/** Limit sets per scope. */
export interface ScopedLimits {
  key?: LimitSet;
  tenant?: LimitSet;
  user?: LimitSet;
}

/** Merges limit sets field by field; later sets win. */
export function mergeLimitSets(...sets: (LimitSet | undefined)[]): LimitSet | undefined {
  let out: LimitSet | undefined;
  for (const s of sets) {
    if (!s) continue;
    out = { ...(out ?? {}) };
    for (const [k, v] of Object.entries(s)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  }
  return out;
}

const resolved = new WeakMap<LimitsConfig, Map<string, ScopedLimits>>();

/**
 * The limits per scope for a tier: `defaults` with the tier's values merged over them field
 * by field. The result is frozen and cached per config object and tier (configs are immutable).
 */
export function resolveLimitSets(config: LimitsConfig, tier?: string): ScopedLimits {
  let byTier = resolved.get(config);
  if (!byTier) resolved.set(config, (byTier = new Map()));
  const cacheKey = tier ?? '\u0000';
  const hit = byTier.get(cacheKey);
  if (hit) return hit;
  const t = tier !== undefined ? config.tiers[tier] : undefined;
  if (tier !== undefined && !t) throw new Error(`limits: unknown tier "${tier}"`);
  const out: ScopedLimits = {};
  for (const scope of ['key', 'tenant', 'user'] as const) {
    const m = mergeLimitSets(config.defaults[scope], t?.[scope]);
    if (m) out[scope] = Object.freeze(m);
  }
  Object.freeze(out);
  byTier.set(cacheKey, out);
  return out;
}
