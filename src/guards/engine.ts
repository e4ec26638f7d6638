/**
 * The guard engine: builds guards and pipelines from the `guards:` config (per tenant, cached),
 * holds the shared judges and pseudonym vault, enforces the size limits, and runs the
 * request stage over a provider body. This file adds the built-in guards and judges (and so
 * loads every detector) to the core in engine-core.ts.
 */
import { detectPii } from '../detect/pii/index.js';
import { detectSecrets } from '../detect/secrets/index.js';
import { compileUserPattern } from '../detect/pii/pattern.js';
import type { Finding } from '../detect/types.js';
import type { GuardsConfig, GuardsConfigInput } from './config.js';
import { createDetectionCache, type DetectionCache } from './cache.js';
import { createDetectorGuard } from './detector-guard.js';
import { createInjectionGuard } from './injection/index.js';
import { createJudgeGuard, createLlamaGuardJudge, createPromptGuardJudge, type Judge } from './judges/index.js';
import { createSpotlightGuard } from './spotlight/index.js';
import type { Guard } from './types.js';
import type { PseudonymVault } from './vault.js';
import { createEngineWith, type EngineOptions, type GuardEngine } from './engine-core.js';

export { GuardInputError, GuardLimitError, createDisabledGuardEngine, type EngineOptions, type GuardEngine, type RequestRun } from './engine-core.js';

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

/** The judges a config names (`guards.judges`), or those given pre-built. */
function createJudges(cfg: GuardsConfig, env: Record<string, string | undefined>, given: EngineOptions['judges']): Map<string, Judge> {
  const judges = new Map<string, Judge>();
  if (given?.['prompt-guard']) judges.set('prompt-guard', given['prompt-guard']);
  else if (cfg.judges.promptGuard) {
    const j = cfg.judges.promptGuard;
    const apiKey = envKey(env, j.apiKeyEnv);
    judges.set('prompt-guard', createPromptGuardJudge({ url: j.url, labels: j.labels, threshold: j.threshold, timeoutMs: j.timeoutMs, failMode: j.failMode, cacheSize: j.cacheSize, cacheTtlMs: j.cacheTtlMs, ...(apiKey ? { apiKey } : {}) }));
  }
  if (given?.['llama-guard']) judges.set('llama-guard', given['llama-guard']);
  else if (cfg.judges.llamaGuard) {
    const j = cfg.judges.llamaGuard;
    const apiKey = envKey(env, j.apiKeyEnv);
    judges.set('llama-guard', createLlamaGuardJudge({ baseUrl: j.baseUrl, model: j.model, timeoutMs: j.timeoutMs, failMode: j.failMode, cacheSize: j.cacheSize, cacheTtlMs: j.cacheTtlMs, ...(apiKey ? { apiKey } : {}) }));
  }
  return judges;
}

/** Creates the engine from a `guards:` section (raw or parsed). */
export function createGuardEngine(raw: GuardsConfig | GuardsConfigInput | undefined, opts: EngineOptions = {}): GuardEngine {
  return createEngineWith(raw, opts, { buildGuards, createJudges });
}
