/**
 * The admin-event bridge on real PostgreSQL: a row committed out of id order (a lower serial id
 * after a higher one was bridged) is still bridged; a row bridged twice is stored once; the saved
 * cursor moves only once the bridged events are stored (or spilled).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import type { AuditModule } from '../../src/audit/module.js';
import { dropStore, newStore, PG_URL, pgSkipReason, startInstance, waitFor, type Instance, type StoreSpec } from '../identity/util.js';

let skip: string | null = null;
let store: StoreSpec;
let inst: Instance;
let audit: AuditModule;
/** A connection of the test's own in the gateway's schema (autocommit unless told otherwise). */
let sqlc: pg.Client;
const extra: Instance[] = [];

before(async () => {
  skip = await pgSkipReason();
  if (skip) return;
  store = newStore('postgres', 'admbridge');
  // The timer never fires during the test: each poll is the test's own.
  inst = await startInstance(store, { audit: { adminPollMs: 600_000, flushIntervalMs: 20, retryIntervalMs: 50 } });
  audit = inst.gw.modules.get('audit') as AuditModule;
  sqlc = new pg.Client({ connectionString: PG_URL, options: `-c search_path=${store.pgSchema}` });
  await sqlc.connect();
});
after(async () => {
  if (skip) return;
  await sqlc?.end().catch(() => {});
  for (const i of extra) await i.close();
  await inst?.close();
  await dropStore(store);
});

/** Inserts an admin_events row on `c` and returns its id. */
async function insertRow(c: pg.Client | pg.PoolClient, action: string): Promise<number> {
  const r = await c.query(`INSERT INTO admin_events (ts, actor, actor_role, action, target_type, target_id, tenant_id, source, request_id, detail) VALUES ($1, 'test', 'owner', $2, 'tenant', 't1', NULL, 'test', NULL, NULL) RETURNING id`, [Date.now(), action]);
  return Number(r.rows[0].id);
}

async function savedCursor(): Promise<number | undefined> {
  const r = await sqlc.query(`SELECT v FROM kv_meta WHERE k = 'audit.admin_cursor'`);
  return r.rows[0] ? Number(r.rows[0].v) : undefined;
}

async function bridge(a: AuditModule = audit): Promise<number> {
  const n = await a.pollAdminEvents();
  await a.flush();
  return n;
}

const stored = async (id: number) => !!(await audit.store.get(`adm_${id}`));

test('a row committed after a higher id was bridged is bridged too; the saved cursor waits below it', async (t) => {
  if (skip) return t.skip(skip);
  await bridge();
  // The serial id is handed out at INSERT, the row becomes visible at COMMIT.
  const slow = new pg.Client({ connectionString: PG_URL, options: `-c search_path=${store.pgSchema}` });
  await slow.connect();
  try {
    await slow.query('BEGIN');
    const low = await insertRow(slow, 'test.slow');
    const high = await insertRow(sqlc, 'test.fast');
    assert.ok(high > low);
    assert.equal(await bridge(), 1);
    assert.ok(await stored(high), 'the committed row is bridged');
    assert.equal(await stored(low), false, 'the open one is not visible yet');
    assert.ok((await savedCursor())! < low, 'the saved cursor stays below the hole');
    await slow.query('COMMIT');
    assert.equal(await bridge(), 1);
    assert.ok(await stored(low), 'the row committed late is bridged');
    assert.equal(await savedCursor(), high, 'the hole is filled: the cursor moves past it');
    assert.equal(await bridge(), 0, 'nothing bridged twice by the same instance');
  } finally {
    await slow.end();
  }
});

