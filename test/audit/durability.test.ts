/**
 * Durability of the audit writer: spill to the local file while the store is down, replay when
 * it returns, no loss and no duplicates — on SQLite (a failing writer) and on real PostgreSQL
 * cut off mid-load by a TCP proxy in the test (the shared server itself is never stopped).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import pg from 'pg';
import { openDb, type Db } from '../../src/store/db.js';
import { fileCleanups, openPgSchemaVia, writerEvent } from './util.js';
import type { QueuedEvent } from '../../src/audit/event.js';
import { AuditStore } from '../../src/audit/store.js';
import { AuditWriter } from '../../src/audit/writer.js';
import { PG_URL, pgSkipReason } from '../identity/util.js';

const { cleanups, tmp: tmpDir } = fileCleanups();
const tmp = () => tmpDir('pcl-audit-');
const ev = writerEvent;

/** A store wrapper that fails while `down` is set (the writer cannot tell it from a real outage). */
function flaky(store: AuditStore) {
  const s = { down: false, calls: 0, async insert(b: readonly QueuedEvent[]) {
    s.calls++;
    if (s.down) throw new Error('store unavailable');
    await store.insert(b);
  } };
  return s;
}

/** A SQLite audit store behind `flaky`, already failing, and the spill directory to use. */
async function downSqliteStore() {
  const dir = tmp();
  const db = await openDb({ dataDir: dir });
  cleanups.push(() => db.close());
  const f = flaky(new AuditStore(db.kysely));
  f.down = true;
  return { db, f, spill: join(dir, 'spill') };
}

