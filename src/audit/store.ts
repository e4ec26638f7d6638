/** The audit store over Kysely (SQLite or PostgreSQL): idempotent batch inserts, search, usage, purge. */
import { PostgresAdapter, sql, type Insertable, type Kysely } from 'kysely';
import type { Worker } from 'node:worker_threads';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { siblingWorker } from '../util/worker.js';
import { deleteInChunks } from '../store/chunked.js';
import type SqliteDatabase from 'better-sqlite3';
import { EVENT_COLUMNS, NO_CATEGORIES, PAYLOAD_COLUMNS, RowPacker, insertStatements, unpackRow, type PackedRow } from './sqlite-rows.js';
import type { Database } from '../store/schema.js';
import { isUtcZone, utcDay } from '../limits/periods.js';
import { SqliteReader, type ReadQuery } from '../store/sqlite-reader.js';
import type { AuditEvent, QueuedEvent } from './event.js';

/**
 * An event ready for the store: its row (EVENT_COLUMNS order, the event's JSON last) as values, or
 * packed outside the JS heap (the SQLite store with a writer thread: see RowPacker); and its payload.
 */
export type PreparedEvent = ({ row: unknown[]; packed?: undefined } | { packed: PackedRow; row?: undefined }) & { payload?: QueuedEvent['payload'] };

/** The row of a prepared event as values. */
export function preparedRow(p: PreparedEvent): unknown[] {
  return p.row ?? unpackRow(p.packed!);
}

/** Longest values the text columns hold whole (`prepare` cuts longer ones; their JSON keeps them whole). */
const REQUEST_ID_MAX = 128;
const MODEL_MAX = 200;
const ACTION_MAX = 100;
const KIND_MAX = 16;
const PRINCIPAL_MAX = 64;
/** Range of the `status` column (PostgreSQL `integer`). */
const INT32_MIN = -(2 ** 31);
const INT32_MAX = 2 ** 31 - 1;
/** Range of `ts` (the instants a Date holds: the `day` column is derived from it); also the range of the API's times. */
export const TS_MAX = 8.64e15;

/**
 * A value a store refused for its data (not because it is unavailable): the writer stores the rest
 * of the batch and moves the refused event to its dead-letter file instead of retrying it forever.
 */
export class AuditDataError extends Error {
  readonly code = 'PCL_AUDIT_DATA';
}

/**
 * Whether a failed write was refused for the data it carried: PostgreSQL SQLSTATE class 22 (data
 * exception: a NUL byte, a number out of range, a value too long…) or 23 (integrity constraint
 * violation), SQLite constraint, type-mismatch and too-big errors, or an AuditDataError. Anything
 * else (connection refused or lost, timeouts, a busy or read-only database, a full disk) means the
 * store is unavailable.
 */
