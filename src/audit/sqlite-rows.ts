/** The SQLite audit insert, shared by the in-thread path and the writer thread: column order and statements. */
import type SqliteDatabase from 'better-sqlite3';

/** Name of the writer thread (Linux `comm`, at most 15 bytes). */
export const THREAD_NAME = 'pcl-audit-db';

/** Columns of `audit_events`, in the order rows are passed as arrays. */
export const EVENT_COLUMNS = ['id', 'ts', 'day', 'kind', 'tenant_id', 'key_id', 'request_id', 'status', 'model', 'action', 'categories', 'tokens_in', 'tokens_out', 'cost_usd', 'data'] as const;
/** Columns of `audit_payloads`, in the order rows are passed as arrays. */
export const PAYLOAD_COLUMNS = ['event_id', 'tenant_id', 'ts', 'expires_at', 'request', 'response'] as const;

/**
 * The writer thread's `wal_autocheckpoint` (pages): ~40 MB of WAL with 4 KiB pages, ~160 MB with the
 * 16 KiB pages of newer files (measured with both: see the README's audit numbers).
 */
export const WRITER_WAL_AUTOCHECKPOINT = 10_000;
/** The writer thread checkpoints (passive) after this long without a batch (ms). */
export const IDLE_CHECKPOINT_MS = 30_000;

/** Rows per statement on the writer thread: 50-row statements, then 10-row ones, then single rows. */
export const MULTI_ROW_SIZES = [50, 10] as const;

/** The `categories` column of an event without finding categories. */
export const NO_CATEGORIES = '||';

/**
 * A transaction that inserts event rows and payload rows (arrays in column order), skipping known ids.
 *
 * With `multiRow`, event rows go through multi-row statements (`MULTI_ROW_SIZES`): one statement
 * keeps its B-tree cursors open from row to row, so each row lands at the right edge of the table
 * and its indexes without a descent from the root, and one result object is made per statement
 * instead of per row (callgrind, 10 000 rows: 39.3 k -> 29.7 k instructions per row of binding and
 * SQLite work). A multi-row statement that can abort part-way needs a statement journal: the
 * connection must keep temporary files in memory (`PRAGMA temp_store = MEMORY`), or every journaled
 * page is written to a temporary file (twice the write calls). The writer thread's own connection
 * does so; the shared connection (the fallback on the event loop) uses single-row statements.
 *
 * The `data` column (the event's JSON) may be given as a string or as its UTF-8 bytes (a Buffer,
 * as the writer thread unpacks it: `unpackRows` with `lastAsBytes`), stored as TEXT either way
 * (`CAST(? AS TEXT)`): bytes are bound with one copy, where a string is decoded from the packed
 * bytes first and encoded again by the binding (writer CPU per event, packed batches of 500 bench
 * rows alone on the thread: 4.7-5.2 -> 4.5-4.7 µs).
 */
