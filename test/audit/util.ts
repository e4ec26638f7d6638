/** Helpers of the audit tests. */
import pg from 'pg';
import { Kysely, PostgresDialect } from 'kysely';
import { after, test } from 'node:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { migrate, openDb, type Db } from '../../src/store/db.js';
import { dropSchema, PG_URL, pgSkipReason, uniqueSchema } from '../identity/util.js';
import type { Database } from '../../src/store/schema.js';
import { newEventId, type QueuedEvent } from '../../src/audit/event.js';

/**
 * Opens PostgreSQL in its own schema with the migration tables pinned to that schema (Kysely's
 * migrator otherwise finds the lock table of any other schema on the server and fails).
 */
export async function openPgSchema(url: string, schema: string): Promise<Db> {
  const pool = new pg.Pool({ connectionString: url, max: 4, connectionTimeoutMillis: 5000, options: `-c search_path=${schema}` });
  pool.on('error', () => {});
  // A checked-out client whose connection drops also emits 'error' (the query itself rejects too).
  pool.on('connect', (c) => c.on('error', () => {}));
  await pool.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
  const kysely = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  const db: Db = { kysely, dialect: 'postgres', ping: async () => true, close: () => kysely.destroy() };
  // The gateway's own migrate(): bookkeeping tables pinned to the schema, and a run failed only by
  // another test's schema dropped meanwhile is run again.
  await migrate(db, schema);
  return db;
}


/**
 * Registers `check` as two tests: on a fresh SQLite data dir, and on PostgreSQL in a schema of its
 * own (skipped with the reason when the server is unreachable outside CI). `defer` registers
 * cleanups run after the file's tests (in reverse order).
 */
export function onBothStores(title: string, tag: string, check: (db: Db, defer: (fn: () => unknown) => void) => Promise<void>): void {
  const cleanups: Array<() => unknown> = [];
  const defer = (fn: () => unknown) => void cleanups.push(fn);
  after(async () => {
    for (const c of cleanups.reverse()) await c();
  });
  test(`${title} (SQLite)`, async () => {
    const dir = mkdtempSync(join(tmpdir(), `pcl-${tag}-`));
    const db = await openDb({ dataDir: dir });
    defer(() => rmSync(dir, { recursive: true, force: true }));
    defer(() => db.close());
    await check(db, defer);
  });
  test(`${title} (PostgreSQL)`, async (t) => {
    const skip = await pgSkipReason();
    if (skip) return t.skip(skip);
    const schema = uniqueSchema(tag);
    defer(() => dropSchema(schema));
    const db = await openPgSchema(PG_URL, schema);
    defer(() => db.close());
    await check(db, defer);
  });
}

/**
 * A file's cleanups, run in reverse order after its tests, and `tmp(prefix)`: a fresh temporary
 * directory removed with them.
 */
export function fileCleanups(): { cleanups: Array<() => Promise<void> | void>; tmp(prefix: string): string } {
  const cleanups: Array<() => Promise<void> | void> = [];
  after(async () => {
    for (const c of cleanups.reverse()) await c();
  });
  return {
    cleanups,
    tmp(prefix) {
      const d = mkdtempSync(join(tmpdir(), prefix));
      cleanups.push(() => rmSync(d, { recursive: true, force: true }));
      return d;
    },
  };
}

/** A small request event for writer tests (request id `r<i>`, tenant `tenant`, key k1). */
export function writerEvent(i: number, tenant = 'ten_a'): QueuedEvent {
  return { event: { id: newEventId(), ts: Date.now(), kind: 'request', requestId: `r${i}`, tenantId: tenant, keyId: 'k1', model: 'm', status: 200, tokensIn: 10, tokensOut: 5, costUsd: 0.001 } };
}

/**
 * PostgreSQL through a local TCP proxy on `port` (the test's way to cut or pause the server), in a
 * schema of its own tagged `tag`; `defer` gets the schema's drop and the database's close.
 */
export async function openPgSchemaVia(port: number, tag: string, defer: (fn: () => Promise<void> | void) => void): Promise<{ db: Db; schema: string }> {
  const schema = uniqueSchema(tag);
  defer(() => dropSchema(schema));
  const url = new URL(PG_URL);
  url.hostname = '127.0.0.1';
  url.port = String(port);
  const db = await openPgSchema(url.toString(), schema);
  defer(() => db.close());
  return { db, schema };
}
