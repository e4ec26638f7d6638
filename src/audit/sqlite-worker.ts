/**
 * The audit writer's SQLite thread (embedded default): receives batches of prepared rows and
 * writes each in one transaction on its own connection to the same database file, so the
 * B-tree and WAL work of the audit trail runs beside the event loop instead of on it.
 * Messages: `{ id, rows, payloads }` → `{ id }` or `{ id, error }`.
 */
import { parentPort, workerData } from 'node:worker_threads';
import SqliteDatabase from 'better-sqlite3';
import { insertStatements } from './sqlite-rows.js';

const { file } = workerData as { file: string };
const db = new SqliteDatabase(file);
db.pragma('journal_mode = WAL');
db.pragma('busy_timeout = 5000');
db.pragma('synchronous = NORMAL');
const write = insertStatements(db);

parentPort!.on('message', (m: { id: number; rows: unknown[][]; payloads: unknown[][] }) => {
  try {
    write(m.rows, m.payloads);
    parentPort!.postMessage({ id: m.id });
  } catch (e) {
    parentPort!.postMessage({ id: m.id, error: (e as Error)?.message ?? String(e) });
  }
});
parentPort!.once('close', () => db.close());
