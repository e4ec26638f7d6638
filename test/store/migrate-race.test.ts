/**
 * Migrations on PostgreSQL while other clients drop schemas: Kysely's migrator reads the catalog of
 * every schema, and a schema dropped meanwhile fails that query (SQLSTATE 3F000 naming the other
 * schema). The gateway's migrate() looks again instead of failing to start.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { openDb } from '../../src/store/db.js';
import { PG_URL, dropSchema, pgSkipReason, uniqueSchema } from '../identity/util.js';

test('migrations succeed while other schemas are created and dropped around them', async (t) => {
  const skip = await pgSkipReason();
  if (skip) return t.skip(skip);
  const churn = new pg.Client({ connectionString: PG_URL });
  await churn.connect();
  let stop = false;
  let dropped = 0;
  // Schemas with a table each, created and dropped every few milliseconds (as other test files'
  // clean-ups do, much more often): a drop that never pauses would fail every attempt.
  const churning = (async () => {
    for (let i = 0; !stop; i++) {
      const s = `pcl_churn_${process.pid}_${i}`;
      await churn.query(`CREATE SCHEMA ${s}; CREATE TABLE ${s}.t (a int, b text, c int)`);
      await churn.query(`DROP SCHEMA ${s} CASCADE`);
      dropped++;
      await new Promise((r) => setTimeout(r, 5));
    }
  })();
  const schemas: string[] = [];
  try {
    for (let i = 0; i < 12; i++) {
      const schema = `${uniqueSchema('migrace')}_${i}`;
      schemas.push(schema);
      const db = await openDb({ postgresUrl: PG_URL, pgSchema: schema, poolSize: 2 });
      await db.close();
    }
  } finally {
    stop = true;
    await churning.catch(() => {});
    await churn.end();
    for (const s of schemas) await dropSchema(s);
  }
  assert.ok(dropped > 20, `schemas were dropped meanwhile (${dropped})`);
});
