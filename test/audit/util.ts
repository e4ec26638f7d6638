/** Helpers of the audit tests. */
import pg from 'pg';
import { Kysely, Migrator, PostgresDialect, type Migration } from 'kysely';
import type { Db } from '../../src/store/db.js';
import { migrations } from '../../src/store/migrations/index.js';
import type { Database } from '../../src/store/schema.js';

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
  const provider = {
    async getMigrations() {
      const out: Record<string, Migration> = {};
      for (const [n, m] of Object.entries(migrations)) out[n] = { up: (d) => m.up(d, 'postgres') };
      return out;
    },
  };
  const r = await new Migrator({ db: kysely as Kysely<any>, provider, migrationTableSchema: schema }).migrateToLatest();
  if (r.error) throw r.error;
  return { kysely, dialect: 'postgres', ping: async () => true, close: () => kysely.destroy() };
}

