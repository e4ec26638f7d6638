/**
 * The `guards:` configuration section (zod, strict). Every field has a safe default, so an
 * absent section is the default policy: injection and jailbreaks blocked in user turns and
 * untrusted content, secrets redacted, PII flagged (not altered).
 */
import { z } from 'zod';
import { compileUserPattern } from '../detect/pii/pattern.js';
import { PII_ENTITIES } from '../detect/pii/types.js';
import { SEGMENT_ROLES, type SegmentRole } from './types.js';
import { approvalsSchema, responseGuardsSchema, toolGuardsSchema } from './response/config.js';

const roleSchema = z.enum(SEGMENT_ROLES as [SegmentRole, ...SegmentRole[]]);
const modeSchema = z.enum(['enforce', 'shadow']).default('enforce');
const failSchema = z.enum(['open', 'closed']).default('closed');
const timeoutSchema = (def: number) => z.number().int().positive().max(120_000).default(def);
const score = z.number().min(0).max(1);
const thresholdsSchema = z.object({ upper: score, lower: score }).strict();
const ALL_ROLES: SegmentRole[] = [...SEGMENT_ROLES];

/** The APIs a per-route list can name. */
export const GUARD_APIS = ['chat', 'completions', 'embeddings', 'responses', 'messages'] as const;

const injectionSchema = z
  .object({
    enabled: z.boolean().default(true),
    mode: modeSchema,
    failMode: failSchema,
    timeoutMs: timeoutSchema(3_000),
    /** What to do at or above the upper threshold: refuse, record only, or spotlight untrusted content. */
    action: z.enum(['block', 'flag', 'spotlight']).default('block'),
    /** Between the lower and upper threshold: ask a judge, flag for review, act anyway, or let it pass. */
    uncertain: z.enum(['judge', 'flag', 'act', 'allow']).default('flag'),
    /** Judge asked for uncertain segments (`uncertain: judge`). */
    judge: z.enum(['prompt-guard', 'llama-guard']).optional(),
    /** Per trust level; untrusted defaults are stricter. */
    thresholds: z.object({ trusted: thresholdsSchema.optional(), untrusted: thresholdsSchema.optional() }).strict().default({}),
    /** Roles scanned: user turns and untrusted content by default. */
    roles: z.array(roleSchema).default(['user', 'tool', 'retrieved']),
  })
  .strict();

const redactionActions = ['flag', 'block', 'redact', 'mask', 'hash', 'pseudonymize'] as const;

const piiSchema = z
  .object({
    enabled: z.boolean().default(true),
    mode: modeSchema,
    failMode: failSchema,
    timeoutMs: timeoutSchema(2_000),
    action: z.enum(redactionActions).default('flag'),
    /** Entity types (default: the structured ones; PERSON/LOCATION use NER and are opt-in). */
    entities: z.array(z.enum(PII_ENTITIES)).optional(),
    threshold: score.optional(),
    allowList: z.array(z.string().max(512)).optional(),
    denyList: z.array(z.string().max(512)).optional(),
    defaultRegion: z.string().length(2).optional(),
    roles: z.array(roleSchema).default(ALL_ROLES),
  })
  .strict();

const secretsSchema = z
  .object({
    enabled: z.boolean().default(true),
    mode: modeSchema,
    failMode: failSchema,
    timeoutMs: timeoutSchema(2_000),
    action: z.enum(redactionActions).default('redact'),
    threshold: score.optional(),
    /** Built-in rule ids to skip. */
    disable: z.array(z.string()).optional(),
    roles: z.array(roleSchema).default(ALL_ROLES),
  })
  .strict();

const regexSchema = z
  .object({
    /** Guard name suffix (`regex:<name>`). */
    name: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,40}$/i, 'expected letters, digits, _ or -'),
    /** A linear-time regular expression (checked with safe-regex2; dangerous ones are rejected). */
    pattern: z.string().min(1).max(512),
    flags: z.string().regex(/^[imsu]*$/, 'expected only the flags i, m, s, u').default('i'),
    /** Finding category reported (default CUSTOM). */
    category: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/).default('CUSTOM'),
    action: z.enum(redactionActions).default('flag'),
    mode: modeSchema,
    roles: z.array(roleSchema).default(ALL_ROLES),
  })
  .strict();