export function insertStatements(db: SqliteDatabase.Database, opts: { multiRow?: boolean } = {}): (rows: readonly unknown[][], payloads: readonly unknown[][]) => void {
  const param = (c: string) => (c === 'data' ? 'CAST(? AS TEXT)' : '?');
  const params = `(${EVENT_COLUMNS.map(param).join(', ')})`;
  /** An event INSERT of `n` rows, each written as `row`, skipping known ids. */
  const insertEvents = (n: number, row: string) => db.prepare(`INSERT INTO audit_events (${EVENT_COLUMNS.join(', ')}) VALUES ${Array.from({ length: n }, () => row).join(', ')} ON CONFLICT (id) DO NOTHING`);
  const ev = insertEvents(1, params);
  const pl = db.prepare(`INSERT INTO audit_payloads (${PAYLOAD_COLUMNS.join(', ')}) VALUES (${PAYLOAD_COLUMNS.map(() => '?').join(', ')}) ON CONFLICT (event_id) DO NOTHING`);
  const cols = EVENT_COLUMNS.length;
  const DAY = EVENT_COLUMNS.indexOf('day');
  const KIND = EVENT_COLUMNS.indexOf('kind');
  const CATEGORIES = EVENT_COLUMNS.indexOf('categories');
  // Multi-row statements, each with reused argument arrays (packed, so the spread stays on V8's
  // fast path). When every row of a chunk has the same day and kind (all but the chunks around
  // midnight or holding admin events), a statement with that day and kind as SQL literals binds 13
  // values per row instead of 15: two fewer strings, each a UTF-8 conversion and two copies; and
  // 12 when no row of the chunk has finding categories (`||`, the usual case), that one literal too.
  const sizes = (opts.multiRow ? MULTI_ROW_SIZES : []).map((n) => ({
    n,
    st: insertEvents(n, params),
    args: Array.from({ length: n * cols }, (): unknown => null),
    literalArgs: [Array.from({ length: n * (cols - 2) }, (): unknown => null), Array.from({ length: n * (cols - 3) }, (): unknown => null)] as const,
  }));
  const literal = new Map<string, SqliteDatabase.Statement>();
  const uniform = (n: number, day: unknown, kind: unknown, noCategories: boolean): SqliteDatabase.Statement | undefined => {
    if (typeof day !== 'string' || typeof kind !== 'string' || !/^\d{4}-\d{2}-\d{2}$/.test(day) || !/^[a-z]{1,16}$/.test(kind)) return undefined;
    const key = `${n}|${day}|${kind}|${noCategories ? 1 : 0}`;
    let st = literal.get(key);
    if (!st) {
      if (literal.size >= 8) literal.clear(); // yesterday's statements
      const row = `(${EVENT_COLUMNS.map((c) => (c === 'day' ? `'${day}'` : c === 'kind' ? `'${kind}'` : c === 'categories' && noCategories ? `'${NO_CATEGORIES}'` : param(c))).join(', ')})`;
      literal.set(key, (st = insertEvents(n, row)));
    }
    return st;
  };
  // Values are passed as arguments, not as one array: better-sqlite3 then reads each from the call
  // instead of through a property lookup on the array (callgrind: 28 k -> 19 k instructions of
  // binding per audit row, beside ~24 k of SQLite's own work).
  return db.transaction((rows: readonly unknown[][], payloads: readonly unknown[][]) => {
    let i = 0;
    for (const { n, st, args, literalArgs } of sizes) {
      for (; i + n <= rows.length; i += n) {
        const day = rows[i]![DAY];
        const kind = rows[i]![KIND];
        let same = true;
        let noCategories = true;
        for (let j = i; j < i + n && same; j++) {
          const r = rows[j]!;
          same = r[DAY] === day && r[KIND] === kind;
          if (r[CATEGORIES] !== NO_CATEGORIES) noCategories = false;
        }
        const lit = same ? uniform(n, day, kind, noCategories) : undefined;
        if (lit) {
          const a = literalArgs[noCategories ? 1 : 0];
          let k = 0;
          for (let j = i; j < i + n; j++) {
            const r = rows[j]!;
            for (let c = 0; c < cols; c++) if (c !== DAY && c !== KIND && (c !== CATEGORIES || !noCategories)) a[k++] = r[c];
          }
          lit.run(...a);
        } else {
          let k = 0;
          for (let j = i; j < i + n; j++) {
            const r = rows[j]!;
            for (let c = 0; c < cols; c++) args[k++] = r[c];
          }
          st.run(...args);
        }
      }
    }
    for (; i < rows.length; i++) ev.run(...rows[i]!);
    for (const p of payloads) pl.run(...p);
  });
}

/**
 * Rows packed into bytes outside the JS heap while they wait for the writer thread.
 *
 * A queued event used to be held as its row array and strings (the event's JSON, ~700 bytes)
 * until its batch was written: at a few thousand requests/s a batch fills over 100 ms or more, so
 * every young-generation GC of the event loop copied the waiting rows (and promoted them), and each
 * batch was then structured-cloned to the thread value by value, into memory allocated for it.
 * Packed, a waiting event is a small handle to bytes in a reused chunk, and a batch is one copy
 * into a reused buffer handed to the thread and back. Memory is reused because first writes to
 * fresh pages are what cost most here: copying a batch into a new buffer took 2.2-2.4 µs per row
 * inside a loaded gateway, 0.25-0.28 µs into a reused one.
 *
 * A record is: u32 record length; u32 sequence number (checked when the record is read through its
 * handle, so bytes reused too early are refused, never stored as another event); one tag byte per
 * column (0 null, 1 number, 2 string); the numbers as float64; the strings' lengths in UTF-16 code
 * units as u32; u32 byte length of the strings joined, and the joined strings as UTF-8. Lone
 * surrogates become U+FFFD, as when a string is bound (one code unit either way, so lengths hold).
 */

/** A chunk records are packed into; back in the packer's free list once no handle holds it. */
interface PackChunk {
  buf: Buffer;
  /** Handles not released yet. */
  live: number;
  /** No longer the chunk being filled. */
  retired: boolean;
}

