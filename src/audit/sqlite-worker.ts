/**
 * The audit writer's SQLite thread (embedded default): receives batches of prepared rows and
 * writes each in one transaction on its own connection to the same database file, so the
 * B-tree and WAL work of the audit trail runs beside the event loop instead of on it.
 * Messages: `{ id, rows, length, payloads }` (rows packed in a transferred buffer, or as arrays) →
 * `{ id, buffer }` or `{ id, buffer, error, code? }` (the buffer handed back for reuse; `code`: SQLite's error code).
 */
import { parentPort, workerData } from 'node:worker_threads';
import SqliteDatabase from 'better-sqlite3';
import { nameThisThread } from '../util/worker.js';
import { EVENT_COLUMNS, IDLE_CHECKPOINT_MS, insertStatements, THREAD_NAME, unpackRows, WRITER_WAL_AUTOCHECKPOINT } from './sqlite-rows.js';

const { file } = workerData as { file: string };
nameThisThread(THREAD_NAME);
const db = new SqliteDatabase(file);
db.pragma('journal_mode = WAL');
db.pragma('busy_timeout = 5000');
db.pragma('synchronous = NORMAL');
// This thread checkpoints the WAL for the whole database while it runs (the main connection's
// automatic checkpoint is off meanwhile: AuditStore.handOverCheckpoints). Every 10 000 pages
// instead of SQLite's 1 000: the audit trail rewrites the same index pages in every batch, and a
// checkpoint copies each page once however often it changed since the last one (writer thread
// CPU per event 7.9 -> 7.4-7.5 µs with 4 KiB pages, 60 000 events in batches of 500).
db.pragma(`wal_autocheckpoint = ${WRITER_WAL_AUTOCHECKPOINT}`);
// And when no batch arrived for a while, for WAL written meanwhile by the main connection.
let lastBatch = Date.now();
setInterval(() => {
  if (Date.now() - lastBatch < IDLE_CHECKPOINT_MS) return;
  try {
    db.pragma('wal_checkpoint(PASSIVE)');
  } catch {
    /* busy or closed: the next batch's commit checkpoints */
  }
}, IDLE_CHECKPOINT_MS).unref();
// Statement journals of the multi-row inserts in memory, not in temporary files (see insertStatements).
// Only this connection's temporary storage: nothing durable is kept there.
db.pragma('temp_store = MEMORY');
// A 4 MB page cache instead of better-sqlite3's 16 MB default: the inserts touch the right edges of
// the table and its indexes and one path per tenant and key, and the cache filled to its limit
// under load stayed in the thread's malloc arena (~18 MB resident). Writer CPU per event with 4 vs
// 16 MB: 9.6-9.8 vs 9.4-9.7 µs (200 000 events), 10.5 vs 10.9 µs (1 000 000); 2 MB cost 12 µs.
db.pragma('cache_size = -4000');
const write = insertStatements(db, { multiRow: true });

parentPort!.on('message', (m: { id: number; rows: unknown[][] | ArrayBuffer; length: number; payloads: unknown[][] }) => {
  lastBatch = Date.now();
  // Rows packed by the event loop (RowPacker) in a buffer that goes back with the answer, or as values.
  const packed = m.rows instanceof ArrayBuffer ? m.rows : undefined;
  const back = packed ? [packed] : [];
  try {
    // The event's JSON as its packed bytes (bound as TEXT by the statements), not decoded.
    write(packed ? unpackRows(new Uint8Array(packed, 0, m.length), EVENT_COLUMNS.length, true) : (m.rows as unknown[][]), m.payloads);
    parentPort!.postMessage({ id: m.id, buffer: packed }, back);
  } catch (e) {
    // The SQLite error code (SQLITE_CONSTRAINT_…) tells the writer a refused row from an unavailable database.
    const code = (e as { code?: unknown })?.code;
    parentPort!.postMessage({ id: m.id, buffer: packed, error: (e as Error)?.message ?? String(e), ...(typeof code === 'string' ? { code } : {}) }, back);
  }
});
parentPort!.once('close', () => db.close());