export function isDataError(e: unknown): boolean {
  if (e instanceof AuditDataError) return true;
  const code = (e as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') return false;
  return /^2[23][0-9A-Z]{3}$/.test(code) || code.startsWith('SQLITE_CONSTRAINT') || code === 'SQLITE_MISMATCH' || code === 'SQLITE_TOOBIG';
}

const NUL = /\0/g;
const wellFormed = (s: string) => (s as unknown as { isWellFormed(): boolean }).isWellFormed();

/**
 * A text column's value: NUL characters removed (PostgreSQL's text types refuse them; SQLite is
 * given the same value), cut to `max` UTF-16 code units; null for anything but a string.
 */
function textColumn(v: unknown, max: number): string | null {
  if (typeof v !== 'string') return null;
  const s = v.includes('\0') ? v.replace(NUL, '') : v;
  return s.length > max ? s.slice(0, max) : s;
}

/** Whether a text column gives `v` back as it is: a well-formed string of at most `max` code units without NUL. */
function textExact(v: unknown, max: number): boolean {
  return typeof v === 'string' && v.length <= max && !v.includes('\0') && wellFormed(v);
}

/** An integer column's value: rounded and clamped to [min, max]; `dflt` for anything but a finite number. */
function intColumn<D extends number | null>(v: unknown, min: number, max: number, dflt: D): number | D {
  if (typeof v !== 'number' || !Number.isFinite(v)) return dflt;
  const n = Math.round(v);
  return n < min ? min : n > max ? max : n === 0 ? 0 : n; // no -0
}

const tsExact = (v: unknown): v is number => Number.isSafeInteger(v) && Math.abs(v as number) <= TS_MAX;
const statusExact = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= INT32_MIN && (v as number) <= INT32_MAX;

/** An `audit_events` row as read back (PostgreSQL returns bigint columns as strings). */
export interface StoredEventRow {
  id: string;
  ts: number | string;
  kind: string;
  tenant_id: string | null;
  key_id: string | null;
  request_id: string | null;
  status: number | string | null;
  model: string | null;
  action: string | null;
  categories: string;
  tokens_in: number | string;
  tokens_out: number | string;
  cost_usd: number | string;
  data: string;
}

/** The columns `eventFromRow` reads: every event column but `day` (derived from `ts`). */
export const STORED_EVENT_COLUMNS = EVENT_COLUMNS.filter((c): c is Exclude<(typeof EVENT_COLUMNS)[number], 'day'> => c !== 'day');

type Blankable = { -readonly [K in keyof AuditEvent]?: AuditEvent[K] };

/**
 * The `data` column of an event: its JSON without the fields the row's columns hold exactly (id,
 * ts, kind, request id, tenant, key, model, status, guard or admin action, finding categories, and
 * non-zero tokens and cost), which `eventFromRow` puts back. A fifth to a third of the bytes of a
 * request event, which the event loop no longer serializes, nor the writer thread writes into the
 * table's pages and the WAL. A field is left in when its column would not give it back as it is
 * (a value longer than the column keeps, a category containing `|`, a zero count the column also
 * holds for "absent", a fractional or unsafe token count, text with a NUL character or a lone
 * surrogate, a number out of its column's range: see `prepare`).
 *
 * The fields are set to `undefined` for `JSON.stringify` (which leaves them out) and put back
 * before returning: the event keeps its shape, and no copy of it is made. The put-back mirrors the
 * blanking field by field on purpose: setting the values aside in an object and putting them back
 * with one `Object.assign` took as long as the whole trimming saves (measured interleaved).
 */
export function rowData(e: AuditEvent): string {
  const m = e as Blankable;
  const { id, ts, kind, requestId, tenantId, keyId, model, status, tokensIn, tokensOut, costUsd, categories } = e;
  const admin = kind === 'admin';
  const action = admin ? e.action : e.guardAction;
  const dId = typeof id === 'string';
  const dTs = tsExact(ts);
  const dKind = textExact(kind, KIND_MAX);
  const dReq = textExact(requestId, REQUEST_ID_MAX);
  const dTenant = textExact(tenantId, PRINCIPAL_MAX);
  const dKey = textExact(keyId, PRINCIPAL_MAX);
  const dModel = textExact(model, MODEL_MAX);
  const dStatus = statusExact(status);
  const dAction = textExact(action, ACTION_MAX);
  const dIn = tokensIn !== 0 && Number.isSafeInteger(tokensIn);
  const dOut = tokensOut !== 0 && Number.isSafeInteger(tokensOut);
  const dCost = typeof costUsd === 'number' && costUsd !== 0 && Number.isFinite(costUsd);
  const dCats = categories !== undefined && categoriesRoundTrip(categories);
  if (dId) m.id = undefined;
  if (dTs) m.ts = undefined;
  if (dKind) m.kind = undefined;
  if (dReq) m.requestId = undefined;
  if (dTenant) m.tenantId = undefined;
  if (dKey) m.keyId = undefined;
  if (dModel) m.model = undefined;
  if (dStatus) m.status = undefined;
  if (dAction) {
    if (admin) m.action = undefined;
    else m.guardAction = undefined;
  }
  if (dIn) m.tokensIn = undefined;
  if (dOut) m.tokensOut = undefined;
  if (dCost) m.costUsd = undefined;
  if (dCats) m.categories = undefined;
  try {
    return JSON.stringify(e);
  } finally {
    if (dId) m.id = id;
    if (dTs) m.ts = ts;
    if (dKind) m.kind = kind;
    if (dReq) m.requestId = requestId;
    if (dTenant) m.tenantId = tenantId;
    if (dKey) m.keyId = keyId;
    if (dModel) m.model = model;
    if (dStatus) m.status = status;
    if (dAction) {
      if (admin) m.action = action;
      else m.guardAction = action;
    }
    if (dIn) m.tokensIn = tokensIn;
    if (dOut) m.tokensOut = tokensOut;
    if (dCost) m.costUsd = costUsd;
    if (dCats) m.categories = categories;
  }
}

/** Categories the `|a|b|` column gives back as they are: non-empty strings without `|` (nor NUL, nor lone surrogates), at least one. */
function categoriesRoundTrip(c: unknown): boolean {
  if (!Array.isArray(c) || c.length === 0) return false;
  for (const x of c) if (typeof x !== 'string' || x === '' || x.includes('|') || !textExact(x, Infinity)) return false;
  return true;
}

/**
 * The event of a stored row: the columns, then the fields of its JSON (`rowData`) over them. Rows
 * written before the JSON was trimmed hold every field in it; those equal the columns' or, cut
 * there, are whole in the JSON, so either kind of row reads back as the event that was stored.
 */
export function eventFromRow(r: StoredEventRow): AuditEvent {
  const e = { id: r.id, ts: Number(r.ts), kind: r.kind } as AuditEvent;
  if (r.request_id !== null) e.requestId = r.request_id;
  if (r.tenant_id !== null) e.tenantId = r.tenant_id;
  if (r.key_id !== null) e.keyId = r.key_id;
  if (r.model !== null) e.model = r.model;
  if (r.status !== null) e.status = Number(r.status);
  const tokensIn = Number(r.tokens_in);
  if (tokensIn) e.tokensIn = tokensIn;
  const tokensOut = Number(r.tokens_out);
  if (tokensOut) e.tokensOut = tokensOut;
  const cost = Number(r.cost_usd);
  if (cost) e.costUsd = cost;
  if (r.action !== null) {
    if (r.kind === 'admin') e.action = r.action;
    else e.guardAction = r.action;
  }
  if (r.categories && r.categories !== NO_CATEGORIES) e.categories = r.categories.slice(1, -1).split('|');
  return Object.assign(e, JSON.parse(r.data) as Partial<AuditEvent>);
}

/** A row in EVENT_COLUMNS order (values, as `prepare` makes them and `preparedRow` gives back) as the columns `eventFromRow` reads. */
export function eventFromRowValues(row: readonly unknown[]): AuditEvent {
  const o: Record<string, unknown> = {};
  EVENT_COLUMNS.forEach((c, i) => (o[c] = row[i]));
  return eventFromRow(o as unknown as StoredEventRow);
}

/** What the writer needs from a store. */
export interface AuditSink {
  /** Inserts a batch; events whose id already exists are skipped (idempotent). */
  insert(batch: readonly QueuedEvent[]): Promise<void>;
  /**
   * Optional: the event's row, built when the event is queued (its JSON included), so the writer
   * holds one small array and a string per event until the batch is written instead of the event's
   * object tree, and the JSON is written from objects still in the cache.
   */
  prepare?(q: QueuedEvent): PreparedEvent;
  /** Inserts prepared rows (with `prepare`); idempotent like `insert`. Releases them (below) when it succeeds. */
  insertPrepared?(batch: readonly PreparedEvent[]): Promise<void>;
  /** Prepared rows the writer spilled or dropped instead: what they hold may be reused. */
  release?(batch: readonly PreparedEvent[]): void;
}

/** A search over the audit trail. */
export interface AuditQuery {
  tenantIds?: readonly string[];
  keyId?: string;
  since?: number;
  until?: number;
  category?: string;
  /** Exact status (e.g. 403), a class (`4xx`, `5xx`) or `error` (>= 400). */
  status?: string;
  kind?: 'request' | 'admin';
  requestId?: string;
  /** Admin action (exact). */
  action?: string;
  /** Opaque cursor from the previous page. */
  cursor?: string;
  limit: number;
}

/** One page of events, newest first. */
export interface AuditPage {
  data: AuditEvent[];
  nextCursor: string | null;
}

/** A usage report query. */
export interface UsageQuery {
  tenantIds?: readonly string[];
  keyId?: string;
  model?: string;
  since?: number;
  until?: number;
  groupBy: ReadonlyArray<'day' | 'tenant' | 'key' | 'model'>;
}

/** One usage row. */
export interface UsageRow {
  day?: string;
  tenantId?: string | null;
  keyId?: string | null;
  model?: string | null;
  requests: number;
  tokensIn: number;
  tokensOut: number;
  costUsd: number;
}

const enc = (ts: number, id: string) => Buffer.from(`${ts}:${id}`, 'utf8').toString('base64url');
/** The id part of a cursor: an event id as the `varchar(64)` column holds one (no control character: PostgreSQL refuses a NUL). */
const CURSOR_ID = /^[^\x00-\x1f\x7f]{1,64}$/;
/**
 * A cursor's position: `<ts>:<id>` (base64url) with `ts` an integer of at most TS_MAX in size
 * (`1e300`, `1.5` or `99e18` would make PostgreSQL fail the query on its bigint column) and a
 * well-formed id; anything else is an `invalid cursor`.
 */
function dec(c: string): { ts: number; id: string } {
  const s = Buffer.from(c, 'base64url').toString('utf8');
  const i = s.indexOf(':');
  const t = s.slice(0, i);
  const id = s.slice(i + 1);
  const ts = Number(t);
  if (i <= 0 || !/^-?\d{1,16}$/.test(t) || !tsExact(ts) || !CURSOR_ID.test(id)) throw new Error('invalid cursor');
  return { ts, id };
}

/**
 * A `since`/`until` bound as the bigint `ts` column can compare it: rounded up (`ts >= 1.5` and
 * `ts < 1.5` select what `2` does) and clamped to ±TS_MAX (no event lies beyond; a larger value
 * made PostgreSQL fail the query: bigint out of range).
 */
function timeBound(v: number, name: string): number {
  if (typeof v !== 'number' || Number.isNaN(v)) throw new Error(`${name}: invalid time bound`);
  const n = Math.ceil(v);
  return n < -TS_MAX ? -TS_MAX : n > TS_MAX ? TS_MAX : n;
}

/** Calendar day (YYYY-MM-DD) of an instant in a time zone. */
export function dayOf(ms: number, timeZone: string): string {
  if (isUtcZone(timeZone)) return utcDay(ms);
  return new Intl.DateTimeFormat('en-CA', { timeZone, year: 'numeric', month: '2-digit', day: '2-digit' }).format(ms);
}

/** Time zone offsets change at most on quarter hours: a day name is cached per 15 minutes. */
const DAY_SLOT_MS = 15 * 60_000;

/** Rows deleted per statement by `purge` (a few milliseconds of SQLite work each). */
export const PURGE_CHUNK = 1_000;

/**
 * Buffers kept for batches to the writer thread, the smallest one made, and the largest one kept
 * (a batch of 500 rows is ~0.5 MB; larger ones, from a large audit.batchSize, are not kept).
 */
const SEND_BUFFERS = 4;
const SEND_BUFFER_BYTES = 1 << 20;
const SEND_BUFFER_KEEP = 4 << 20;

/** Young-generation cap of the SQLite writer thread (MB). */
const WRITER_YOUNG_MB = 2;

/** The audit store. */
export class AuditStore implements AuditSink {
  /** The day formatter of a zone other than UTC (see isUtcZone). */
  private readonly dayFmt?: Intl.DateTimeFormat;
  private daySlot = -1;
  private dayName = '';
  private readonly rawInsert?: (rows: readonly unknown[][], payloads: readonly unknown[][]) => void;
  private worker?: Worker;
  private workerFailed = false;
  /** Batches sent to the writer thread and not answered yet (written here if the thread goes). */
  private readonly pending = new Map<number, { batch: readonly PreparedEvent[]; payloads: unknown[][]; resolve(): void; reject(e: Error): void }>();
  /** Buffers batches are copied into for the writer thread, back from it with its answer (reused: see RowPacker). */
  private readonly sendBuffers: ArrayBuffer[] = [];
  /** Packs rows while they wait for the writer thread (see RowPacker). */
  private readonly packer?: RowPacker;
  private seq = 0;
  /** Read queries' thread (SQLite files; see `rows`). */
  private readonly reader?: SqliteReader;
  /** This connection's `wal_autocheckpoint` while the writer thread checkpoints instead (see handOverCheckpoints). */
  private mainAutocheckpoint: number | undefined;
  /** Whether the store is PostgreSQL (else SQLite). */
  private readonly postgres: boolean;
  constructor(
    readonly db: Kysely<Database>,
    /** Time zone of the `day` column (the limits time zone). */
    readonly timeZone = 'UTC',
    /**
     * The embedded default's SQLite handle: batches are then written with two prepared statements
     * in one transaction instead of building a multi-row statement per batch — on a writer thread
     * with its own connection to the same file (unless `thread` is false or the thread cannot
     * start), else on this thread.
     */
    private readonly sqlite?: SqliteDatabase.Database,
    private readonly opts: {
      thread?: boolean;
      reader?: boolean;
      /** PostgreSQL: `statement_timeout` and `idle_in_transaction_session_timeout` of a batch's transaction (ms; 0 = none). */
      writeTimeoutMs?: number;
    } = {},
  ) {
    this.postgres = db.getExecutor().adapter instanceof PostgresAdapter;
    if (!isUtcZone(timeZone)) this.dayFmt = new Intl.DateTimeFormat('en-CA', { timeZone, year: 'numeric', month: '2-digit', day: '2-digit' });
    if (sqlite) this.rawInsert = insertStatements(sqlite);
    if (sqlite && !sqlite.memory && opts.thread !== false) this.packer = new RowPacker();
    if (sqlite && !sqlite.memory && opts.reader !== false) this.reader = new SqliteReader(sqlite.name);
  }

  /** The writer thread, started on first use; undefined when it is off or has failed. */
  private writerThread(): Worker | undefined {
    if (this.worker || this.workerFailed || !this.sqlite || this.opts.thread === false || this.sqlite.memory) return this.worker;
    try {
      const workerData = { file: this.sqlite.name };
      // A small young generation: the thread only turns batches into statements, and V8's default
      // (up to 16 MB for a worker) kept ~6 MB more of the process's RSS committed under load.
      const resourceLimits = { maxYoungGenerationSizeMb: WRITER_YOUNG_MB };
      const w = siblingWorker(import.meta.url, 'sqlite-worker', { workerData, resourceLimits });
      w.unref();
      w.on('message', (m: { id: number; error?: string; code?: string; buffer?: ArrayBuffer }) => {
        if (m.buffer && m.buffer.byteLength <= SEND_BUFFER_KEEP && this.sendBuffers.length < SEND_BUFFERS) this.sendBuffers.push(m.buffer);
        const p = this.pending.get(m.id);
        if (!p) return;
        this.pending.delete(m.id);
        if (this.pending.size === 0) w.unref();
        if (m.error) p.reject(Object.assign(new Error(m.error), m.code ? { code: m.code } : {}));
        else {
          this.release(p.batch);
          p.resolve();
        }
      });
      // A thread that fails or exits is not restarted: its unanswered batches (idempotent ids, so
      // a batch it did write is skipped) and every later one are written on this thread.
      const gone = (why: string) => {
        this.workerFailed = true;
        this.worker = undefined;
        this.takeBackCheckpoints();
        const left = [...this.pending.values()];
        this.pending.clear();
        for (const p of left) {
          try {
            if (this.sqlite!.inTransaction) throw new Error(`audit writer thread ${why}`);
            this.rawInsert!(p.batch.map(preparedRow), p.payloads);
            this.release(p.batch);
            p.resolve();
          } catch (e) {
            p.reject(e as Error);
          }
        }
      };
      w.on('error', (e) => gone(`failed: ${e.message}`));
      w.on('exit', (code) => gone(`exited (${code})`));
      this.worker = w;
      this.handOverCheckpoints();
    } catch {
      this.workerFailed = true;
    }
    return this.worker;
  }

  /**
   * While the writer thread runs, it checkpoints the WAL (its connection's autocheckpoint, and a
   * passive checkpoint on a timer): this connection's automatic checkpoint is switched off. Else
   * the first commit here after the WAL passed 1 000 pages (every identity last-used flush, any
   * admin write) copied the audit trail's accumulated WAL into the database file on the event
   * loop, fsync included: a stall of ~130 ms every 30 s at ~4 300 requests/s, growing with the
   * traffic between two such commits.
   */
  private handOverCheckpoints(): void {
    const c = this.sqlite;
    if (!c || this.mainAutocheckpoint !== undefined) return;
    this.mainAutocheckpoint = Number(c.pragma('wal_autocheckpoint', { simple: true }));
    c.pragma('wal_autocheckpoint = 0');
  }

  /** The writer thread is gone: this connection checkpoints again as it did before. */
  private takeBackCheckpoints(): void {
    const c = this.sqlite;
    const pages = this.mainAutocheckpoint;
    if (!c || pages === undefined) return;
    this.mainAutocheckpoint = undefined;
    if (c.open) c.pragma(`wal_autocheckpoint = ${pages}`);
  }

  /** Whether batches currently go to the writer thread. */
  get threaded(): boolean {
    return this.worker !== undefined;
  }

  /** Stops the writer and reader threads (after the writer has flushed); later batches and queries run on this thread. */
  async close(): Promise<void> {
    await this.reader?.close();
    const w = this.worker;
    if (!w) return;
    this.workerFailed = true; // no restart
    await w.terminate();
    this.takeBackCheckpoints();
  }

  /** The `day` column of an instant (YYYY-MM-DD in the store's time zone). */
  private dayOf(ts: number): string {
    const slot = Math.floor(ts / DAY_SLOT_MS);
    if (slot !== this.daySlot) {
      this.dayName = this.dayFmt ? this.dayFmt.format(ts) : utcDay(ts);
      this.daySlot = slot;
    }
    return this.dayName;
  }

  /**
   * The event's row in EVENT_COLUMNS order (its JSON last), packed when it waits for the writer
   * thread, with its payload. Every value fits its column on both stores, whatever the event holds
   * (the model comes from the client, token counts from the upstream): NUL characters are removed
   * from text and text is cut to the column's length, integers are rounded and clamped (tokens to
   * safe integers, status to PostgreSQL's `integer`, ts to a Date's range), a cost that is not a
   * finite number is 0, a value of the wrong type is null (0 for counts). A value so changed stays
   * in the row's JSON as it was (see rowData), so the event reads back unchanged.
   */
  prepare(q: QueuedEvent): PreparedEvent {
    const e = q.event;
    if (typeof e?.id !== 'string') throw new AuditDataError('audit event without an id');
    const ts = tsExact(e.ts) ? e.ts : intColumn(e.ts, -TS_MAX, TS_MAX, 0);
    const cats = e.categories;
    let categories = NO_CATEGORIES;
    if (Array.isArray(cats) && cats.length) {
      categories = `|${cats.join('|')}|`;
      if (categories.includes('\0')) categories = categories.replace(NUL, '');
    }
    const row: unknown[] = [
      e.id,
      ts,
      this.dayOf(ts),
      textColumn(e.kind, KIND_MAX) ?? '',
      textColumn(e.tenantId, PRINCIPAL_MAX),
      textColumn(e.keyId, PRINCIPAL_MAX),
      textColumn(e.requestId, REQUEST_ID_MAX),
      statusExact(e.status) ? e.status : intColumn(e.status, INT32_MIN, INT32_MAX, null),
      textColumn(e.model, MODEL_MAX),
      textColumn(e.kind === 'admin' ? e.action : e.guardAction, ACTION_MAX),
      categories,
      Number.isSafeInteger(e.tokensIn) ? e.tokensIn : intColumn(e.tokensIn, Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER, 0),
      Number.isSafeInteger(e.tokensOut) ? e.tokensOut : intColumn(e.tokensOut, Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER, 0),
      typeof e.costUsd === 'number' && Number.isFinite(e.costUsd) ? e.costUsd : 0,
      rowData(e),
    ];
    const packed = this.packer && !this.workerFailed ? this.packer.pack(row) : undefined;
    const p: PreparedEvent = packed ? { packed } : { row };
    if (q.payload) p.payload = q.payload;
    return p;
  }

  async insert(batch: readonly QueuedEvent[]): Promise<void> {
    const prepared: PreparedEvent[] = [];
    try {
      for (const q of batch) prepared.push(this.prepare(q));
    } catch (e) {
      this.release(prepared);
      throw e instanceof AuditDataError ? e : new AuditDataError(`audit event cannot be stored: ${(e as Error)?.message ?? String(e)}`);
    }
    try {
      await this.insertPrepared(prepared);
    } finally {
      this.release(prepared); // the caller keeps the events, not these rows
    }
  }

  /**
   * Prepared events leave the writer's hands (written, spilled or dropped): packed rows give their
   * bytes back. Idempotent; a successful `insertPrepared` releases its batch itself.
   */
  release(batch: readonly PreparedEvent[]): void {
    const packer = this.packer;
    if (!packer) return;
    for (const x of batch) if (x.packed) packer.release(x.packed);
  }

  async insertPrepared(batch: readonly PreparedEvent[]): Promise<void> {
    if (batch.length === 0) return;
    const payloadArrays: unknown[][] = [];
    for (const x of batch) {
      const p = x.payload;
      if (!p) continue;
      const row = preparedRow(x);
      // Sealed bodies are base64 and the tenant a gateway id: these only change when a spill line was edited.
      const body = (v: unknown) => textColumn(v, Infinity);
      payloadArrays.push([row[0], textColumn(p.tenantId, PRINCIPAL_MAX) ?? '', row[1], intColumn(p.expiresAt, 0, Number.MAX_SAFE_INTEGER, 0), body(p.request), body(p.response)]);
    }
    const packer = this.packer;
    if (this.rawInsert) {
      const w = this.writerThread();
      if (w) {
        // Packed rows are copied into a buffer handed to the thread, which hands it back with its
        // answer; this side keeps the rows' handles until then (if the thread goes, they are
        // written here). Rows as values (prepared when the store did not pack) are cloned value by value.
        let rows: unknown[][] | ArrayBuffer;
        let length = 0;
        const transfer: ArrayBuffer[] = [];
        if (packer && batch.every((x) => x.packed)) {
          for (const x of batch) length += x.packed!.len;
          const ab = this.sendBuffer(length);
          const out = Buffer.from(ab, 0, length);
          packer.copyAll(batch.map((x) => x.packed!), out);
          rows = ab;
          transfer.push(ab);
        } else rows = batch.map(preparedRow);
        const id = ++this.seq;
        const done = new Promise<void>((resolve, reject) => this.pending.set(id, { batch, payloads: payloadArrays, resolve, reject }));
        w.ref();
        w.postMessage({ id, rows, length, payloads: payloadArrays }, transfer);
        return done;
      }
    }
    // Rows in EVENT_COLUMNS order: arrays go to the prepared statements as they are; Kysely gets them as objects.
    const rowArrays = batch.map(preparedRow);
    if (this.rawInsert) {
      // On this thread: raw statements only when no Kysely transaction is open on the connection (they would join it).
      if (!this.sqlite!.inTransaction) {
        this.rawInsert(rowArrays, payloadArrays);
        this.release(batch);
        return;
      }
    }
    const rows = rowArrays.map((r) => Object.fromEntries(EVENT_COLUMNS.map((c, i) => [c, r[i]]))) as unknown as Array<Insertable<Database['audit_events']>>;
    const payloads = payloadArrays.map((r) => Object.fromEntries(PAYLOAD_COLUMNS.map((c, i) => [c, r[i]]))) as unknown as Array<Insertable<Database['audit_payloads']>>;
    await this.db.transaction().execute(async (tx) => {
      // PostgreSQL: the server cancels a statement of this transaction that runs past the write
      // deadline (a lock wait behind a stalled transaction inserting the same ids, an overloaded
      // server), and ends this transaction if its client stalls in the middle of it (its locks
      // would hold up the replay of the same events); for this transaction only, not the pool's other users.
      if (this.postgres && this.opts.writeTimeoutMs) {
        const ms = String(this.opts.writeTimeoutMs);
        await sql`select set_config('statement_timeout', ${ms}, true), set_config('idle_in_transaction_session_timeout', ${ms}, true)`.execute(tx);
      }
      // Chunks keep each statement under SQLite's bound-parameter limit.
      for (let i = 0; i < rows.length; i += 500) {
        await tx.insertInto('audit_events').values(rows.slice(i, i + 500)).onConflict((oc) => oc.column('id').doNothing()).execute();
      }
      for (let i = 0; i < payloads.length; i += 500) {
        await tx.insertInto('audit_payloads').values(payloads.slice(i, i + 500)).onConflict((oc) => oc.column('event_id').doNothing()).execute();
      }
    });
    this.release(batch);
  }

  /** A buffer of at least `bytes` for a batch: one the thread gave back, or a new one. */
  private sendBuffer(bytes: number): ArrayBuffer {
    const free = this.sendBuffers;
    for (let i = 0; i < free.length; i++) {
      if (free[i]!.byteLength >= bytes) return free.splice(i, 1)[0]!;
    }
    return new ArrayBuffer(Math.max(bytes + (bytes >> 2), SEND_BUFFER_BYTES));
  }

  /**
   * The rows of a read query: on the reader thread for a SQLite file (a scan of a large trail must
   * not hold the event loop), else — or when that thread is gone — on this store's connection.
   */
  async read<R>(q: ReadQuery<R>): Promise<R[]> {
    const off = this.reader?.all(q.compile());
    if (!off) return q.execute();
    try {
      return await off;
    } catch (e) {
      if (this.reader?.threaded) throw e; // the query failed, not the thread
      return q.execute();
    }
  }

  /** Events matching the query, newest first, paginated by cursor. */
  async search(q: AuditQuery): Promise<AuditPage> {
    let s = this.db.selectFrom('audit_events').select([...STORED_EVENT_COLUMNS]);
    if (q.tenantIds) s = q.tenantIds.length ? s.where('tenant_id', 'in', [...q.tenantIds]) : s.where(sql<boolean>`1 = 0`);
    if (q.keyId) s = s.where('key_id', '=', q.keyId);
    if (q.since !== undefined) s = s.where('ts', '>=', timeBound(q.since, 'since'));
    if (q.until !== undefined) s = s.where('ts', '<', timeBound(q.until, 'until'));
    if (q.kind) s = s.where('kind', '=', q.kind);
    if (q.requestId) s = s.where('request_id', '=', q.requestId);
    if (q.action) s = s.where('action', '=', q.action);
    if (q.category) s = s.where(this.categoryMatch(q.category));
    if (q.status) {
      const st = q.status.toLowerCase();
      if (/^\d{3}$/.test(st)) s = s.where('status', '=', Number(st));
      else if (/^[1-5]xx$/.test(st)) s = s.where('status', '>=', Number(st[0]) * 100).where('status', '<', Number(st[0]) * 100 + 100);
      else if (st === 'error') s = s.where('status', '>=', 400);
      else if (st === 'ok') s = s.where('status', '<', 400);
      else throw new Error('status: expected a code (403), a class (4xx), ok or error');
    }
    if (q.cursor) {
      const c = dec(q.cursor);
      s = s.where((eb) => eb.or([eb('ts', '<', c.ts), eb.and([eb('ts', '=', c.ts), eb('id', '<', c.id)])]));
    }
    const rows = await this.read(s.orderBy('ts', 'desc').orderBy('id', 'desc').limit(q.limit + 1));
    const more = rows.length > q.limit;
    const page = rows.slice(0, q.limit);
    const last = page[page.length - 1];
    return { data: page.map((r) => eventFromRow(r)), nextCursor: more && last ? enc(Number(last.ts), last.id) : null };
  }

  /**
   * Events holding the finding category `c`, as a whole and in the same case on both stores: the
   * column is `|a|b|`, matched with `LIKE '%|c|%' ESCAPE '\'` (`%`, `_` and `\` in `c` escaped);
   * SQLite's LIKE ignores ASCII case, so there `instr` (which does not) must find it too. A term
   * containing `|` matches nothing (no single category in the column holds one); NUL characters
   * are left out of the term as they are out of the column.
   */
  private categoryMatch(c: string) {
    if (c.includes('|')) return sql<boolean>`1 = 0`;
    if (c.includes('\0')) c = c.replace(NUL, ''); // as the column holds it (and PostgreSQL refuses NUL)
    const like = sql<boolean>`categories like ${`%|${c.replace(/[\\%_]/g, '\\$&')}|%`} escape '\\'`;
    return this.postgres ? like : sql<boolean>`(${like} and instr(categories, ${`|${c}|`}) > 0)`;
  }

  /** Requests, tokens and cost grouped by day/tenant/key/model (request events only). */
  async usage(q: UsageQuery): Promise<UsageRow[]> {
    const cols = { day: 'day', tenant: 'tenant_id', key: 'key_id', model: 'model' } as const;
    const groups = [...new Set(q.groupBy)].map((g) => cols[g]);
    let s = this.db.selectFrom('audit_events').where('kind', '=', 'request');
    if (q.tenantIds) s = q.tenantIds.length ? s.where('tenant_id', 'in', [...q.tenantIds]) : s.where(sql<boolean>`1 = 0`);
    if (q.keyId) s = s.where('key_id', '=', q.keyId);
    if (q.model) s = s.where('model', '=', q.model);
    if (q.since !== undefined) s = s.where('ts', '>=', timeBound(q.since, 'since'));
    if (q.until !== undefined) s = s.where('ts', '<', timeBound(q.until, 'until'));
    const sel = s.select((eb) => [
      ...groups.map((g) => eb.ref(g).as(g)),
      eb.fn.countAll<number>().as('requests'),
      eb.fn.sum<number>('tokens_in').as('tokens_in'),
      eb.fn.sum<number>('tokens_out').as('tokens_out'),
      eb.fn.sum<number>('cost_usd').as('cost_usd'),
    ]);
    let g = groups.length ? sel.groupBy(groups) : sel;
    for (const c of groups) g = g.orderBy(c);
    const rows = (await this.read(g)) as Array<Record<string, unknown>>;
    return rows.map((r) => ({
      ...(groups.includes('day') ? { day: String(r.day) } : {}),
      ...(groups.includes('tenant_id') ? { tenantId: (r.tenant_id as string | null) ?? null } : {}),
      ...(groups.includes('key_id') ? { keyId: (r.key_id as string | null) ?? null } : {}),
      ...(groups.includes('model') ? { model: (r.model as string | null) ?? null } : {}),
      requests: Number(r.requests),
      tokensIn: Number(r.tokens_in ?? 0),
      tokensOut: Number(r.tokens_out ?? 0),
      costUsd: Math.round(Number(r.cost_usd ?? 0) * 1e6) / 1e6,
    }));
  }

  /** The stored event by id, or undefined. */
  async get(id: string): Promise<AuditEvent | undefined> {
    const [r] = await this.read(this.db.selectFrom('audit_events').select([...STORED_EVENT_COLUMNS]).where('id', '=', id));
    return r ? eventFromRow(r) : undefined;
  }

  /** The encrypted payload of an event, or undefined. */
  async payload(id: string): Promise<{ tenantId: string; request: string | null; response: string | null; expiresAt: number } | undefined> {
    const [r] = await this.read(this.db.selectFrom('audit_payloads').selectAll().where('event_id', '=', id));
    return r ? { tenantId: r.tenant_id, request: r.request, response: r.response, expiresAt: Number(r.expires_at) } : undefined;
  }

  /**
   * Deletes expired payloads (and events older than `eventsBefore` with their payloads, when
   * given); returns the counts (`payloads`: the expired ones). In chunks of PURGE_CHUNK rows, each
   * its own statement, with a turn of the event loop between chunks: on SQLite every statement
   * runs synchronously on the event loop, and one DELETE of an hour of traffic past the retention
   * (hundreds of thousands of rows and their index entries) held it for seconds (200 000 rows:
   * 415 ms). Payloads of an event go before the event, so an interrupted purge leaves no orphans.
   */
  async purge(now: number, eventsBefore?: number): Promise<{ payloads: number; events: number }> {
    const payloads = await deleteInChunks(
      PURGE_CHUNK,
      async (limit) => (await this.db.selectFrom('audit_payloads').select('event_id').where('expires_at', '<=', now).limit(limit).execute()).map((r) => r.event_id),
      async (ids) => Number((await this.db.deleteFrom('audit_payloads').where('event_id', 'in', ids).executeTakeFirst()).numDeletedRows),
    );
    if (eventsBefore === undefined) return { payloads, events: 0 };
    await nextTurn();
    const events = await deleteInChunks(
      PURGE_CHUNK,
      async (limit) => (await this.db.selectFrom('audit_events').select('id').where('ts', '<', eventsBefore).orderBy('ts').orderBy('id').limit(limit).execute()).map((r) => r.id),
      async (ids) => {
        await this.db.deleteFrom('audit_payloads').where('event_id', 'in', ids).execute();
        return Number((await this.db.deleteFrom('audit_events').where('id', 'in', ids).executeTakeFirst()).numDeletedRows);
      },
    );
    return { payloads, events };
  }

  /** Number of stored events (tests, bench). */
  async count(): Promise<number> {
    const [r] = await this.read(this.db.selectFrom('audit_events').select((eb) => eb.fn.countAll<number>().as('n')));
    return Number(r?.n ?? 0);
  }
}
