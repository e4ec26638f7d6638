/**
 * Key-change propagation: every revocation, rotation or scope change appends a row to
 * `key_changes` (a monotonically increasing sequence) and, on PostgreSQL, sends a NOTIFY.
 * Each gateway instance LISTENs on a dedicated connection (PostgreSQL) and polls the
 * sequence (SQLite workers, CLI changes made offline, and as a fallback behind LISTEN),
 * dropping the affected keys from its cache.
 */
import { createRequire } from 'node:module';
import type pg from 'pg';
import { sql } from 'kysely';
import type { Db } from '../store/db.js';

/** The NOTIFY channel. */
export const KEY_CHANGE_CHANNEL = 'pcl_key_changes';
const ALL = '*';

/** Records that these key ids (API or admin keys) changed and tells every instance. */
export async function publishKeyChanges(db: Db, keyIds: readonly string[]): Promise<void> {
  if (keyIds.length === 0) return;
  const ts = Date.now();
  const many = keyIds.length > 200;
  const ids = many ? [ALL] : [...new Set(keyIds)];
  await db.kysely.insertInto('key_changes').values(ids.map((key_id) => ({ key_id, ts }))).execute();
  if (db.dialect === 'postgres') {
    await sql`select pg_notify(${KEY_CHANGE_CHANNEL}, ${ids.join(',')})`.execute(db.kysely);
  }
}

/** Options of a watcher. */
export interface WatchOptions {
  db: Db;
  /** Poll interval of the sequence. */
  pollMs: number;
  /** PostgreSQL URL for the dedicated LISTEN connection (cluster mode). */
  postgresUrl?: string;
  /** Called with the changed ids, or '*' when everything must be dropped. */
  onChange(ids: string[] | '*'): void;
  onError?(err: unknown): void;
}

/** A running watcher. */
export interface Watcher {
  /** Resolves once the watcher is listening (LISTEN established, cursor read). */
  ready: Promise<void>;
  close(): Promise<void>;
}

/** Starts polling (and listening on PostgreSQL) for key changes. */
export function watchKeyChanges(opts: WatchOptions): Watcher {
  let cursor = -1;
  let closed = false;
  let timer: NodeJS.Timeout | undefined;
  let client: pg.Client | undefined;
  let polling = false;
  let lastCleanup = Date.now();
  const err = (e: unknown) => opts.onError?.(e);

  const emit = (raw: string[]) => {
    if (raw.includes(ALL)) opts.onChange(ALL);
    else if (raw.length) opts.onChange(raw);
  };

  async function readCursor(): Promise<void> {
    const row = await opts.db.kysely.selectFrom('key_changes').select((eb) => eb.fn.max('seq').as('m')).executeTakeFirst();
    cursor = row?.m == null ? 0 : Number(row.m);
  }

  async function poll(): Promise<void> {
    if (polling || closed) return;
    polling = true;
    try {
      if (cursor < 0) await readCursor();
      const rows = await opts.db.kysely.selectFrom('key_changes').select(['seq', 'key_id']).where('seq', '>', cursor).orderBy('seq').limit(5000).execute();
      if (rows.length) {
        cursor = Number(rows[rows.length - 1]!.seq);
        emit(rows.map((r) => r.key_id));
      }
      if (Date.now() - lastCleanup > 3_600_000) {
        lastCleanup = Date.now();
        await opts.db.kysely.deleteFrom('key_changes').where('ts', '<', Date.now() - 86_400_000).execute();
      }
    } catch (e) {
      err(e);
    } finally {
      polling = false;
    }
  }

  async function listen(): Promise<void> {
    if (!opts.postgresUrl || closed) return;
    const Pg = createRequire(import.meta.url)('pg') as typeof pg; // cluster mode only
    const c = new Pg.Client({ connectionString: opts.postgresUrl, connectionTimeoutMillis: 5000 });
    c.on('notification', (n) => {
      if (n.channel === KEY_CHANGE_CHANNEL && n.payload) emit(n.payload.split(','));
    });
    c.on('error', (e) => {
      err(e);
      if (client === c) client = undefined;
      c.end().catch(() => {});
      if (!closed) {
        opts.onChange(ALL); // changes may have been missed while disconnected
        setTimeout(() => listen().catch(err), 1000).unref();
      }
    });
    await c.connect();
    await c.query(`LISTEN ${KEY_CHANGE_CHANNEL}`);
    if (closed) {
      await c.end().catch(() => {});
      return;
    }
    client = c;
  }

  const ready = (async () => {
    try {
      await readCursor();
    } catch (e) {
      err(e);
    }
    try {
      await listen();
    } catch (e) {
      err(e);
      if (!closed) setTimeout(() => listen().catch(err), 1000).unref();
    }
    const every = opts.postgresUrl ? Math.max(opts.pollMs, 2000) : opts.pollMs;
    if (!closed) {
      timer = setInterval(() => void poll(), every);
      timer.unref();
    }
  })();

  return {
    ready,
    async close() {
      closed = true;
      if (timer) clearInterval(timer);
      await ready.catch(() => {});
      if (client) await client.end().catch(() => {});
      client = undefined;
    },
  };
}
