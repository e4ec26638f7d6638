/**
 * Database access for both deployment shapes: SQLite (better-sqlite3) for the embedded
 * default and PostgreSQL (pg) for cluster mode, both behind Kysely with one set of migrations.
 */
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import { createRequire } from 'node:module';
import type PgModule from 'pg';
import { Kysely, Migrator, PostgresDialect, SqliteDialect, sql, type Migration, type MigrationProvider } from 'kysely';
import { migrations } from './migrations/index.js';
import type { Database } from './schema.js';

/** Which SQL engine backs the store. */
export type Dialect = 'sqlite' | 'postgres';

/** An open database with its dialect. */
export interface Db {
  kysely: Kysely<Database>;
  dialect: Dialect;
  /**
   * The embedded default's better-sqlite3 handle, for hot paths that want prepared statements
   * (the audit writer). Check `inTransaction` first: a Kysely transaction may be open on it.
   */
  sqlite?: SqliteDatabase.Database;
  /** Cheap reachability check for /readyz. */
  ping(): Promise<boolean>;
  close(): Promise<void>;
}

/** Options to open a database. */
export interface OpenDbOptions {
  /** Embedded default: the data directory holding `portcullis.db`. */
  dataDir?: string;
  /** Cluster mode: a PostgreSQL connection string. */
  postgresUrl?: string;
  /** PostgreSQL schema to use (created if missing); tests use one per run. */
  pgSchema?: string;
  /** Pool size for PostgreSQL. */
  poolSize?: number;
}

/** Page size of a newly created SQLite database file (bytes). */
const SQLITE_PAGE_SIZE = 16_384;

/** Opens (and migrates) the database. */
export async function openDb(opts: OpenDbOptions): Promise<Db> {
  let db: Db;
  if (opts.postgresUrl) {
    const schema = opts.pgSchema;
    if (schema && !/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) throw new Error('invalid PostgreSQL schema name');
    // Loaded only in cluster mode: the embedded default never pays for the PostgreSQL driver.
    const pg = createRequire(import.meta.url)('pg') as typeof PgModule;
    const pool = new pg.Pool({
      connectionString: opts.postgresUrl,
      max: opts.poolSize ?? 10,
      connectionTimeoutMillis: 5000,
      // TCP keepalive: an idle pooled connection to a server or host that went away fails (and
      // leaves the pool) instead of stalling the next query on it. No pool-wide query or statement
      // timeout: migrations and large usage reports may run long; the audit writer sets its own
      // per transaction (AuditStore) and gives up on a stalled write at its deadline.
      keepAlive: true,
      keepAliveInitialDelayMillis: 10_000,
      ...(schema ? { options: `-c search_path=${schema}` } : {}),
    });
    pool.on('error', () => {}); // idle client errors surface on the next query instead of crashing
    pool.on('connect', (client) => client.on('error', () => {})); // a dropped connection mid-query fails that query, not the process
    if (schema) {
      const c = await pool.connect();
      try {
        await c.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
      } finally {
        c.release();
      }
    }
    const kysely = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
    db = {
      kysely,
      dialect: 'postgres',
      async ping() {
        try {
          await sql`select 1`.execute(kysely);
          return true;
        } catch {
          return false;
        }
      },
      close: () => kysely.destroy(),
    };
  } else {
    const dir = resolve(opts.dataDir ?? './data');
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const file = join(dir, 'portcullis.db');
    const sqlite = new SqliteDatabase(file);
    // A new database file gets 16 KiB pages (SQLite's default is 4 KiB; an existing file keeps its
    // size: in WAL mode the pragma is a no-op there). The audit trail appends ~1 KB rows: with 4 KiB
    // pages each event cost ~0.8 page writes (WAL frame plus checkpoint, one pwrite each); the
    // writer thread measured 7.9–8.0 µs of CPU per event with 4 KiB pages and 6.2–6.4 with 16 KiB
    // (60 000 events, one tenant and key, two alternated runs).
    sqlite.pragma(`page_size = ${SQLITE_PAGE_SIZE}`);
    sqlite.pragma('journal_mode = WAL');
    sqlite.pragma('busy_timeout = 5000');
    sqlite.pragma('synchronous = NORMAL');
    sqlite.pragma('foreign_keys = ON');
    const kysely = new Kysely<Database>({ dialect: new SqliteDialect({ database: sqlite }) });
    db = {
      kysely,
      dialect: 'sqlite',
      sqlite,
      async ping() {
        try {
          sqlite.prepare('select 1').get();
          return true;
        } catch {
          return false;
        }
      },
      close: () => kysely.destroy(),
    };
  }
  await migrate(db, opts.pgSchema);
  return db;
}

class StaticProvider implements MigrationProvider {
  constructor(private readonly dialect: Dialect) {}
  async getMigrations(): Promise<Record<string, Migration>> {
    const out: Record<string, Migration> = {};
    for (const [name, m] of Object.entries(migrations)) {
      out[name] = { up: (db) => m.up(db, this.dialect), ...(m.down ? { down: (db) => m.down!(db, this.dialect) } : {}) };
    }
    return out;
  }
}

/** Runs every pending migration; throws with the failing migration's name. */
export async function migrate(db: Db, pgSchema?: string): Promise<void> {
  const migrator = new Migrator({
    db: db.kysely as Kysely<any>,
    provider: new StaticProvider(db.dialect),
    // Migrations are numbered per module and may land out of order on an existing data dir.
    allowUnorderedMigrations: true,
    // Keep the bookkeeping tables inside the schema in use, so schemas never see each other's.
    ...(db.dialect === 'postgres' ? { migrationTableSchema: pgSchema ?? 'public' } : {}),
  });
  for (let attempt = 1; ; attempt++) {
    const { error, results } = await migrator.migrateToLatest();
    if (!error) return;
    // Kysely looks for its bookkeeping tables in every schema of the server (`has_schema_privilege`
    // on each schema name): a schema another client drops meanwhile fails that catalog query with
    // SQLSTATE 3F000 naming *that* schema. Nothing of ours was touched: look again.
    if (attempt < 10 && otherSchemaVanished(error, pgSchema ?? 'public')) {
      await new Promise((r) => setTimeout(r, 10 * attempt)); // a little later, past the other client's drop
      continue;
    }
    const failed = results?.find((r) => r.status === 'Error');
    throw new Error(`database migration ${failed?.migrationName ?? ''} failed: ${(error as Error).message ?? String(error)}`);
  }
}

/** Whether a migration failed only because some other schema than `own` was dropped while it ran. */
function otherSchemaVanished(error: unknown, own: string): boolean {
  const e = error as { code?: unknown; message?: unknown };
  if (e?.code !== '3F000' || typeof e.message !== 'string') return false;
  const m = /schema "([^"]+)" does not exist/.exec(e.message);
  return !!m && m[1] !== own;
}