const spotlightSchema = z
  .object({
    /** Spotlight every untrusted segment (in addition to the injection guard's `spotlight` action). */
    enabled: z.boolean().default(false),
    mode: modeSchema,
    method: z.enum(['delimit', 'datamark', 'base64']).default('delimit'),
    roles: z.array(roleSchema).default(['tool', 'retrieved']),
    /** Overrides the system note added to the request. */
    note: z.string().max(2000).optional(),
  })
  .strict();

const judgeCommon = {
  /** Ask the judge on every request (as its own guard), not only for uncertain injection scores. */
  always: z.boolean().default(false),
  mode: modeSchema,
  failMode: failSchema,
  timeoutMs: timeoutSchema(2_000),
  /** Verdicts cached per text (LRU). */
  cacheSize: z.number().int().min(0).max(1_000_000).default(10_000),
  cacheTtlMs: z.number().int().min(0).max(86_400_000).default(600_000),
  apiKeyEnv: z.string().optional(),
  roles: z.array(roleSchema).default(['user', 'tool', 'retrieved']),
};

const judgesSchema = z
  .object({
    /** A Prompt-Guard-style classifier: POST {text} → {label, score}. */
    promptGuard: z
      .object({
        url: z.string().url(),
        /** Labels counting as an attack (case-insensitive). */
        labels: z.array(z.string()).default(['INJECTION', 'JAILBREAK', 'MALICIOUS', 'UNSAFE', 'LABEL_1']),
        threshold: score.default(0.5),
        ...judgeCommon,
      })
      .strict()
      .optional(),
    /** Llama Guard behind an OpenAI-compatible chat endpoint (base URL including /v1). */
    llamaGuard: z
      .object({
        baseUrl: z.string().url(),
        model: z.string().min(1),
        ...judgeCommon,
      })
      .strict()
      .optional(),
  })
  .strict()
  .default({});

const routeListSchema = z.union([z.literal('passthrough'), z.array(z.string().min(1))]);


/** Settings that a tenant may override (deep-partial, no defaults filled in). */
const tenantOverrideSchema = z
  .object({
    injection: injectionSchema.deepPartial().optional(),
    pii: piiSchema.deepPartial().optional(),
    secrets: secretsSchema.deepPartial().optional(),
    spotlight: spotlightSchema.deepPartial().optional(),
    regex: z.array(regexSchema).optional(),
    routes: z.record(z.enum(GUARD_APIS), routeListSchema).optional(),
    response: responseGuardsSchema.deepPartial().optional(),
    tools: toolGuardsSchema.deepPartial().optional(),
  })
  .strict();

