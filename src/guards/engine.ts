/**
 * The guard engine: builds guards and pipelines from the `guards:` config (per tenant, cached),
 * holds the shared judges and pseudonym vault, enforces the size limits, and runs the
 * request stage over a provider body.
 */
import { randomBytes } from 'node:crypto';
import { detectPii } from '../detect/pii/index.js';
import { detectSecrets } from '../detect/secrets/index.js';
import { compileUserPattern } from '../detect/pii/index.js';
import type { Finding } from '../detect/types.js';
import { configForScope, parseGuardsConfig, type GuardsConfig, type GuardsConfigInput, type PolicyScope } from './config.js';
import { createDetectionCache, type DetectionCache } from './cache.js';
import { createDetectorGuard } from './detector-guard.js';
import { createInjectionGuard } from './injection/index.js';
import { inspect, writeBack, type Inspected } from './inspect.js';
import { createJudgeGuard, createLlamaGuardJudge, createPromptGuardJudge, type Judge } from './judges/index.js';
import { createPipeline, type Pipeline, type RunOptions } from './pipeline.js';
import { createSpotlightGuard } from './spotlight/index.js';
import type { Guard, PipelineOutcome } from './types.js';
import { createVault, type PseudonymVault } from './vault.js';
import { createRedisVault, parseVaultKey } from './vault-redis.js';

