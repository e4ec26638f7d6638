/** Loads the configuration: YAML file (optional) + environment overrides → validated, frozen Config. */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import type { ZodError } from 'zod';
import { configSchema, type Config } from './schema.js';

/** A configuration error whose message names every failing path and what was expected. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** Formats zod issues as `path: message` lines. */
export function formatZodError(err: ZodError): string {
  return err.issues
    .map((i) => {
      const path = i.path.length ? i.path.join('.') : '(root)';
      if (i.code === 'unrecognized_keys') return `${path}: unknown key(s) ${i.keys.map((k) => JSON.stringify(k)).join(', ')}`;
      if (i.code === 'invalid_enum_value') return `${path}: expected one of ${i.options.join('|')}, got ${JSON.stringify(i.received)}`;
      if (i.code === 'invalid_union_discriminator') return `${path}: expected one of ${i.options.map(String).join('|')}`;
      if (i.code === 'invalid_union') {
        const msgs = [...new Set(i.unionErrors.flatMap((u) => u.issues.map((x) => x.message)))];
        return `${path}: ${msgs.join(' or ')}`;
      }
      return `${path}: ${i.message}`;
    })
    .join('\n');
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o as Record<string, unknown>)) deepFreeze(v);
  }
  return o;
}

/** Reads and parses a YAML config file (no validation). */
export function readConfigFile(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError(`cannot read config file ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  try {
    return parseYaml(text, { maxAliasCount: 100 }) ?? {};
  } catch (e) {
    throw new ConfigError(`config file ${path} is not valid YAML: ${(e as Error).message}`);
  }
}

type Env = Record<string, string | undefined>;

function setIn(obj: Record<string, any>, path: string[], value: unknown): void {
  let cur = obj;
  for (const p of path.slice(0, -1)) {
    if (cur[p] === undefined || cur[p] === null) cur[p] = {};
    cur = cur[p];
  }
  cur[path[path.length - 1]!] = value;
}

/**
 * Applies environment overrides. Provider env vars (OPENAI_API_KEY, ANTHROPIC_API_KEY,
 * OPENAI_BASE_URL, ANTHROPIC_BASE_URL) add default routes only when the file does not
 * define providers/routes itself.
 */
export function applyEnv(raw: Record<string, any>, env: Env): Record<string, any> {
  const out: Record<string, any> = structuredClone(raw);
  const num = (name: string, v: string) => {
    const n = Number(v);
    if (!Number.isInteger(n)) throw new ConfigError(`${name}: expected an integer, got ${JSON.stringify(v)}`);
    return n;
  };
  if (env.PORTCULLIS_PORT) setIn(out, ['server', 'port'], num('PORTCULLIS_PORT', env.PORTCULLIS_PORT));
  if (env.PORTCULLIS_HOST) setIn(out, ['server', 'host'], env.PORTCULLIS_HOST);
  if (env.PORTCULLIS_WORKERS) setIn(out, ['server', 'workers'], num('PORTCULLIS_WORKERS', env.PORTCULLIS_WORKERS));
  if (env.PORTCULLIS_DATA_DIR) out.dataDir = env.PORTCULLIS_DATA_DIR;
  if (env.PORTCULLIS_LOG_LEVEL) setIn(out, ['log', 'level'], env.PORTCULLIS_LOG_LEVEL);
  if (env.PORTCULLIS_POSTGRES_URL) setIn(out, ['store', 'postgresUrl'], env.PORTCULLIS_POSTGRES_URL);
  if (env.PORTCULLIS_REDIS_URL) setIn(out, ['store', 'redisUrl'], env.PORTCULLIS_REDIS_URL);
  if (env.PORTCULLIS_STORE) setIn(out, ['store', 'kind'], env.PORTCULLIS_STORE);
  if (env.PORTCULLIS_HEAP_GROWING_PERCENT) setIn(out, ['server', 'heapGrowthPercent'], num('PORTCULLIS_HEAP_GROWING_PERCENT', env.PORTCULLIS_HEAP_GROWING_PERCENT));

  if (out.providers === undefined && out.routes === undefined) {
    const providers: Record<string, unknown> = { demo: { type: 'demo' } };
    const routes: unknown[] = [{ model: 'demo*', provider: 'demo' }];
    if (env.OPENAI_API_KEY || env.OPENAI_BASE_URL) {
      providers.openai = { type: 'openai', baseUrl: env.OPENAI_BASE_URL || 'https://api.openai.com/v1', apiKeyEnv: 'OPENAI_API_KEY' };
      routes.push({ model: 'gpt-*', provider: 'openai' }, { model: 'o*', provider: 'openai' }, { model: 'text-embedding-*', provider: 'openai' });
      if (env.OPENAI_BASE_URL) routes.push({ model: '*', provider: 'openai' }); // any model a local vLLM/Ollama serves
    }
    if (env.ANTHROPIC_API_KEY || env.ANTHROPIC_BASE_URL) {
      providers.anthropic = { type: 'anthropic', baseUrl: env.ANTHROPIC_BASE_URL || 'https://api.anthropic.com', apiKeyEnv: 'ANTHROPIC_API_KEY' };
      routes.splice(1, 0, { model: 'claude-*', provider: 'anthropic' });
    }
    out.providers = providers;
    out.routes = routes;
  }
  return out;
}

/** Validates raw config (already merged with env) and returns it deep-frozen. */
export function validateConfig(raw: unknown): Config {
  const r = configSchema.safeParse(raw ?? {});
  if (!r.success) throw new ConfigError(`invalid configuration:\n${formatZodError(r.error)}`);
  const cfg = r.data;
  for (const [i, route] of cfg.routes.entries()) {
    if (!cfg.providers[route.provider]) {
      throw new ConfigError(`invalid configuration:\nroutes.${i}.provider: unknown provider ${JSON.stringify(route.provider)} (expected one of ${Object.keys(cfg.providers).join('|')})`);
    }
  }
  return deepFreeze(cfg);
}

/** Loads config from an optional file plus the environment. */
export function loadConfig(opts: { file?: string; env?: Env; overrides?: Record<string, unknown> } = {}): Config {
  const env = opts.env ?? process.env;
  const file = opts.file ?? env.PORTCULLIS_CONFIG;
  const raw = file ? readConfigFile(file) : {};
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new ConfigError('invalid configuration:\n(root): expected a mapping');
  const merged = applyEnv(raw as Record<string, any>, env);
  for (const [k, v] of Object.entries(opts.overrides ?? {})) {
    if (v !== undefined) setIn(merged, k.split('.'), v);
  }
  return validateConfig(merged);
}