/** A packed row: where its record is. Released (once) when the row has been written, spilled or dropped. */
export interface PackedRow {
  chunk: PackChunk;
  at: number;
  len: number;
  seq: number;
  released: boolean;
}

const RECORD_HEAD = 8;

export class RowPacker {
  private cur: PackChunk;
  private at = 0;
  private seq = 0;
  private readonly free: PackChunk[] = [];
  constructor(
    private readonly chunkBytes = 64 * 1024,
    /** Empty chunks kept for reuse (beyond them, memory goes back to the allocator). */
    private readonly maxFree = 64,
  ) {
    this.cur = { buf: Buffer.allocUnsafeSlow(0), live: 0, retired: false };
  }

  /** Packs a row (numbers, strings and nulls). */
  pack(row: readonly unknown[]): PackedRow {
    const cols = row.length;
    let joined = '';
    let strings = 0;
    let numbers = 0;
    for (let c = 0; c < cols; c++) {
      const v = row[c];
      if (typeof v === 'string') {
        joined += v;
        strings++;
      } else if (typeof v === 'number') numbers++;
      else if (v !== null && v !== undefined) throw new TypeError(`audit row column ${c}: ${typeof v} cannot be stored`);
    }
    // Header bytes, plus at most 3 UTF-8 bytes per UTF-16 code unit.
    const worst = RECORD_HEAD + cols + numbers * 8 + strings * 4 + 4 + joined.length * 3;
    if (this.at + worst > this.cur.buf.length) this.next(worst);
    const chunk = this.cur;
    const b = chunk.buf;
    const start = this.at;
    let p = start + RECORD_HEAD;
    for (let c = 0; c < cols; c++) {
      const v = row[c];
      b[p++] = typeof v === 'string' ? 2 : typeof v === 'number' ? 1 : 0;
    }
    for (let c = 0; c < cols; c++) {
      const v = row[c];
      if (typeof v === 'number') p = b.writeDoubleLE(v, p);
      else if (typeof v === 'string') p = b.writeUInt32LE(v.length, p);
    }
    const n = joined.length ? b.write(joined, p + 4, 'utf8') : 0;
    b.writeUInt32LE(n, p);
    p += 4 + n;
    const seq = (this.seq = (this.seq + 1) >>> 0);
    b.writeUInt32LE(p - start, start);
    b.writeUInt32LE(seq, start + 4);
    this.at = p;
    chunk.live++;
    return { chunk, at: start, len: p - start, seq, released: false };
  }

  /** The row has been written, spilled or dropped: its bytes may be reused. Idempotent. */
  release(r: PackedRow): void {
    if (r.released) return;
    r.released = true;
    const c = r.chunk;
    if (--c.live === 0 && c.retired) this.recycle(c);
  }

  /**
   * Copies the records back to back into `out` from `at` (a batch for the writer thread); returns
   * the bytes copied. Records packed one after another sit one after another in their chunk, so a
   * run of them is copied at once: a batch of 500 took one `Buffer.copy` per record (~0.5 µs each
   * with its native call, measured here), now one copy per run (a few per batch).
   */
  copyAll(rows: readonly PackedRow[], out: Buffer, at = 0): number {
    const from = at;
    for (let i = 0; i < rows.length; ) {
      const first = rows[i]!;
      check(first);
      let end = first.at + first.len;
      let j = i + 1;
      for (; j < rows.length; j++) {
        const r = rows[j]!;
        if (r.chunk !== first.chunk || r.at !== end) break;
        check(r);
        end += r.len;
      }
      out.set(first.chunk.buf.subarray(first.at, end), at);
      at += end - first.at;
      i = j;
    }
    return at - from;
  }

  /** Empty chunks kept for reuse (tests). */
  get freeChunks(): number {
    return this.free.length;
  }

  private next(worst: number): void {
    const old = this.cur;
    old.retired = true;
    if (old.live === 0) this.recycle(old);
    const reused = worst <= this.chunkBytes ? this.free.pop() : undefined;
    if (reused) reused.retired = false;
    this.cur = reused ?? { buf: Buffer.allocUnsafeSlow(Math.max(this.chunkBytes, worst)), live: 0, retired: false };
    this.at = 0;
  }

  private recycle(c: PackChunk): void {
    if (c.buf.length === this.chunkBytes && this.free.length < this.maxFree && !this.free.includes(c)) this.free.push(c);
  }
}