/** The `guards:` section. */
export const guardsConfigSchema = z
  .object({
    /** Master switch; false forwards everything unchecked (not recommended). */
    enabled: z.boolean().default(true),
    limits: z
      .object({
        /** Longest single segment scanned; longer input is refused with 413. */
        maxSegmentChars: z.number().int().positive().default(1_048_576),
        /** Longest total text per request scanned; longer input is refused with 413. */
        maxRequestChars: z.number().int().positive().default(2_097_152),
        /**
         * Most text segments (messages, content parts, tool results, prompt entries…) per request
         * scanned; more are refused with 413. Each costs detector set-up however short it is, so a
         * body cut into ~100 000 one-word parts held the event loop ~1 s at 4 MiB.
         */
        maxSegments: z.number().int().positive().default(10_000),
        /**
         * Token-id inputs (completions `prompt`, embeddings `input` as integer arrays) are decoded
         * with the model's tokenizer (`limits.tokenizers`: the OpenAI BPEs) and scanned. Those the
         * gateway cannot decode (no known tokenizer for the model, ids outside it) are refused with
         * 400 (`refuse`) or forwarded unscanned (`pass`).
         */
        undecodableTokens: z.enum(['refuse', 'pass']).default('refuse'),
      })
      .strict()
      .default({}),
    injection: injectionSchema.default({}),
    pii: piiSchema.default({}),
    secrets: secretsSchema.default({}),
    spotlight: spotlightSchema.default({}),
    regex: z.array(regexSchema).default([]),
    judges: judgesSchema,
    /** Response-side guards (outputs, streams): see src/guards/response/config.ts. */
    response: responseGuardsSchema.default({}),
    /** Agent/tool safety: offered tools, model-proposed calls, SQL guard, approvals, taint. */
    tools: toolGuardsSchema.default({}),
    /** Approval tickets for tools that need a human. */
    approvals: approvalsSchema.default({}),
    vault: z
      .object({
        /** How long a conversation's pseudonyms live after their last use. */
        ttlSeconds: z.number().int().positive().max(30 * 86_400).default(3_600),
        /** Conversations kept (LRU). */
        maxConversations: z.number().int().positive().max(10_000_000).default(10_000),
        /** Placeholders per conversation at most. */
        maxEntries: z.number().int().positive().max(1_000_000).default(1_000),
        /** `redis` shares conversations between gateway instances (entries AES-256-GCM encrypted). */
        store: z.enum(['memory', 'redis']).default('memory'),
        /** Redis URL for `store: redis` (default: store.redisUrl). */
        redisUrl: z.string().optional(),
        /** Env variable holding the 32-byte vault key (64 hex characters or base64), required for `store: redis`. */
        keyEnv: z.string().default('PORTCULLIS_VAULT_KEY'),
      })
      .strict()
      .default({}),
    /** Detector results cached by text hash (resent chat history is not rescanned); 0 disables. */
    cacheEntries: z.number().int().min(0).max(1_000_000).default(10_000),
    /** Shadow-mode results (`guard_shadow`) older than this many days are deleted hourly; 0 keeps them. */
    shadowRetentionDays: z.number().int().min(0).max(3650).default(30),
    /** Env variable holding the HMAC key of the `hash` action (a random per-process key otherwise). */
    hashKeyEnv: z.string().default('PORTCULLIS_GUARD_HASH_KEY'),
    /** Per-API guard lists (`passthrough` = no guards); an API not listed runs every enabled guard. */
    routes: z.record(z.enum(GUARD_APIS), routeListSchema).default({}),
    /** Key/tenant tier → partial overrides (applied before the tenant's own overrides). */
    tiers: z.record(tenantOverrideSchema).default({}),
    /** Tenant name → partial overrides of the settings above (after the tier's). */
    tenants: z.record(tenantOverrideSchema).default({}),
    /** API key id (the part after `pcl_`) → partial overrides (applied last). */
    keys: z.record(tenantOverrideSchema).default({}),
  })
  .strict()
  .superRefine((cfg, ctx) => {
    const checkThresholds = (t: { upper: number; lower: number } | undefined, path: (string | number)[]) => {
      if (t && t.lower > t.upper) ctx.addIssue({ code: 'custom', path, message: `lower (${t.lower}) must not exceed upper (${t.upper})` });
    };
    checkThresholds(cfg.injection.thresholds.trusted, ['injection', 'thresholds', 'trusted']);
    checkThresholds(cfg.injection.thresholds.untrusted, ['injection', 'thresholds', 'untrusted']);
    const checkRegex = (list: ReadonlyArray<{ name: string; pattern: string; flags: string }> | undefined, base: (string | number)[]) => {
      const seen = new Set<string>();
      list?.forEach((r, i) => {
        if (seen.has(r.name)) ctx.addIssue({ code: 'custom', path: [...base, i, 'name'], message: `duplicate regex guard name '${r.name}'` });
        seen.add(r.name);
        try {
          compileUserPattern(r.pattern, r.flags);
        } catch (e) {
          ctx.addIssue({ code: 'custom', path: [...base, i, 'pattern'], message: (e as Error).message });
        }
      });
    };
    checkRegex(cfg.regex, ['regex']);
    for (const kind of ['tenants', 'tiers', 'keys'] as const) {
      for (const [name, t] of Object.entries(cfg[kind])) {
        checkThresholds(t.injection?.thresholds?.trusted as any, [kind, name, 'injection', 'thresholds', 'trusted']);
        checkThresholds(t.injection?.thresholds?.untrusted as any, [kind, name, 'injection', 'thresholds', 'untrusted']);
        checkRegex(t.regex, [kind, name, 'regex']);
      }
    }
    const judgeNeeded = (j: string | undefined, path: (string | number)[]) => {
      if (j === 'prompt-guard' && !cfg.judges.promptGuard) ctx.addIssue({ code: 'custom', path, message: 'judge prompt-guard is not configured under guards.judges.promptGuard' });
      if (j === 'llama-guard' && !cfg.judges.llamaGuard) ctx.addIssue({ code: 'custom', path, message: 'judge llama-guard is not configured under guards.judges.llamaGuard' });
    };
    judgeNeeded(cfg.injection.judge, ['injection', 'judge']);
    if (cfg.injection.uncertain === 'judge' && !cfg.injection.judge) ctx.addIssue({ code: 'custom', path: ['injection', 'judge'], message: 'uncertain: judge needs injection.judge (prompt-guard|llama-guard)' });
    for (const kind of ['tenants', 'tiers', 'keys'] as const) for (const [name, t] of Object.entries(cfg[kind])) judgeNeeded(t.injection?.judge, [kind, name, 'injection', 'judge']);
  });