async function ids(db: Db): Promise<string[]> {
  return (await db.kysely.selectFrom('audit_events').select('id').execute()).map((r) => r.id);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('SQLite: events written while the store fails are spilled and replayed; none lost, none duplicated', async () => {
  const dir = tmp();
  const db = await openDb({ dataDir: dir });
  cleanups.push(() => db.close());
  const store = new AuditStore(db.kysely);
  const f = flaky(store);
  const w = new AuditWriter({ store: f, spillDir: join(dir, 'spill'), queueSize: 500, batchSize: 50, flushIntervalMs: 5, retryIntervalMs: 30 });
  const want: string[] = [];
  for (let i = 0; i < 3000; i++) {
    if (i === 1000) f.down = true;
    if (i === 2000) f.down = false;
    const e = ev(i);
    want.push(e.event.id);
    w.push(e);
    if (i % 100 === 0) await sleep(5);
  }
  await w.close();
  assert.ok(w.stats.spilled > 0, 'some events were spilled');
  assert.ok(w.stats.replayed > 0, 'and replayed');
  const got = await ids(db);
  assert.equal(got.length, 3000);
  assert.deepEqual(new Set(got), new Set(want));
  assert.deepEqual(readdirSync(join(dir, 'spill')), [], 'spill files removed after replay');
});

test('SQLite: a full queue spills instead of dropping; replaying a segment twice stores it once', async () => {
  const { db, f, spill } = await downSqliteStore();
  const w = new AuditWriter({ store: f, spillDir: spill, queueSize: 10, batchSize: 5, flushIntervalMs: 1000, retryIntervalMs: 60_000 });
  for (let i = 0; i < 200; i++) w.push(ev(i));
  await w.flush();
  assert.equal(w.stats.spilled, 200);
  // duplicate the spill file as a second segment (what a crash between insert and unlink leaves behind)
  const active = readdirSync(spill).find((x) => x.startsWith('active-'))!;
  copyFileSync(join(spill, active), join(spill, `seg-1-99999999-0.jsonl`));
  appendFileSync(join(spill, `seg-1-99999999-0.jsonl`), '{"event":{"id":"torn'); // torn last line of a crash
  f.down = false;
  assert.equal(await w.replay(), true);
  await w.close();
  assert.equal((await ids(db)).length, 200);
});

test('SQLite: a spill segment is replayed in batches as it is read; a store failure part-way puts it back, and the next replay stores every event once', async () => {
  const dir = tmp();
  const db = await openDb({ dataDir: dir });
  cleanups.push(() => db.close());
  const store = new AuditStore(db.kysely);
  let failAt = 0; // fail the insert call with this number (0: never)
  let calls = 0;
  const sink = {
    async insert(b: readonly QueuedEvent[]) {
      if (++calls === failAt) throw new Error('store unavailable');
      await store.insert(b);
    },
  };
  const spill = join(dir, 'spill');
  const w = new AuditWriter({ store: sink, spillDir: spill, queueSize: 100_000, batchSize: 50, flushIntervalMs: 1000, retryIntervalMs: 60_000 });
  // A segment of 1 000 events left by an earlier process, with a torn line in it (a crash while appending, then appends resumed).
  const events = Array.from({ length: 1000 }, (_, i) => ev(i));
  const lines = events.map((q) => JSON.stringify(q));
  lines.splice(400, 0, '{"event":{"id":"torn');
  writeFileSync(join(spill, 'seg-1-99999998-0.jsonl'), lines.join('\n') + '\n');
  failAt = 7; // the 7th batch of 50 fails: 300 events are in, the segment must come back whole
  assert.equal(await w.replay(), false);
  assert.equal(calls, 7, 'batches were inserted while the file was read, up to the failure');
  assert.deepEqual(readdirSync(spill).filter((f) => f.startsWith('seg-')), ['seg-1-99999998-0.jsonl'], 'the segment is back for the next replay');
  assert.equal((await ids(db)).length, 300);
  failAt = 0;
  assert.equal(await w.replay(), true);
  assert.equal(w.stats.replayed, 1000);
  const stored = await ids(db);
  assert.equal(stored.length, 1000, 'every event once');
  assert.deepEqual(new Set(stored), new Set(events.map((q) => q.event.id)));
  assert.deepEqual(readdirSync(spill).filter((f) => f.endsWith('.jsonl')), [], 'nothing left to replay');
  await w.close();
});

test('store down and spill file unwritable: no unhandled rejection, events kept in memory up to queueSize (the rest dropped and counted), stored once both are back', async () => {
  const { db, f, spill } = await downSqliteStore();
  const logged: string[] = [];
  const log = { warn: (_o: object, m: string) => void logged.push(m), error: (_o: object, m: string) => void logged.push(m), info: (_o: object, m: string) => void logged.push(m) };
  const w = new AuditWriter({ store: f, spillDir: spill, queueSize: 20, batchSize: 5, flushIntervalMs: 5, retryIntervalMs: 60_000, log });
  // The spill file cannot be written (as with a full disk): its path is a directory.
  const active = join(spill, `active-${process.pid}.jsonl`);
  mkdirSync(active);
  const unhandled: unknown[] = [];
  const onUnhandled = (e: unknown) => void unhandled.push(e);
  process.on('unhandledRejection', onUnhandled);
  try {
    const events = Array.from({ length: 30 }, (_, i) => ev(i));
    for (const q of events) w.push(q);
    await sleep(50);
    await w.flush();
    await sleep(10);
    assert.deepEqual(unhandled, [], 'no unhandled rejection');
    assert.equal(w.stats.queued, 20, 'kept in memory up to queueSize');
    assert.equal(w.stats.dropped, 10, 'the rest dropped and counted');
    assert.equal(logged.filter((m) => m.includes('spill file cannot be written')).length, 1, 'logged once per episode');
    assert.ok(logged.some((m) => m.includes('dropped')));
    // Both back: the retry replays (nothing spilled) and flushes what was kept.
    rmSync(active, { recursive: true });
    f.down = false;
    assert.equal(await w.replay(), true);
    await w.flush();
    await w.close();
    const stored = await ids(db);
    assert.equal(stored.length, 20);
    assert.equal(new Set(stored).size, 20);
    assert.equal(w.stats.dropped, 10, 'nothing more lost at close');
  } finally {
    process.off('unhandledRejection', onUnhandled);
  }
});

test('SQLite: rows prepared when queued (the store\'s prepare) spill as the same JSON lines as events and replay to the same events, payloads included', async () => {
  const dir = tmp();
  const db = await openDb({ dataDir: dir });
  cleanups.push(() => db.close());
  const store = new AuditStore(db.kysely, 'UTC', db.sqlite);
  cleanups.push(() => store.close());
  let down = true;
  let prepared = 0;
  // The store's own prepare/insertPrepared (so the writer queues rows, not events), failing while `down`.
  const sink = {
    insert: (b: readonly QueuedEvent[]) => store.insert(b),
    prepare: (q: QueuedEvent) => (prepared++, store.prepare(q)),
    insertPrepared: async (b: Parameters<AuditStore['insertPrepared']>[0]) => {
      if (down) throw new Error('store unavailable');
      await store.insertPrepared(b);
    },
  };
  const spill = join(dir, 'spill');
  const w = new AuditWriter({ store: sink, spillDir: spill, queueSize: 100, batchSize: 10, flushIntervalMs: 1000, retryIntervalMs: 60_000 });
  const events: QueuedEvent[] = Array.from({ length: 30 }, (_, i) => {
    const q = ev(i);
    q.event.categories = i % 2 ? ['EMAIL', 'with "quotes" \\ and \u2028'] : [];
    q.event.guards = [{ guard: 'pii', stage: 'request', mode: 'enforce', action: 'flag', categories: ['EMAIL'], findings: 1, latencyMs: 0.25 }];
    if (i % 3 === 0) q.payload = { tenantId: 'ten_a', expiresAt: 1234, request: `enc-req-${i}`, response: i % 2 ? null : 'enc-res' };
    return q;
  });
  for (const q of events.slice(0, 10)) w.push(q);
  await w.flush(); // fails: these prepared rows go to the spill file
  assert.equal(prepared, 10);
  assert.equal(w.stats.spilled, 10);
  assert.ok(store.prepare(ev(0)).packed, 'a file-backed store packs the rows it prepares (the spilled lines above were unpacked)');
  for (const q of events.slice(10)) w.push(q); // the store is marked down: spilled as events, not prepared
  assert.equal(prepared, 10);
  const active = readdirSync(spill).find((x) => x.startsWith('active-'))!;
  const lines = readFileSync(join(spill, active), 'utf8').trimEnd().split('\n');
  assert.deepEqual(lines, events.map((q) => JSON.stringify(q)), 'a prepared row spills exactly as JSON.stringify of its event');
  down = false;
  assert.equal(await w.replay(), true);
  for (let i = 0; i < 5; i++) w.push(ev(100 + i)); // the store is back: prepared again and written
  await w.close();
  assert.equal(prepared, 15);
  for (const q of events) {
    assert.deepEqual(await store.get(q.event.id), q.event);
    assert.equal((await store.payload(q.event.id))?.request, q.payload?.request);
  }
  assert.equal(await store.count(), 35);
  const page = await store.search({ category: 'EMAIL', limit: 100 });
  assert.equal(page.data.length, 15, 'the categories column is searchable after a replay');
});

test('SQLite: spill files left by a dead process are adopted and replayed by the next writer', async () => {
  const dir = tmp();
  const db = await openDb({ dataDir: dir });
  cleanups.push(() => db.close());
  const spill = join(dir, 'spill');
  const w0 = new AuditWriter({ store: new AuditStore(db.kysely), spillDir: spill, queueSize: 10, batchSize: 10, flushIntervalMs: 10, retryIntervalMs: 10 });
  await w0.close();
  const lines = Array.from({ length: 50 }, (_, i) => JSON.stringify(ev(i)));
  writeFileSync(join(spill, 'active-2147480000.jsonl'), lines.join('\n') + '\n'); // pid that does not exist
  const w = new AuditWriter({ store: new AuditStore(db.kysely), spillDir: spill, queueSize: 10, batchSize: 10, flushIntervalMs: 10, retryIntervalMs: 10 });
  await sleep(100);
  await w.close();
  assert.equal((await ids(db)).length, 50);
  assert.deepEqual(readdirSync(spill), []);
});

/** A TCP proxy to PostgreSQL that the test can cut and restore. */
async function pgProxy(target: { host: string; port: number }) {
  const sockets = new Set<Socket>();
  let server: Server | undefined;
  let port = 0;
  const start = () =>
    new Promise<void>((res) => {
      server = createServer((c) => {
        const up = connect(target.port, target.host);
        sockets.add(c).add(up);
        const drop = () => {
          c.destroy();
          up.destroy();
          sockets.delete(c);
          sockets.delete(up);
        };
        c.on('error', drop).on('close', drop);
        up.on('error', drop).on('close', drop);
        c.pipe(up).pipe(c);
      });
      server.listen(port, '127.0.0.1', () => {
        port = (server!.address() as { port: number }).port;
        res();
      });
    });
  await start();
  return {
    get port() {
      return port;
    },
    async cut() {
      await new Promise<void>((r) => {
        server!.close(() => r());
        for (const s of sockets) s.destroy();
      });
    },
    restore: start,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => (server?.listening ? server.close(() => r()) : r()));
    },
  };
}