/**
 * Where the last column's string starts in a record's UTF-8 (`from`..`to`): after `units` UTF-16
 * code units, the other strings' (a lead byte under 0xf0 starts one code unit, one from 0xf0 a
 * surrogate pair: two). -1 when a pair straddles the boundary (a column ending in a high
 * surrogate before one starting with a low one, joined into a pair when packed): then the whole is
 * decoded, as without `lastAsBytes`.
 */
function lastStringAt(b: Buffer, from: number, to: number, units: number): number {
  let i = from;
  let u = 0;
  while (u < units && i < to) {
    const x = b[i]!;
    if (x < 0x80) {
      i++;
      u++;
    } else if (x < 0xe0) {
      i += 2;
      u++;
    } else if (x < 0xf0) {
      i += 3;
      u++;
    } else {
      i += 4;
      u += 2;
    }
  }
  if (u !== units || i > to) return -1;
  return i;
}

function check(r: PackedRow): void {
  if (r.released || r.chunk.buf.readUInt32LE(r.at + 4) !== r.seq || r.chunk.buf.readUInt32LE(r.at) !== r.len) throw new Error('audit rows: a packed row was read after its bytes were reused');
}

/** The values of a packed row (the handle must not be released). */
export function unpackRow(r: PackedRow, cols: number = EVENT_COLUMNS.length): unknown[] {
  check(r);
  return unpackRecord(r.chunk.buf, r.at, cols);
}

/**
 * The rows of packed records copied back to back (`RowPacker.copyAll`), each with `cols` columns.
 * With `lastAsBytes`, a last column holding a string (the event's JSON) comes back as its UTF-8
 * bytes, not decoded: a view of `b`, valid while `b` is (bound through `CAST(? AS TEXT)`: see
 * insertStatements).
 */
export function unpackRows(b: Uint8Array, cols: number = EVENT_COLUMNS.length, lastAsBytes = false): unknown[][] {
  const buf = Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  const rows: unknown[][] = [];
  for (let at = 0; at < buf.length; ) {
    if (at + RECORD_HEAD + cols + 4 > buf.length) throw new Error('audit rows: malformed packed record');
    const len = buf.readUInt32LE(at);
    if (len < RECORD_HEAD + cols + 4 || at + len > buf.length) throw new Error('audit rows: malformed packed record');
    rows.push(unpackRecord(buf, at, cols, lastAsBytes));
    at += len;
  }
  return rows;
}

function unpackRecord(b: Buffer, start: number, cols: number, lastAsBytes = false): unknown[] {
  const row: unknown[] = new Array(cols);
  const tags = start + RECORD_HEAD;
  let p = tags + cols;
  for (let c = 0; c < cols; c++) {
    const t = b[tags + c];
    if (t === 1) {
      row[c] = b.readDoubleLE(p);
      p += 8;
    } else if (t === 2) {
      row[c] = b.readUInt32LE(p); // its length, until the strings are read
      p += 4;
    } else row[c] = null;
  }
  const n = b.readUInt32LE(p);
  const at = p + 4;
  if (at + n !== start + b.readUInt32LE(start)) throw new Error('audit rows: malformed packed record');
  // With lastAsBytes, only the strings before the last column are decoded, up to the byte where it starts.
  let split = -1;
  let joined = '';
  if (lastAsBytes && cols > 0 && b[tags + cols - 1] === 2) {
    let units = 0;
    for (let c = 0; c < cols - 1; c++) if (b[tags + c] === 2) units += row[c] as number;
    // Usually those strings are ASCII, a byte per code unit: decoded as such, they have that many
    // code units and the next byte does not continue a character (a multi-byte character in them
    // decodes to fewer units, or is cut, and its next byte is a continuation byte).
    const head = units ? b.toString('utf8', at, Math.min(at + units, at + n)) : '';
    if (head.length === units && (units === n || (units < n && (b[at + units]! & 0xc0) !== 0x80))) {
      split = at + units;
      joined = head;
    } else {
      split = lastStringAt(b, at, at + n, units);
      if (split >= 0) joined = b.toString('utf8', at, split);
    }
  }
  if (split < 0) joined = n ? b.toString('utf8', at, at + n) : '';
  let s = 0;
  for (let c = 0; c < cols; c++) {
    if (b[tags + c] !== 2) continue;
    if (split >= 0 && c === cols - 1) {
      row[c] = b.subarray(split, at + n);
      continue;
    }
    const len = row[c] as number;
    row[c] = joined.slice(s, s + len);
    s += len;
  }
  if (s !== joined.length) throw new Error('audit rows: malformed packed record');
  return row;
}
