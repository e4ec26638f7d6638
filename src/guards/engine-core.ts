/**
 * The guard engine without the built-in guards: config per scope, pipelines (cached), the
 * pseudonym vault, size limits and the request stage over a provider body. The built-in guards
 * and judges (every detector: PII, secrets, injection model…) come from src/guards/engine.ts,
 * which the gateway imports only when guards are enabled.
 */
import { randomBytes } from 'node:crypto';
import { configForScope, parseGuardsConfig, type GuardsConfig, type GuardsConfigInput, type PolicyScope } from './config.js';
import { createDetectionCache, type DetectionCache } from './cache.js';
import { inspect, writeBack, type Inspected } from './inspect.js';
import type { Judge } from './judges/index.js';
import { createPipeline, type Pipeline, type RunOptions } from './pipeline.js';
import type { Guard, PipelineOutcome, SegmentPath, TokenCodec } from './types.js';
import { createVault, type PseudonymVault } from './vault.js';
import { createRedisVault, parseVaultKey } from './vault-redis.js';

/** Raised when input exceeds the configured guard limits (the gateway answers 413). */
export class GuardLimitError extends Error {
  /** `chars` is the count that went over `max`: characters, or for `segments` the number of text segments. */
  constructor(readonly limit: 'segment' | 'request' | 'segments', readonly chars: number, readonly max: number) {
    super(
      limit === 'segment'
        ? `a text segment is longer than the ${max} characters the guards accept`
        : limit === 'segments'
          ? `the request has more than the ${max} text parts the guards accept`
          : `the request text is longer than the ${max} characters the guards accept`,
    );
    this.name = 'GuardLimitError';
  }
}

/** Raised when token-id input cannot be decoded for the guards and `limits.undecodableTokens` is `refuse` (the gateway answers 400). */
export class GuardInputError extends Error {
  constructor(
    readonly path: SegmentPath,
    readonly model: string | undefined,
  ) {
    super(`token-id input at '${path.join('.')}' cannot be decoded for the guards${model ? ` (no tokenizer known for model '${model}')` : ''}`);
    this.name = 'GuardInputError';
  }
}

/** Dependencies of the engine that are not configuration. */
export interface EngineOptions {
  env?: Record<string, string | undefined>;
  /** Pre-built judges (tests); otherwise built from `guards.judges`. */
  judges?: Partial<Record<'prompt-guard' | 'llama-guard', Judge>>;
  vault?: PseudonymVault;
  /**
   * More guards per effective config (e.g. the response-stage guards of src/guards/response),
   * appended after the built-in ones for every tenant/tier/key scope.
   */
  extraGuards?: (cfg: GuardsConfig) => Guard[];
  /** Redis URL used by `vault.store: redis` when `vault.redisUrl` is not set (the gateway passes store.redisUrl). */
  redisUrl?: string;
  /** The tokenizer of a model, to decode token-id inputs (the gateway passes the limits' tokenizers); without it such input is undecodable. */
  tokenCodec?: (model: string) => TokenCodec | undefined;
}

/** The result of running the request stage over a body. */
export interface RequestRun {
  inspected: Inspected;
  outcome: PipelineOutcome;
  /** The body to forward (a copy when something changed). */
  body: Record<string, unknown>;
}

/** A configured set of guards. */
export interface GuardEngine {
  readonly config: GuardsConfig;
  readonly vault: PseudonymVault;
  readonly judges: ReadonlyMap<string, Judge>;
  /** The effective pipeline of a scope (tenant name or {tenantName, tier}), cached. */
  pipelineFor(scope?: string | PolicyScope): Pipeline;
  /** Whether any request-stage guard runs for this scope (false: guards off, nothing to inspect). */
  hasRequestGuards(scope: PolicyScope): boolean;
  /** The effective configuration of a scope. */
  configFor(scope?: string | PolicyScope): GuardsConfig;
  /** Guard names to run for an API (undefined = all; empty = pass-through). */
  routeList(api: string, scope?: string | PolicyScope): ReadonlySet<string> | undefined;
  /** Throws GuardLimitError when the inspected text is over the limits. */
  checkLimits(inspected: Inspected, scope?: string | PolicyScope): void;
  /** Inspects a provider body and runs the request stage; does not throw for blocks (see outcome.action). */
  runRequest(api: string, body: Record<string, unknown>, opts: Omit<RunOptions, 'api' | 'only'> & PolicyScope): Promise<RequestRun>;
  close(): Promise<void>;
}