test('PostgreSQL cut off mid-load (TCP proxy): no event lost, none duplicated', async (t) => {
  const skip = await pgSkipReason();
  if (skip) return t.skip(skip);
  const u = new URL(PG_URL);
  const proxy = await pgProxy({ host: u.hostname || '127.0.0.1', port: Number(u.port || 5432) });
  cleanups.push(() => proxy.close());
  const { db, schema } = await openPgSchemaVia(proxy.port, 'audit', (fn) => cleanups.push(fn));
  const dir = tmp();
  const w = new AuditWriter({ store: new AuditStore(db.kysely), spillDir: join(dir, 'spill'), queueSize: 1000, batchSize: 100, flushIntervalMs: 10, retryIntervalMs: 100 });
  const want: string[] = [];
  const N = 3000;
  for (let i = 0; i < N; i++) {
    if (i === 1000) await proxy.cut();
    if (i === 2000) await proxy.restore();
    const e = ev(i);
    want.push(e.event.id);
    w.push(e);
    if (i % 50 === 0) await sleep(10);
  }
  await w.close();
  assert.deepEqual(readdirSync(join(dir, 'spill')).filter((f) => f.startsWith('claim-')), [], 'close() waited for the replay that had claimed a segment');
  assert.ok(w.stats.spilled > 0, `the outage was noticed (stats ${JSON.stringify(w.stats)})`);
  const direct = new pg.Client({ connectionString: PG_URL, options: `-c search_path=${schema}` });
  await direct.connect();
  try {
    const r = await direct.query('select id from audit_events');
    const got = r.rows.map((x: { id: string }) => x.id);
    assert.equal(got.length, N, 'every event stored exactly once');
    assert.deepEqual(new Set(got), new Set(want));
  } finally {
    await direct.end();
  }
});
