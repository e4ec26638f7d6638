/** Shared CLI helpers: config loading with CLI overrides, clean error exits. */
import { ConfigError, loadConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';

/** Options most subcommands accept. */
export interface CommonOptions {
  config?: string;
  dataDir?: string;
  port?: string;
  host?: string;
  workers?: string;
}

/** Loads config from --config / PORTCULLIS_CONFIG plus env, then CLI flags on top. */
export function configFromOptions(o: CommonOptions): Config {
  const overrides: Record<string, unknown> = {};
  if (o.dataDir) overrides.dataDir = o.dataDir;
  if (o.host) overrides['server.host'] = o.host;
  if (o.port !== undefined) overrides['server.port'] = intOption('--port', o.port);
  if (o.workers !== undefined) overrides['server.workers'] = intOption('--workers', o.workers);
  return loadConfig({ ...(o.config ? { file: o.config } : {}), overrides });
}

function intOption(name: string, v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n)) throw new ConfigError(`${name}: expected an integer, got ${JSON.stringify(v)}`);
  return n;
}

/** Prints a failure without a stack trace and exits with `code`. */
export function fail(err: unknown, code = 2): never {
  const msg = err instanceof Error ? err.message : String(err);
  process.stderr.write(`portcullis: ${msg}\n`);
  process.exit(code);
}
