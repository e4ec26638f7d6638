/**
 * The ownership store on SQLite and PostgreSQL (schema per run): first owner wins, membership
 * filtering in chunks, forgetting; plus the scan of request bodies for referenced object ids.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { Kysely, Migrator, PostgresDialect } from 'kysely';
import { openDb } from '../../src/store/db.js';
import { migrations } from '../../src/store/migrations/index.js';
import type { Database } from '../../src/store/schema.js';
import { createOwnershipStore } from '../../src/policy/ownership.js';
import { referencedObjects } from '../../src/server/objects.js';
import { dropSchema, PG_URL, pgSkipReason, uniqueSchema } from '../identity/util.js';

async function exercise(db: Kysely<Database>): Promise<void> {
  const s = createOwnershipStore(db);
  await s.record('files', 'file-1', { tenantId: 'ten_a', keyId: 'k1', subject: 'svc' });
  await s.record('files', 'file-1', { tenantId: 'ten_b' }); // a second claim never changes the owner
  await s.record('batches', 'file-1', { tenantId: 'ten_b' }); // kinds are separate namespaces
  assert.equal(await s.ownerOf('files', 'file-1'), 'ten_a');
  assert.equal(await s.ownerOf('batches', 'file-1'), 'ten_b');
  assert.equal(await s.owns('files', 'file-1', 'ten_b'), false);
  assert.equal(await s.ownerOf('files', 'nope'), null);
  const ids = Array.from({ length: 1200 }, (_, i) => `vs_${i}`);
  for (let i = 0; i < ids.length; i += 3) await s.record('vector_stores', ids[i]!, { tenantId: 'ten_a' });
  const mine = await s.ownedAmong('vector_stores', ids, 'ten_a');
  assert.equal(mine.size, 400);
  assert.ok(mine.has('vs_0') && mine.has('vs_1197') && !mine.has('vs_1'));
  assert.equal((await s.ownedAmong('vector_stores', ids, 'ten_b')).size, 0);
  assert.equal((await s.ownedAmong('vector_stores', [], 'ten_a')).size, 0);
  await s.forget('files', 'file-1');
  assert.equal(await s.ownerOf('files', 'file-1'), null);
  // The output check of stored responses: set with the record, changed later, kept by a second claim.
  await s.record('responses', 'resp_1', { tenantId: 'ten_a' }, 'unscanned');
  await s.record('responses', 'resp_2', { tenantId: 'ten_a' });
  assert.deepEqual(await s.lookup('responses', 'resp_1'), { tenantId: 'ten_a', outputCheck: 'unscanned' });
  assert.deepEqual(await s.lookup('responses', 'resp_2'), { tenantId: 'ten_a', outputCheck: null });
  await s.setOutputCheck('responses', 'resp_1', 'withheld');
  await s.record('responses', 'resp_1', { tenantId: 'ten_b' }, 'passed');
  assert.deepEqual(await s.lookup('responses', 'resp_1'), { tenantId: 'ten_a', outputCheck: 'withheld' });
  assert.equal(await s.lookup('responses', 'resp_3'), null);
}

describe('ownership store', () => {
  test('SQLite', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pcl-own-'));
    const db = await openDb({ dataDir: dir });
    try {
      await exercise(db.kysely);
    } finally {
      await db.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  const schema = uniqueSchema('own');
  after(async () => {
    if (!(await pgSkipReason())) await dropSchema(schema).catch(() => {});
  });
  test('PostgreSQL', async (t) => {
    const skip = await pgSkipReason();
    if (skip) return t.skip(skip);
    // The shared migrations, run here with the migration table pinned to this run's schema:
    // openDb's Migrator would also see other runs' schemas' kysely_migration tables.
    const pool = new pg.Pool({ connectionString: PG_URL, max: 2, options: `-c search_path=${schema}` });
    const c = await pool.connect();
    await c.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
    c.release();
    const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
    try {
      const provider = { getMigrations: async () => Object.fromEntries(Object.entries(migrations).map(([k, m]) => [k, { up: (d: Kysely<any>) => m.up(d, 'postgres') }])) };
      const { error } = await new Migrator({ db: db as Kysely<any>, provider, migrationTableSchema: schema }).migrateToLatest();
      assert.equal(error, undefined);
      await exercise(db);
    } finally {
      await db.destroy();
    }
  });
});

test('referenced object ids in chat and responses bodies', () => {
  const refs = referencedObjects({
    model: 'x',
    previous_response_id: 'resp_1',
    input: [{ role: 'user', content: [{ type: 'input_file', file_id: 'file-1' }, { type: 'input_text', text: 'file_id' }] }],
    tools: [{ type: 'file_search', vector_store_ids: ['vs_1', 'vs_2'] }],
    messages: [{ role: 'user', content: [{ type: 'file', file: { file_id: 'file-2' } }] }],
  });
  assert.deepEqual(refs, [
    ['responses', 'resp_1'],
    ['files', 'file-1'],
    ['files', 'file-2'],
    ['vector_stores', 'vs_1'],
    ['vector_stores', 'vs_2'],
  ]);
  assert.deepEqual(referencedObjects({ model: 'x', messages: [{ role: 'user', content: 'hi' }] }), []);
});
