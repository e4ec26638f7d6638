/** Helpers for identity/policy/admin tests: gateways sharing a store, admin keys, HTTP calls. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { applyEnv, validateConfig } from '../../src/config/load.js';
import { createGateway, createLogger, type Gateway } from '../../src/index.js';
import type { AdminModule } from '../../src/server/admin/module.js';
import type { AdminRole } from '../../src/identity/types.js';

/** PostgreSQL of the test machine. */
export const PG_URL =
  process.env.PORTCULLIS_TEST_POSTGRES_URL ?? `postgresql://${encodeURIComponent(process.env.PGUSER ?? process.env.USER ?? userInfo().username)}@127.0.0.1:5432/test`;
/** A fixed pepper so every instance of a test shares it (64 hex chars built at run time). */
export const TEST_ENV = { PORTCULLIS_PEPPER: 'ab'.repeat(32) };

/** Null when PostgreSQL answers; otherwise the reason to skip (throws when CI=true). */
export async function pgSkipReason(): Promise<string | null> {
  // Generous timeout with one retry: on a loaded machine a slow connect is not an absent server.
  let c = new pg.Client({ connectionString: PG_URL, connectionTimeoutMillis: 10_000 });
  try {
    try {
      await c.connect();
    } catch (first) {
      if (/ECONNREFUSED|ENOTFOUND|password|role|does not exist/i.test((first as Error).message)) throw first;
      await c.end().catch(() => {});
      c = new pg.Client({ connectionString: PG_URL, connectionTimeoutMillis: 10_000 });
      await c.connect();
    }
    await c.query('select 1');
    return null;
  } catch (e) {
    if (process.env.CI === 'true') throw new Error(`PostgreSQL at ${PG_URL} is required in CI: ${(e as Error).message}`);
    const reason = `PostgreSQL unreachable at ${PG_URL} (${(e as Error).message}); skipping`;
    process.stdout.write(`# ${reason}\n`);
    return reason;
  } finally {
    await c.end().catch(() => {});
  }
}

/** Drops a test schema. */
export async function dropSchema(schema: string): Promise<void> {
  const c = new pg.Client({ connectionString: PG_URL });
  await c.connect();
  try {
    await c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  } finally {
    await c.end();
  }
}

/** A unique schema name for this run. */
export function uniqueSchema(tag: string): string {
  return `pcl_${tag}_${process.pid}_${Date.now().toString(36)}`.toLowerCase();
}

/** A started gateway instance. */
export interface Instance {
  gw: Gateway;
  url: string;
  close(): Promise<void>;
}

/** Store options: SQLite data dir or a PostgreSQL schema. */
export interface StoreSpec {
  kind: 'sqlite' | 'postgres';
  dataDir: string;
  pgSchema?: string;
}

/** A new store spec (temp data dir; a unique schema for PostgreSQL). */
export function newStore(kind: 'sqlite' | 'postgres', tag = 't'): StoreSpec {
  const dataDir = mkdtempSync(join(tmpdir(), 'pcl-id-'));
  return kind === 'postgres' ? { kind, dataDir, pgSchema: uniqueSchema(tag) } : { kind, dataDir };
}

/** Removes a store spec's files and schema. */
export async function dropStore(s: StoreSpec): Promise<void> {
  rmSync(s.dataDir, { recursive: true, force: true });
  if (s.pgSchema) await dropSchema(s.pgSchema);
}

/** Starts one gateway instance over a store (several may share one). */
export async function startInstance(store: StoreSpec, raw: Record<string, any> = {}, env: Record<string, string | undefined> = TEST_ENV): Promise<Instance> {
  const base: Record<string, any> = {
    dataDir: store.dataDir,
    ...raw,
    server: { host: '127.0.0.1', port: 0 },
    log: { level: process.env.PCL_TEST_LOG ?? 'silent' },
    identity: { revocationPollMs: 100, ...(raw.identity ?? {}) },
  };
  if (store.kind === 'postgres') base.store = { kind: 'cluster', postgresUrl: PG_URL };
  const config = validateConfig(applyEnv(base, env));
  const gw = await createGateway(config, { logger: createLogger(config.log.level), env, ...(store.pgSchema ? { pgSchema: store.pgSchema } : {}) });
  const { url } = await gw.listen();
  return { gw, url, close: () => gw.close() };
}

/** Creates an admin key directly through the lifecycle service (as `portcullis admin-keys create` does). */
export async function adminKey(gw: Gateway, role: AdminRole, tenants?: string[]): Promise<string> {
  const admin = gw.modules.get('admin') as AdminModule;
  return (await admin.lifecycle.createAdminKey({ id: 'test', source: 'test' }, { name: `${role}-key`, role, ...(tenants ? { tenants } : {}) })).key;
}

/** Calls the admin API. */
export async function adminApi(url: string, key: string, method: string, path: string, body?: unknown): Promise<{ status: number; body: any; headers: Headers }> {
  const res = await fetch(url + path, {
    method,
    headers: { authorization: `Bearer ${key}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null, headers: res.headers };
}

/** Sends a chat completion with a key; returns the status (and body). */
export async function chat(url: string, key: string, extra: Record<string, unknown> = {}, model = 'demo'): Promise<{ status: number; body: any; headers: Headers }> {
  const res = await fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hello' }], ...extra }),
  });
  const text = await res.text();
  let body: any = null;
  try {
    body = JSON.parse(text);
  } catch {
    body = text;
  }
  return { status: res.status, body, headers: res.headers };
}

/** Polls `fn` until it returns true; returns the elapsed ms, or throws after `timeoutMs`. */
export async function waitFor(fn: () => Promise<boolean>, timeoutMs: number, stepMs = 20): Promise<number> {
  const t0 = performance.now();
  for (;;) {
    if (await fn()) return performance.now() - t0;
    if (performance.now() - t0 > timeoutMs) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, stepMs));
  }
}