/** Whether any guard of a config pseudonymises (and so needs the vault). */
function usesVault(cfg: GuardsConfig): boolean {
  return cfg.pii.action === 'pseudonymize' || cfg.secrets.action === 'pseudonymize' || cfg.regex.some((r) => r.action === 'pseudonymize');
}

/**
 * The built-in guards and judges: src/guards/engine.ts (it loads every detector). An engine
 * created without them (`null`) serves a config whose guards are switched off (`enabled: false`).
 */
export interface GuardBuiltins {
  buildGuards(cfg: GuardsConfig, deps: { judges: ReadonlyMap<string, Judge>; vault: PseudonymVault; hashKey: string | Uint8Array; cache?: DetectionCache }): Guard[];
  createJudges(cfg: GuardsConfig, env: Record<string, string | undefined>, given: EngineOptions['judges']): Map<string, Judge>;
}

/** Creates the engine from a `guards:` section (raw or parsed) and the built-in guards. */
export function createEngineWith(raw: GuardsConfig | GuardsConfigInput | undefined, opts: EngineOptions, builtins: GuardBuiltins | null): GuardEngine {
  const cfg = parseGuardsConfig(raw ?? {});
  if (!builtins && cfg.enabled) throw new Error('the guard engine needs the built-in guards when guards are enabled');
  const env = opts.env ?? process.env;
  const hashKey = env[cfg.hashKeyEnv] || randomBytes(32);
  const vaultOpts = { ttlMs: cfg.vault.ttlSeconds * 1000, maxConversations: cfg.vault.maxConversations, maxEntries: cfg.vault.maxEntries };
  let vault: PseudonymVault;
  if (opts.vault) vault = opts.vault;
  else if (cfg.vault.store === 'redis') {
    const url = cfg.vault.redisUrl ?? opts.redisUrl;
    if (!url) throw new Error('guards.vault.store is redis but neither guards.vault.redisUrl nor store.redisUrl is set');
    const keyText = env[cfg.vault.keyEnv];
    if (!keyText) throw new Error(`guards.vault.store is redis: set ${cfg.vault.keyEnv} to a 32-byte key (64 hex characters or base64)`);
    vault = createRedisVault({ ...vaultOpts, redis: url, encryptionKey: parseVaultKey(keyText) });
  } else vault = createVault(vaultOpts);
  const judges = builtins ? builtins.createJudges(cfg, env, opts.judges) : new Map(Object.entries(opts.judges ?? {}).filter((e): e is [string, Judge] => e[1] !== undefined));
  const deps = { judges, vault, hashKey, cache: createDetectionCache(cfg.cacheEntries) };
  const guardsOf = (c: GuardsConfig): Guard[] => [...(builtins ? builtins.buildGuards(c, deps) : []), ...(c.enabled && opts.extraGuards ? opts.extraGuards(c) : [])];
  const toScope = (s?: string | PolicyScope): PolicyScope => (typeof s === 'string' ? { tenantName: s } : s ?? {});
  /** Only names that have overrides matter for the cache key (bounded by the config). */
  const keyOf = (s: PolicyScope) => {
    const tier = s.tier !== undefined && cfg.tiers[s.tier] ? s.tier : '';
    const tenant = s.tenantName !== undefined && cfg.tenants[s.tenantName] ? s.tenantName : '';
    const key = s.keyId !== undefined && cfg.keys[s.keyId] ? s.keyId : '';
    return `${tier}\0${tenant}\0${key}`;
  };
  const pipelines = new Map<string, Pipeline>([['\0\0', createPipeline(guardsOf(cfg))]]);
  const pipelineOf = (s: PolicyScope): Pipeline => {
    const k = keyOf(s);
    let p = pipelines.get(k);
    if (!p) {
      p = createPipeline(guardsOf(configForScope(cfg, s)));
      pipelines.set(k, p);
    }
    return p;
  };
  // Build every tenant's and tier's pipeline now, so a bad override fails at start-up, not on a request.
  for (const tenantName of Object.keys(cfg.tenants)) pipelineOf({ tenantName });
  for (const tier of Object.keys(cfg.tiers)) pipelineOf({ tier });
  for (const keyId of Object.keys(cfg.keys)) pipelineOf({ keyId });
  const effective = (s?: string | PolicyScope) => configForScope(cfg, toScope(s));

  const engine: GuardEngine = {
    config: cfg,
    vault,
    judges,
    pipelineFor(scope) {
      return pipelineOf(toScope(scope));
    },
    hasRequestGuards(scope) {
      return (pipelineOf(scope).byStage.get('request')?.length ?? 0) > 0;
    },
    configFor: effective,
    routeList(api, scope) {
      const list = effective(scope).routes[api as keyof GuardsConfig['routes']];
      if (list === undefined) return undefined;
      return new Set(list === 'passthrough' ? [] : list);
    },
    checkLimits(inspected, scope) {
      const l = effective(scope).limits;
      if (inspected.segments.length > l.maxSegments) throw new GuardLimitError('segments', inspected.segments.length, l.maxSegments);
      if (inspected.totalChars > l.maxRequestChars) throw new GuardLimitError('request', inspected.totalChars, l.maxRequestChars);
      for (const s of inspected.segments) if (s.text.length > l.maxSegmentChars) throw new GuardLimitError('segment', s.text.length, l.maxSegmentChars);
    },
    async runRequest(api, body, o) {
      const { tenantName, tier, keyId, ...runOpts } = o;
      const scope: PolicyScope = { ...(tenantName !== undefined ? { tenantName } : {}), ...(tier !== undefined ? { tier } : {}), ...(keyId !== undefined ? { keyId } : {}) };
      const inspected = inspect(api, body, opts.tokenCodec ? { tokenCodec: opts.tokenCodec } : {});
      const only = engine.routeList(api, scope);
      engine.checkLimits(inspected, scope);
      if (inspected.undecodedTokens.length > 0 && effective(scope).limits.undecodableTokens === 'refuse') throw new GuardInputError(inspected.undecodedTokens[0]!, inspected.model);
      const shared = vault.prepare && runOpts.conversationId && runOpts.tenant !== undefined && usesVault(effective(scope));
      if (shared) await vault.prepare!(runOpts.tenant!, runOpts.conversationId!);
      const outcome = await pipelineOf(scope).run('request', inspected.segments, { ...runOpts, api, ...(only ? { only } : {}) });
      if (shared && outcome.action !== 'block') await vault.commit!(runOpts.tenant!, runOpts.conversationId!);
      const out = outcome.action === 'block' ? body : writeBack(inspected, body, outcome.segments, outcome.changed, outcome.run.systemNotes);
      return { inspected, outcome, body: out };
    },
    async close() {
      for (const j of judges.values()) await j.close().catch(() => {});
      if (!opts.vault) await vault.close?.().catch(() => {});
    },
  };
  return engine;
}

/**
 * An engine for a config whose guards are switched off (`guards.enabled: false`): the same
 * interface (every pipeline empty) without loading any detector, so a gateway that runs no guard
 * does not pay their memory. Overrides cannot switch guards on (the master switch is global).
 */
export function createDisabledGuardEngine(raw: GuardsConfig | GuardsConfigInput | undefined, opts: EngineOptions = {}): GuardEngine {
  return createEngineWith(raw, opts, null);
}
