/**
 * The SQLite reader thread: runs compiled SELECT statements (audit search, usage, counts) on its
 * own read-only connection to the database file, so a query over millions of rows does not hold
 * the event loop. Messages: `{ id, sql, params }` → `{ id, rows }` or `{ id, error }`.
 */
import { parentPort, workerData } from 'node:worker_threads';
import SqliteDatabase from 'better-sqlite3';
import { nameThisThread } from '../util/worker.js';

const { file, threadName } = workerData as { file: string; threadName: string };
nameThisThread(threadName);
const db = new SqliteDatabase(file, { readonly: true, fileMustExist: true });
db.pragma('busy_timeout = 5000');
/** Prepared statements by SQL text (the audit queries are a few shapes; bounded anyway). */
const statements = new Map<string, SqliteDatabase.Statement>();

parentPort!.on('message', (m: { id: number; sql: string; params: unknown[] }) => {
  try {
    let st = statements.get(m.sql);
    if (!st) {
      st = db.prepare(m.sql);
      if (!st.reader) throw new Error('the reader thread runs queries that return rows only');
      if (statements.size >= 200) statements.clear();
      statements.set(m.sql, st);
    }
    parentPort!.postMessage({ id: m.id, rows: st.all(...m.params) });
  } catch (e) {
    parentPort!.postMessage({ id: m.id, error: (e as Error)?.message ?? String(e) });
  }
});
parentPort!.once('close', () => db.close());