test('explicit ids out of order are bridged, and a row bridged twice is stored once', async (t) => {
  if (skip) return t.skip(skip);
  const base = (await savedCursor())! + 1_000;
  const ins = (id: number) => sqlc.query(`INSERT INTO admin_events (id, ts, actor, action) VALUES ($1, $2, 'test', 'test.explicit')`, [id, Date.now()]);
  await ins(base + 20);
  assert.equal(await bridge(), 1);
  await ins(base + 10);
  await ins(base + 5);
  assert.equal(await bridge(), 2);
  assert.ok((await stored(base + 5)) && (await stored(base + 10)) && (await stored(base + 20)));

  // A crash before the cursor was saved: another instance starts over from 0 and bridges every row again.
  const admins = async () => (await audit.store.search({ kind: 'admin', limit: 1000 })).data.map((e) => e.id);
  const before = await admins();
  await sqlc.query(`UPDATE kv_meta SET v = '0' WHERE k = 'audit.admin_cursor'`);
  const again = await startInstance(store, { audit: { adminPollMs: 600_000, flushIntervalMs: 20 } });
  extra.push(again);
  const n = await bridge(again.gw.modules.get('audit') as AuditModule);
  assert.ok(n >= before.length, `every row bridged again (${n})`);
  const after = await admins();
  assert.equal(after.length, before.length, 'stored once');
  assert.equal(new Set(after).size, after.length);
});

test('the cursor is saved only once the bridged events are stored or spilled', async (t) => {
  if (skip) return t.skip(skip);
  await bridge();
  const saved = (await savedCursor())!;
  const spillDir = join(store.dataDir, 'audit-spill');
  // The store fails (its table is gone) and the spill file cannot be written (its directory is a file).
  await sqlc.query('ALTER TABLE audit_events RENAME TO audit_events_away');
  rmSync(spillDir, { recursive: true, force: true });
  writeFileSync(spillDir, '');
  let id: number;
  try {
    id = await insertRow(sqlc, 'test.outage');
    assert.equal(await audit.pollAdminEvents(), 1);
    await audit.flush();
    assert.equal(await savedCursor(), saved, 'not saved while the event is only in memory');
    assert.equal(await audit.pollAdminEvents(), 0);
    assert.equal(await savedCursor(), saved, 'still not saved on the next poll');
  } finally {
    rmSync(spillDir, { force: true });
    mkdirSync(spillDir, { recursive: true, mode: 0o700 });
    await sqlc.query('ALTER TABLE audit_events_away RENAME TO audit_events');
  }
  await waitFor(async () => {
    await bridge();
    return (await stored(id)) && (await savedCursor())! >= id;
  }, 5000);
});

test('a poll whose second page query fails bridges nothing of it and skips nothing: the next poll reads those rows again', async (t) => {
  if (skip) return t.skip(skip);
  await bridge();
  // A fresh instance watches no holes yet, so its first poll's queries are the pages of new rows.
  const fresh = await startInstance(store, { audit: { adminPollMs: 600_000, flushIntervalMs: 20, retryIntervalMs: 50 } });
  extra.push(fresh);
  const freshAudit = fresh.gw.modules.get('audit') as AuditModule;
  // Two pages of new rows (a page is 1 000 rows), after the explicit ids of the tests above.
  await sqlc.query(`SELECT setval(pg_get_serial_sequence('admin_events', 'id'), (SELECT max(id) FROM admin_events))`);
  const r = await sqlc.query(
    `INSERT INTO admin_events (ts, actor, actor_role, action, target_type, target_id, tenant_id, source, request_id, detail)
     SELECT $1, 'test', 'owner', 'test.pages', 'tenant', 't' || g, NULL, 'test', NULL, NULL FROM generate_series(1, 1500) g RETURNING id`,
    [Date.now()],
  );
  const ids = r.rows.map((x: { id: string }) => Number(x.id));
  // The gateway's database handle fails its second query of admin_events in the next poll.
  const db = fresh.gw.db as { kysely: unknown };
  const real = db.kysely as { selectFrom(t: string): unknown };
  let calls = 0;
  db.kysely = new Proxy(real, {
    get(target, prop, recv) {
      if (prop !== 'selectFrom') return Reflect.get(target, prop, recv);
      return (table: string) => {
        if (table === 'admin_events' && ++calls === 2) throw new Error('connection reset (test)');
        return target.selectFrom(table);
      };
    },
  });
  try {
    await assert.rejects(freshAudit.pollAdminEvents(), /connection reset/);
  } finally {
    db.kysely = real;
  }
  assert.equal(calls, 2, 'the first page was read before the failure');
  await bridge(freshAudit);
  await bridge(freshAudit);
  const missing: number[] = [];
  for (const id of ids) if (!(await stored(id))) missing.push(id);
  assert.deepEqual(missing, [], `${missing.length} of ${ids.length} rows never bridged`);
});