/** The validated `guards:` section. */
export type GuardsConfig = z.infer<typeof guardsConfigSchema>;
/** The `guards:` section as a user writes it. */
export type GuardsConfigInput = z.input<typeof guardsConfigSchema>;
/** One tenant's overrides. */
export type TenantGuardOverride = z.infer<typeof tenantOverrideSchema>;

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return !!v && typeof v === 'object' && !Array.isArray(v);
}

function deepMerge<T>(base: T, over: unknown): T {
  if (!isPlainObject(base) || !isPlainObject(over)) return (over === undefined ? base : over) as T;
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) if (v !== undefined) out[k] = deepMerge((base as Record<string, unknown>)[k], v);
  return out as T;
}

/** Who a request is for: the tenant name, the key's (or tenant's) tier and the key id. */
export interface PolicyScope {
  tenantName?: string;
  tier?: string;
  keyId?: string;
}

function applyOverride(cfg: GuardsConfig, o: TenantGuardOverride | undefined): GuardsConfig {
  if (!o) return cfg;
  return deepMerge(cfg, { injection: o.injection, pii: o.pii, secrets: o.secrets, spotlight: o.spotlight, regex: o.regex, routes: o.routes ? { ...cfg.routes, ...o.routes } : undefined, response: o.response, tools: o.tools });
}

/** The effective configuration for a scope: the global section, then the tier's, the tenant's and the key's overrides. */
export function configForScope(cfg: GuardsConfig, scope: PolicyScope): GuardsConfig {
  const tier = scope.tier !== undefined ? cfg.tiers[scope.tier] : undefined;
  const tenant = scope.tenantName !== undefined ? cfg.tenants[scope.tenantName] : undefined;
  const key = scope.keyId !== undefined ? cfg.keys[scope.keyId] : undefined;
  if (!tier && !tenant && !key) return cfg;
  return { ...applyOverride(applyOverride(applyOverride(cfg, tier), tenant), key), tenants: {}, tiers: {}, keys: {} };
}

/** The effective configuration of one tenant (see configForScope). */
export function configForTenant(cfg: GuardsConfig, tenantName: string | undefined): GuardsConfig {
  return configForScope(cfg, tenantName !== undefined ? { tenantName } : {});
}

/** Parses a `guards:` section (throws a ZodError naming the failing path). */
export function parseGuardsConfig(raw: unknown): GuardsConfig {
  return guardsConfigSchema.parse(raw ?? {});
}
