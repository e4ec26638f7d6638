/**
 * A store that stops answering (PostgreSQL behind a TCP proxy in the test that stops forwarding,
 * as a paused server or a black-holed network does; a SQLite store whose writes hang): batch
 * writes give up at their deadline and spill, `close()` returns within its own deadline with the
 * queue spilled, and once the store answers again every event is stored exactly once (a write
 * that commits late is harmless: ids are idempotent).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import pg from 'pg';
import { openDb } from '../../src/store/db.js';
import { fileCleanups, openPgSchemaVia, writerEvent } from './util.js';
import type { QueuedEvent } from '../../src/audit/event.js';
import { AuditStore } from '../../src/audit/store.js';
import { AuditWriter } from '../../src/audit/writer.js';
import { PG_URL, pgSkipReason } from '../identity/util.js';

const { cleanups, tmp: tmpDir } = fileCleanups();
const tmp = () => tmpDir('pcl-audit-dl-');
let seq = 0;
const ev = () => writerEvent(++seq);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Resolves with how long `p` took, or rejects when it takes longer than `ms` (so a hang fails the test instead of stalling it). */
async function within(ms: number, what: string, p: Promise<unknown>): Promise<number> {
  const t0 = Date.now();
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, rej) => (timer = setTimeout(() => rej(new Error(`${what} did not return within ${ms} ms`)), ms)));
  try {
    await Promise.race([p, limit]);
    return Date.now() - t0;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * A TCP proxy to PostgreSQL that can stop forwarding without closing anything: connections are
 * accepted, bytes either way are held (a paused server: it neither reads nor answers), and passed
 * on when it resumes.
 */
async function pausableProxy(target: { host: string; port: number }) {
  let paused = false;
  const conns = new Set<{ c: Socket; up?: Socket; toUp: Buffer[]; toClient: Buffer[] }>();
  const open = (conn: { c: Socket; up?: Socket; toUp: Buffer[]; toClient: Buffer[] }) => {
    const up = connect(target.port, target.host);
    conn.up = up;
    const drop = () => {
      conn.c.destroy();
      up.destroy();
      conns.delete(conn);
    };
    up.on('data', (d: Buffer) => (paused ? conn.toClient.push(d) : conn.c.write(d)));
    up.on('error', drop).on('close', drop);
    conn.c.on('close', drop);
    for (const d of conn.toUp.splice(0)) up.write(d);
  };
  let accepted = 0;
  const server: Server = createServer((c) => {
    accepted++;
    const conn: { c: Socket; up?: Socket; toUp: Buffer[]; toClient: Buffer[] } = { c, toUp: [], toClient: [] };
    conns.add(conn);
    c.on('error', () => c.destroy());
    c.on('close', () => {
      conn.up?.destroy();
      conns.delete(conn);
    });
    c.on('data', (d: Buffer) => (paused || !conn.up ? conn.toUp.push(d) : conn.up.write(d)));
    if (!paused) open(conn);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    port: (server.address() as { port: number }).port,
    /** Connections accepted so far. */
    get accepted() {
      return accepted;
    },
    pause() {
      paused = true;
    },
    resume() {
      paused = false;
      for (const conn of [...conns]) {
        if (!conn.up) open(conn);
        else for (const d of conn.toUp.splice(0)) conn.up.write(d);
        for (const d of conn.toClient.splice(0)) conn.c.write(d);
      }
    },
    async close() {
      for (const conn of conns) {
        conn.c.destroy();
        conn.up?.destroy();
      }
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

test('PostgreSQL stops answering (paused behind a TCP proxy): batches are spilled at the write deadline, close() returns at its deadline, and after the store answers again every event is stored exactly once', async (t) => {
  const skip = await pgSkipReason();
  if (skip) return t.skip(skip);
  const u = new URL(PG_URL);
  const proxy = await pausableProxy({ host: u.hostname || '127.0.0.1', port: Number(u.port || 5432) });
  cleanups.push(() => proxy.close());
  cleanups.push(() => proxy.resume()); // whatever happens, let stalled queries finish before the pool closes
  const { db, schema } = await openPgSchemaVia(proxy.port, 'auditdl', (fn) => cleanups.push(fn));
  const spill = join(tmp(), 'spill');
  const store = new AuditStore(db.kysely, 'UTC', undefined, { writeTimeoutMs: 300 });
  const opts = { store, spillDir: spill, queueSize: 10_000, batchSize: 50, flushIntervalMs: 10, retryIntervalMs: 100, writeTimeoutMs: 300, closeTimeoutMs: 400 };
  const w = new AuditWriter(opts);
  const want: string[] = [];
  const push = (k: number) => {
    for (let i = 0; i < k; i++) {
      const q = ev();
      want.push(q.event.id);
      w.push(q);
    }
  };
  push(100);
  await w.flush();
  assert.equal(w.stats.written, 100, 'stored while the server answers');

  proxy.pause();
  const connectionsBefore = proxy.accepted;
  push(200);
  const flushMs = await within(5_000, 'flush with a stalled store', w.flush());
  assert.ok(flushMs < 2_000, `spilled at the write deadline (${flushMs} ms)`);
  assert.equal(w.stats.spilled, 200, JSON.stringify(w.stats));
  assert.ok(w.stats.storeDown && w.stats.timeouts >= 1, JSON.stringify(w.stats));
  assert.equal(w.stats.queued, 0, 'nothing left in memory');
  push(50); // the store is down: straight to the spill file
  await sleep(300); // retries come due meanwhile: none may start while the stalled write holds its connection
  const closeMs = await within(5_000, 'close() with a stalled store', w.close());
  assert.ok(closeMs < 2_000, `close() returned (${closeMs} ms)`);
  assert.equal(w.stats.spilled, 250);
  assert.equal(w.stats.dropped, 0);
  assert.equal(proxy.accepted - connectionsBefore, 0, 'no retry opened another connection while the stalled write held one');

  const direct = new pg.Client({ connectionString: PG_URL, options: `-c search_path=${schema}` });
  await direct.connect();
  cleanups.push(() => direct.end());
  const count = async () => Number((await direct.query('select count(*) as n from audit_events')).rows[0].n);
  // The server answers again: the stalled batch (50 events, also spilled) commits late.
  proxy.resume();
  for (let i = 0; i < 50 && (await count()) < 150; i++) await sleep(50);
  assert.equal(await count(), 150, 'the stalled batch committed late');
  // A new writer (the next start) replays the spill: the late-committed events are skipped, not doubled.
  const w2 = new AuditWriter({ ...opts, closeTimeoutMs: 10_000 });
  let ok = false;
  for (let i = 0; i < 100 && !ok; i++) {
    ok = await w2.replay();
    if (!ok) await sleep(100);
  }
  assert.ok(ok, 'the spill replays once the store answers');
  await w2.close();
  assert.deepEqual(readdirSync(spill), [], 'nothing left to replay');
  const got = (await direct.query('select id from audit_events')).rows.map((r: { id: string }) => r.id);
  assert.equal(got.length, want.length, 'every event stored exactly once');
  assert.deepEqual(new Set(got), new Set(want));
});

test('close() on a store whose writes hang (SQLite behind a sink that stops answering): the batch in flight and the queue are spilled at the close deadline, and stored exactly once later', async () => {
  const dir = tmp();
  const db = await openDb({ dataDir: dir });
  cleanups.push(() => db.close());
  const store = new AuditStore(db.kysely);
  let hang = false;
  const hung: Array<() => void> = [];
  // The real store, except that while `hang` is set a write waits (and then runs) until released: a late commit.
  const sink = {
    async insert(b: readonly QueuedEvent[]) {
      if (hang) await new Promise<void>((r) => hung.push(r));
      await store.insert(b);
    },
  };
  const spill = join(dir, 'spill');
  // A long write deadline: close()'s own deadline has to end the wait.
  const w = new AuditWriter({ store: sink, spillDir: spill, queueSize: 10_000, batchSize: 20, flushIntervalMs: 5, retryIntervalMs: 60_000, writeTimeoutMs: 60_000, closeTimeoutMs: 200 });
  const want: string[] = [];
  hang = true;
  for (let i = 0; i < 100; i++) {
    const q = ev();
    want.push(q.event.id);
    w.push(q);
  }
  await sleep(20); // the first batch is in flight, hanging
  assert.equal(hung.length, 1);
  const closeMs = await within(5_000, 'close() with a hanging store', w.close());
  assert.ok(closeMs < 1_000, `close() returned at its deadline (${closeMs} ms)`);
  assert.equal(w.stats.spilled, 100, `the batch in flight and the queue are spilled (${JSON.stringify(w.stats)})`);
  assert.equal(w.stats.dropped, 0);
  hang = false;
  for (const r of hung) r(); // the hung write commits late
  await sleep(50);
  const w2 = new AuditWriter({ store: sink, spillDir: spill, queueSize: 10_000, batchSize: 20, flushIntervalMs: 5, retryIntervalMs: 60_000 });
  assert.equal(await w2.replay(), true);
  await w2.close();
  const got = (await db.kysely.selectFrom('audit_events').select('id').execute()).map((r) => r.id);
  assert.equal(got.length, 100, 'every event once');
  assert.deepEqual(new Set(got), new Set(want));
});