/** Raised when input exceeds the configured guard limits (the gateway answers 413). */
export class GuardLimitError extends Error {
  constructor(readonly limit: 'segment' | 'request', readonly chars: number, readonly max: number) {
    super(limit === 'segment' ? `a text segment is longer than the ${max} characters the guards accept` : `the request text is longer than the ${max} characters the guards accept`);
    this.name = 'GuardLimitError';
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

function envKey(env: Record<string, string | undefined>, name: string | undefined): string | undefined {
  return name ? env[name] : undefined;
}

/** Builds the guards of one (tenant-effective) config. */
export function buildGuards(cfg: GuardsConfig, deps: { judges: ReadonlyMap<string, Judge>; vault: PseudonymVault; hashKey: string | Uint8Array; cache?: DetectionCache }): Guard[] {
  const cache = deps.cache ?? createDetectionCache(0);
  const guards: Guard[] = [];
  if (!cfg.enabled) return guards;
  const common = { hashKey: deps.hashKey, vault: deps.vault };
  if (cfg.secrets.enabled) {
    const s = cfg.secrets;
    const opts = { ...(s.threshold !== undefined ? { threshold: s.threshold } : {}), ...(s.disable ? { disable: s.disable } : {}) };
    const scope = `secrets:${JSON.stringify(opts)}`;
    guards.push(createDetectorGuard({ name: 'secrets', detect: (t) => cache.get(scope, t, () => detectSecrets(t, opts)), action: s.action, roles: s.roles, mode: s.mode, failMode: s.failMode, timeoutMs: s.timeoutMs, ...common }));
  }
  if (cfg.pii.enabled) {
    const p = cfg.pii;
    const opts = {
      ...(p.entities ? { entities: p.entities } : {}),
      ...(p.threshold !== undefined ? { threshold: p.threshold } : {}),
      ...(p.allowList ? { allowList: p.allowList } : {}),
      ...(p.denyList ? { denyList: p.denyList } : {}),
      ...(p.defaultRegion ? { defaultRegion: p.defaultRegion } : {}),
    };
    const scope = `pii:${JSON.stringify(opts)}`;
    guards.push(createDetectorGuard({ name: 'pii', detect: (t) => cache.get(scope, t, () => detectPii(t, opts)), action: p.action, roles: p.roles, mode: p.mode, failMode: p.failMode, timeoutMs: p.timeoutMs, ...common }));
  }
  for (const r of cfg.regex) {
    const re = compileUserPattern(r.pattern, r.flags);
    const detect = (text: string): Finding[] => {
      const out: Finding[] = [];
      re.lastIndex = 0;
      for (const m of text.matchAll(re)) {
        if (m[0].length === 0) continue;
        out.push({ detector: `regex.${r.name}`, category: r.category, severity: 'medium', score: 1, start: m.index!, end: m.index! + m[0].length, reason: `matched configured pattern ${r.name}` });
        if (out.length >= 1000) break;
      }
      return out;
    };
    guards.push(createDetectorGuard({ name: `regex:${r.name}`, detect, action: r.action, roles: r.roles, mode: r.mode, ...common }));
  }
  if (cfg.injection.enabled) {
    const i = cfg.injection;
    const judge = i.uncertain === 'judge' && i.judge ? deps.judges.get(i.judge) : undefined;
    if (i.uncertain === 'judge' && !judge) throw new Error(`guards.injection.judge: judge ${i.judge ?? '(none)'} is not configured`);
    guards.push(
      createInjectionGuard({
        action: i.action,
        uncertain: i.uncertain,
        ...(judge ? { judge } : {}),
        thresholds: { ...(i.thresholds.trusted ? { trusted: i.thresholds.trusted } : {}), ...(i.thresholds.untrusted ? { untrusted: i.thresholds.untrusted } : {}) },
        roles: i.roles,
        mode: i.mode,
        failMode: i.failMode,
        timeoutMs: judge ? Math.max(i.timeoutMs, judge.timeoutMs + 500) : i.timeoutMs,
        spotlightMethod: cfg.spotlight.method,
        cache,
      }),
    );
  }
  const jc = cfg.judges;
  if (jc.promptGuard?.always && deps.judges.get('prompt-guard')) guards.push(createJudgeGuard({ judge: deps.judges.get('prompt-guard')!, roles: jc.promptGuard.roles, mode: jc.promptGuard.mode }));
  if (jc.llamaGuard?.always && deps.judges.get('llama-guard')) guards.push(createJudgeGuard({ judge: deps.judges.get('llama-guard')!, roles: jc.llamaGuard.roles, mode: jc.llamaGuard.mode }));
  if (cfg.spotlight.enabled) {
    const s = cfg.spotlight;
    guards.push(createSpotlightGuard({ method: s.method, roles: s.roles, mode: s.mode, ...(s.note ? { note: s.note } : {}) }));
  }
  return guards;
}

/** Whether any guard of a config pseudonymises (and so needs the vault). */
function usesVault(cfg: GuardsConfig): boolean {
  return cfg.pii.action === 'pseudonymize' || cfg.secrets.action === 'pseudonymize' || cfg.regex.some((r) => r.action === 'pseudonymize');
}

/** Creates the engine from a `guards:` section (raw or parsed). */
export function createGuardEngine(raw: GuardsConfig | GuardsConfigInput | undefined, opts: EngineOptions = {}): GuardEngine {
  const cfg = parseGuardsConfig(raw ?? {});
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
  const judges = new Map<string, Judge>();
  if (opts.judges?.['prompt-guard']) judges.set('prompt-guard', opts.judges['prompt-guard']);
  else if (cfg.judges.promptGuard) {
    const j = cfg.judges.promptGuard;
    const apiKey = envKey(env, j.apiKeyEnv);
    judges.set('prompt-guard', createPromptGuardJudge({ url: j.url, labels: j.labels, threshold: j.threshold, timeoutMs: j.timeoutMs, failMode: j.failMode, cacheSize: j.cacheSize, cacheTtlMs: j.cacheTtlMs, ...(apiKey ? { apiKey } : {}) }));
  }
  if (opts.judges?.['llama-guard']) judges.set('llama-guard', opts.judges['llama-guard']);
  else if (cfg.judges.llamaGuard) {
    const j = cfg.judges.llamaGuard;
    const apiKey = envKey(env, j.apiKeyEnv);
    judges.set('llama-guard', createLlamaGuardJudge({ baseUrl: j.baseUrl, model: j.model, timeoutMs: j.timeoutMs, failMode: j.failMode, cacheSize: j.cacheSize, cacheTtlMs: j.cacheTtlMs, ...(apiKey ? { apiKey } : {}) }));
  }
  const deps = { judges, vault, hashKey, cache: createDetectionCache(cfg.cacheEntries) };
  const guardsOf = (c: GuardsConfig): Guard[] => [...buildGuards(c, deps), ...(c.enabled && opts.extraGuards ? opts.extraGuards(c) : [])];
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
      if (inspected.totalChars > l.maxRequestChars) throw new GuardLimitError('request', inspected.totalChars, l.maxRequestChars);
      for (const s of inspected.segments) if (s.text.length > l.maxSegmentChars) throw new GuardLimitError('segment', s.text.length, l.maxSegmentChars);
    },
    async runRequest(api, body, o) {
      const { tenantName, tier, keyId, ...runOpts } = o;
      const scope: PolicyScope = { ...(tenantName !== undefined ? { tenantName } : {}), ...(tier !== undefined ? { tier } : {}), ...(keyId !== undefined ? { keyId } : {}) };
      const inspected = inspect(api, body);
      const only = engine.routeList(api, scope);
      engine.checkLimits(inspected, scope);
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
