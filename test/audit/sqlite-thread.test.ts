import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDb } from '../../src/store/db.js';
import { AuditStore, preparedRow } from '../../src/audit/store.js';
import { newEventId, type QueuedEvent } from '../../src/audit/event.js';
import { insertStatements, WRITER_WAL_AUTOCHECKPOINT } from '../../src/audit/sqlite-rows.js';

const batch = (n: number, tenant: string): QueuedEvent[] =>
  Array.from({ length: n }, (_, i) => ({ event: { id: newEventId(), ts: Date.now(), kind: 'request' as const, tenantId: tenant, requestId: `req_${i}`, status: 200, tokensIn: 3, tokensOut: 4 }, ...(i % 10 === 0 ? { payload: { tenantId: tenant, expiresAt: Date.now() + 60_000, request: 'enc-req', response: null } } : {}) }));

test('SQLite audit batches go through the writer thread, replays are idempotent, and after the thread stops batches are written on the main thread', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pcl-audit-thread-'));
  const db = await openDb({ dataDir: dir });
  const store = new AuditStore(db.kysely, 'UTC', db.sqlite);
  try {
    const first = batch(500, 'ten_a');
    await Promise.all([store.insert(first), store.insert(batch(300, 'ten_b'))]);
    assert.equal(store.threaded, true, 'the writer thread is used for a file-backed database');
    // Written rows gave their packed bytes back, and the thread its buffers: both are reused.
    const parts = store as unknown as { packer: { freeChunks: number }; sendBuffers: ArrayBuffer[] };
    assert.ok(parts.packer.freeChunks > 0, 'chunks of written rows are free for reuse');
    assert.ok(parts.sendBuffers.length > 0, 'the thread handed its batch buffers back');
    // A batch far above the default size (~6 MB packed) is written, and its buffer not kept.
    const big = Array.from({ length: 5000 }, (_, i) => ({ event: { ...batch(1, 'ten_big')[0]!.event, requestId: `big_${i}`, detail: 'x'.repeat(1000) } }));
    await store.insert(big);
    assert.equal(await store.count(), 5800);
    assert.ok(parts.sendBuffers.every((b) => b.byteLength <= 4 << 20), 'no buffer over 4 MiB is kept');
    await store.insert(first); // replayed after a failure: every id is known, nothing is added
    assert.equal(await store.count(), 5800);
    const one = await store.get(first[10]!.event.id);
    assert.equal(one?.tenantId, 'ten_a');
    assert.equal((await store.payload(first[10]!.event.id))?.request, 'enc-req');
    const usage = await store.usage({ groupBy: ['tenant'] });
    assert.deepEqual(usage.map((u) => [u.tenantId, u.requests, u.tokensIn]).sort(), [['ten_a', 500, 1500], ['ten_b', 300, 900], ['ten_big', 5000, 15000]]);

    await store.close();
    assert.equal(store.threaded, false);
    await store.insert(batch(5, 'ten_c'));
    assert.equal(await store.count(), 5805, 'written on the main thread once the thread is gone');
  } finally {
    await store.close();
    await db.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('batches the writer thread had not answered when it died are written on the main thread from their packed rows, payloads included', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pcl-audit-thread-death-'));
  const db = await openDb({ dataDir: dir });
  const store = new AuditStore(db.kysely, 'UTC', db.sqlite);
  try {
    await store.insert(batch(20, 'ten_a')); // the thread runs
    const worker = (store as unknown as { worker: { terminate(): Promise<number> } }).worker;
    const inFlight = batch(200, 'ten_b');
    assert.ok(store.prepare(inFlight[0]!).packed, 'rows are packed while the thread runs');
    // Stopped first, so the thread cannot answer: the batch is posted to it as packed bytes all
    // the same (its exit is not known yet) and written here when the exit is.
    const terminated = worker.terminate();
    const written = store.insert(inFlight);
    await terminated;
    await written;
    assert.equal(store.threaded, false);
    assert.equal(await store.count(), 220);
    assert.deepEqual(await store.get(inFlight[37]!.event.id), inFlight[37]!.event);
    assert.equal((await store.payload(inFlight[30]!.event.id))?.request, 'enc-req');
    assert.equal(store.prepare(inFlight[0]!).packed, undefined, 'without the thread rows are kept as values');
  } finally {
    await store.close();
    await db.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('without a thread (thread: false) the same batches are written on the main thread', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pcl-audit-nothread-'));
  const db = await openDb({ dataDir: dir });
  const store = new AuditStore(db.kysely, 'UTC', db.sqlite, { thread: false });
  try {
    await store.insert(batch(50, 'ten_a'));
    assert.equal(store.threaded, false);
    assert.equal(await store.count(), 50);
  } finally {
    await db.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('multi-row statements (writer thread) store exactly what single-row statements store: duplicate ids within and across batches, every batch size path, day, kind and empty categories as literals or bound, the JSON given as bytes stored as the same TEXT', async () => {
  const dirs = [mkdtempSync(join(tmpdir(), 'pcl-audit-single-')), mkdtempSync(join(tmpdir(), 'pcl-audit-multi-'))];
  const dbs = await Promise.all(dirs.map((d) => openDb({ dataDir: d })));
  try {
    const [single, multi] = dbs.map((d) => d.sqlite!);
    multi!.pragma('temp_store = MEMORY');
    const writes = [insertStatements(single!), insertStatements(multi!, { multiRow: true })];
    const store = new AuditStore(dbs[0]!.kysely, 'UTC');
    const seen: unknown[][] = [];
    let n = 0;
    for (const size of [1, 9, 10, 11, 49, 50, 51, 61, 137, 500]) {
      const rows = batch(size, `ten_${size % 3}`).map((q) => preparedRow(store.prepare(q)));
      if (seen.length) rows.splice(size >> 1, 0, seen[n++ % seen.length]!); // a replayed id
      if (size > 2) rows.push(rows[1]!); // the same id twice in one batch
      // Chunks whose rows differ in day or kind (bound, not SQL literals), and a day that is not a date.
      if (size === 137) rows[70]![3] = 'admin';
      if (size === 500) rows[120]![2] = '1999-12-31';
      if (size === 61) rows[5]![2] = "2026-01-01', 'x'); --";
      if (size === 500) rows[310]![10] = '|EMAIL|'; // a chunk with finding categories (bound)
      seen.push(...rows);
      const payloads = rows.slice(0, 2).map((r) => [r[0], 'ten_p', r[1], Date.now() + 60_000, 'enc', null]);
      writes[0]!(rows, payloads);
      // The writer thread's rows: the event JSON as its UTF-8 bytes (unpackRows with lastAsBytes).
      writes[1]!(rows.map((r) => [...r.slice(0, -1), Buffer.from(r[r.length - 1] as string)]), payloads);
    }
    const dump = (d: typeof single) => JSON.stringify([d!.prepare('SELECT rowid, * FROM audit_events ORDER BY rowid').all(), d!.prepare('SELECT rowid, * FROM audit_payloads ORDER BY rowid').all()]);
    assert.equal(dump(multi), dump(single));
    assert.deepEqual(multi!.prepare('SELECT DISTINCT typeof(data) AS t FROM audit_events').all(), [{ t: 'text' }], 'bytes are stored as TEXT');
    assert.equal((multi!.prepare('SELECT count(*) AS n FROM audit_events').get() as { n: number }).n, 1 + 9 + 10 + 11 + 49 + 50 + 51 + 61 + 137 + 500);
    assert.equal((multi!.prepare("SELECT count(*) AS n FROM audit_events WHERE day = '2026-01-01'', ''x''); --'").get() as { n: number }).n, 1);
    // A row that violates a constraint fails its whole batch on both paths (nothing of it is kept).
    const bad = batch(60, 'ten_bad').map((q) => preparedRow(store.prepare(q)));
    bad[55]![1] = null; // ts NOT NULL
    for (const w of writes) assert.throws(() => w(bad, []), /NOT NULL/);
    assert.equal(dump(multi), dump(single));
  } finally {
    for (const d of dbs) await d.close();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  }
});

test('while the writer thread runs it checkpoints the WAL: a commit on the main connection does not copy the audit WAL into the database file on the event loop; after the thread stops the main connection checkpoints again', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pcl-audit-ckpt-'));
  const db = await openDb({ dataDir: dir });
  const main = db.sqlite!;
  const file = join(dir, 'portcullis.db');
  const store = new AuditStore(db.kysely, 'UTC', main);
  const before = Number(main.pragma('wal_autocheckpoint', { simple: true }));
  const pageSize = Number(main.pragma('page_size', { simple: true }));
  // A main-connection write, as the identity service's last-used flush does.
  const mainCommit = (v: string) => db.kysely.insertInto('kv_meta').values({ k: `ckpt-test-${v}`, v }).execute();
  try {
    // More WAL than the main connection's threshold (1 000 pages), less than the writer thread's.
    const payloadBytes = 4 * 1024;
    const big = 'x'.repeat(payloadBytes);
    const walBytes = () => statSync(`${file}-wal`).size;
    let events = 0;
    while (walBytes() < before * pageSize * 1.2) {
      await store.insert(Array.from({ length: 100 }, (_, j) => ({ event: { id: newEventId(), ts: Date.now(), kind: 'request' as const, tenantId: 'ten_a', requestId: `r${events + j}` }, payload: { tenantId: 'ten_a', expiresAt: Date.now() + 60_000, request: big, response: null } })));
      events += 100;
    }
    assert.ok(walBytes() < WRITER_WAL_AUTOCHECKPOINT * pageSize, 'below the writer thread checkpoint');
    assert.equal(store.threaded, true);
    assert.equal(Number(main.pragma('wal_autocheckpoint', { simple: true })), 0, 'the main connection hands checkpoints to the writer thread');
    const small = statSync(file).size;
    assert.ok(small < events * payloadBytes * 0.1, `nothing checkpointed yet (${small} bytes)`);
    await mainCommit('1');
    assert.ok(statSync(file).size < small + 64 * pageSize, `a main-connection commit did not checkpoint (${small} -> ${statSync(file).size} bytes)`);

    await store.close();
    assert.equal(Number(main.pragma('wal_autocheckpoint', { simple: true })), before, 'restored when the thread stops');
    await mainCommit('2');
    assert.ok(statSync(file).size > small + events * payloadBytes * 0.9, `with the thread gone the main connection checkpoints again (${small} -> ${statSync(file).size} bytes)`);
    assert.equal(await store.count(), events);
  } finally {
    await store.close();
    await db.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
