/**
 * The durable audit writer: a bounded in-memory queue written in batches; when the store fails
 * (or the queue is full, or a write outlasts its deadline) events go to an append-only spill file,
 * replayed once the store answers again. Ids are idempotent, so a batch replayed twice is stored
 * once. An event the store refuses for its data goes to a dead-letter file instead, so it never
 * holds back the others. Never blocks the caller.
 */
import { appendFileSync, createReadStream, existsSync, mkdirSync, readdirSync, renameSync, unlinkSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import type { QueuedEvent } from './event.js';
import { eventFromRowValues, isDataError, preparedRow, type AuditSink, type PreparedEvent } from './store.js';

/** Writer options. */
export interface WriterOptions {
  store: AuditSink;
  spillDir: string;
  queueSize: number;
  batchSize: number;
  flushIntervalMs: number;
  retryIntervalMs: number;
  /** Longest wait for one batch write (ms): past it the batch is spilled and the store taken as down. Default 10 000. */
  writeTimeoutMs?: number;
  /** Longest wait of `close()` for the store (ms): past it what is left is spilled. Default 1 000. */
  closeTimeoutMs?: number;
  log?: { warn(o: object, m: string): void; error(o: object, m: string): void; info?(o: object, m: string): void };
}

/** Defaults of the writer's deadlines (ms). */
export const WRITE_TIMEOUT_MS = 10_000;
export const CLOSE_TIMEOUT_MS = 1_000;

/** Name of the dead-letter file in the spill directory. */
export const DEAD_LETTER_FILE = 'dead-letter.jsonl';

/** Counters of the writer (metrics, tests, bench). */
export interface WriterStats {
  enqueued: number;
  written: number;
  spilled: number;
  replayed: number;
  failures: number;
  queued: number;
  storeDown: boolean;
  /** Events lost because neither the store nor the spill file took them and the queue was full (each one logged). */
  dropped: number;
  /** Events the store refused for their data, moved to the dead-letter file. */
  deadLettered: number;
  /** Batch writes that outlasted `writeTimeoutMs` (or the close deadline). */
  timeouts: number;
}

/** A write that outlasted its deadline: the store is taken as unavailable. */
class WriteTimeoutError extends Error {
  readonly code = 'PCL_AUDIT_WRITE_TIMEOUT';
}

const SEG_RE = /^seg-\d+-\d+-\d+\.jsonl$/;

/** A queued event: as given, or as its store row when the store prepares rows (`AuditSink.prepare`). */
type Item = QueuedEvent | PreparedEvent;
const isPrepared = (x: Item): x is PreparedEvent => !('event' in x);

/**
 * The QueuedEvent of an item. A prepared row's JSON leaves out what its columns hold (see
 * rowData), so the event is put back together from the row.
 */
function queuedEvent(x: Item): QueuedEvent {
  if (!isPrepared(x)) return x;
  const event = eventFromRowValues(preparedRow(x));
  return x.payload ? { event, payload: x.payload } : { event };
}

/** The spill line of an item: `JSON.stringify` of its QueuedEvent. */
function spillLine(x: Item): string {
  return JSON.stringify(queuedEvent(x));
}

/** Whether a parsed spill line has the shape of a QueuedEvent (an event with a string id, a numeric ts and a kind). */
function isQueuedEvent(v: unknown): v is QueuedEvent {
  const e = (v as { event?: unknown } | null)?.event as Record<string, unknown> | null | undefined;
  return typeof v === 'object' && v !== null && typeof e === 'object' && e !== null && !Array.isArray(e) && typeof e.id === 'string' && typeof e.ts === 'number' && typeof e.kind === 'string';
}

/** What a batch write came to: events written, and those left unwritten because the store failed (with the error). */
interface WriteOutcome<T> {
  written: number;
  rest?: T[];
  err?: unknown;
}

/** The audit writer. */
export class AuditWriter {
  private queue: Item[] = [];
  private timer: NodeJS.Timeout | undefined;
  private retry: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;
  private replaying: Promise<boolean> | undefined;
  private down = false;
  private closed = false;
  private seq = 0;
  private readonly active: string;
  private readonly deadLetterFile: string;
  readonly stats: WriterStats = { enqueued: 0, written: 0, spilled: 0, replayed: 0, failures: 0, queued: 0, storeDown: false, dropped: 0, deadLettered: 0, timeouts: 0 };
  /** The spill file failed and has not been written since (logged once per episode). */
  private spillBroken = false;
  /**
   * A write that outlasted its deadline and has not settled yet (a stalled connection): no replay
   * starts meanwhile, so an unanswering store holds at most one of the pool's connections.
   */
  private stalled: Promise<void> | undefined;
  /** `close()`'s deadline has passed: every write in progress or to come fails at once (and spills). */
  private aborted = false;
  /** Rejects the writes waiting on the store (close's deadline). */
  private readonly waiting = new Set<(e: Error) => void>();
  private readonly writeTimeoutMs: number;
  private readonly closeTimeoutMs: number;

  constructor(private readonly o: WriterOptions) {
    mkdirSync(o.spillDir, { recursive: true, mode: 0o700 });
    this.active = join(o.spillDir, `active-${process.pid}.jsonl`);
    this.deadLetterFile = join(o.spillDir, DEAD_LETTER_FILE);
    this.writeTimeoutMs = o.writeTimeoutMs ?? WRITE_TIMEOUT_MS;
    this.closeTimeoutMs = o.closeTimeoutMs ?? CLOSE_TIMEOUT_MS;
    this.adoptOrphans();
    if (this.hasSpill()) this.scheduleRetry(0);
  }

  /** Queues an event (spills when the queue is full or the store is down). */
  push(e: QueuedEvent): void {
    this.stats.enqueued++;
    if (this.closed || this.down || this.queue.length >= this.o.queueSize) {
      if (this.trySpill([e])) {
        if (!this.down && !this.closed) this.scheduleRetry(this.o.retryIntervalMs);
        return;
      }
      // Neither the store nor the spill file: keep it in memory while there is room.
      if (this.closed || this.queue.length >= this.o.queueSize) {
        this.drop(1);
        return;
      }
    }
    const store = this.o.store;
    let item: Item = e;
    if (store.prepare && store.insertPrepared) {
      try {
        item = store.prepare(e);
      } catch (err) {
        // An event no row can be made of (prepare fits every value to its column: only a malformed event gets here).
        this.deadLetter([{ item: e, err }]);
        return;
      }
    }
    this.queue.push(item);
    this.stats.queued = this.queue.length;
    if (this.queue.length >= this.o.batchSize) this.flushInBackground();
    else if (!this.timer) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.flushInBackground();
      }, this.o.flushIntervalMs);
      this.timer.unref();
    }
  }

  /** Writes everything queued now; on failure the events go to the spill file. */
  flush(): Promise<void> {
    if (this.flushing) return this.flushing.then(() => (this.queue.length ? this.flush() : undefined));
    if (this.queue.length === 0) return Promise.resolve();
    const run = async (): Promise<void> => {
      await Promise.resolve(); // `flushing` is assigned before the loop runs
      try {
        while (this.queue.length) {
          const batch = this.queue.splice(0, this.o.batchSize);
          this.stats.queued = this.queue.length;
          let rest = batch;
          if (!this.down) {
            const r = await this.writeSplitting(batch, (b) => this.insertBatch(b));
            this.stats.written += r.written;
            if (!r.rest) continue;
            this.stats.failures++;
            this.markDown(r.err);
            rest = r.rest;
          }
          if (!this.trySpill(rest)) {
            // The spill file failed too: the batch goes back to the front of the queue (as much
            // of it as fits) and waits for the store's return or the next flush.
            this.requeue(rest);
            break;
          }
          this.release(rest);
        }
      } finally {
        this.flushing = undefined;
      }
    };
    this.flushing = run();
    return this.flushing;
  }

  private insertBatch(batch: Item[]): Promise<void> {
    // Items are prepared only when the store has both `prepare` and `insertPrepared`.
    return isPrepared(batch[0]!) ? this.o.store.insertPrepared!(batch as PreparedEvent[]) : this.o.store.insert(batch as QueuedEvent[]);
  }

  /**
   * Writes a batch within the write deadline. When the store refuses it for the data it carries
   * (isDataError), its halves are written, and theirs, down to single events: one bad event costs
   * about 2·log2(batch size) extra writes, and the store keeps every other event. An event refused
   * on its own goes to the dead-letter file (once per batch in the log). Any other failure (the
   * store unavailable, the deadline passed) returns the events not written yet, with the error.
   */
  private async writeSplitting<T extends Item>(batch: T[], insert: (b: T[]) => Promise<void>): Promise<WriteOutcome<T>> {
    const parts: T[][] = [batch];
    const dead: Array<{ item: T; err: unknown }> = [];
    let written = 0;
    try {
      while (parts.length) {
        const part = parts.pop()!;
        try {
          await this.withDeadline(() => insert(part));
          written += part.length;
        } catch (e) {
          if (!isDataError(e)) return { written, rest: [part, ...parts.reverse()].flat(), err: e };
          if (part.length === 1) dead.push({ item: part[0]!, err: e });
          else {
            const mid = part.length >>> 1;
            parts.push(part.slice(mid), part.slice(0, mid));
          }
        }
      }
      return { written };
    } finally {
      if (dead.length) this.deadLetter(dead);
    }
  }

  /**
   * A write, failed with WriteTimeoutError when it outlasts `writeTimeoutMs` or `close()`'s
   * deadline passes. The write itself goes on (a late commit is harmless: ids are idempotent); until
   * it settles no replay starts (see `stalled`).
   */
  private withDeadline(start: () => Promise<void>): Promise<void> {
    if (this.aborted) return Promise.reject(new WriteTimeoutError('audit writer closing: its deadline has passed'));
    let write: Promise<void>;
    try {
      write = start();
    } catch (e) {
      return Promise.reject(e);
    }
    return new Promise<void>((resolve, reject) => {
      let done = false;
      const expire = (err: Error) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        this.waiting.delete(expire);
        this.stats.timeouts++;
        const stalled: Promise<void> = write.then(
          () => {},
          () => {},
        );
        this.stalled = stalled;
        void stalled.then(() => {
          if (this.stalled === stalled) this.stalled = undefined;
        });
        reject(err);
      };
      const timer = setTimeout(() => expire(new WriteTimeoutError(`audit store write took longer than ${this.writeTimeoutMs} ms`)), this.writeTimeoutMs);
      this.waiting.add(expire);
      write.then(
        () => {
          if (done) return;
          done = true;
          clearTimeout(timer);
          this.waiting.delete(expire);
          resolve();
        },
        (e: unknown) => {
          if (done) return;
          done = true;
          clearTimeout(timer);
          this.waiting.delete(expire);
          reject(e);
        },
      );
    });
  }

  /**
   * Appends events the store refused for their data to the dead-letter file (JSON lines: the
   * event and payload as spilled, when, and the store's error), counted in `stats.deadLettered`
   * and logged once per call (the error code, never values). Never replayed: an operator reads,
   * fixes or discards them. If the file cannot be written they are dropped (counted, logged).
   */
  private deadLetter(dead: ReadonlyArray<{ item: Item; err: unknown }>): void {
    const at = Date.now();
    const first = dead[0]!.err as { code?: unknown; message?: unknown } | undefined;
    const code = typeof first?.code === 'string' ? first.code : undefined;
    try {
      const lines = dead.map(({ item, err }) => {
        const q = queuedEvent(item);
        const e = err as { code?: unknown; message?: unknown } | undefined;
        return JSON.stringify({ deadLetteredAt: at, error: { code: typeof e?.code === 'string' ? e.code : undefined, message: String(e?.message ?? err) }, event: q.event, ...(q.payload ? { payload: q.payload } : {}) });
      });
      appendFileSync(this.deadLetterFile, lines.join('\n') + '\n', { mode: 0o600 });
      this.stats.deadLettered += dead.length;
      this.o.log?.error({ events: dead.length, code, total: this.stats.deadLettered, file: this.deadLetterFile }, 'audit events refused by the store for their data: moved to the dead-letter file (not retried)');
    } catch (e) {
      this.stats.dropped += dead.length;
      this.o.log?.error({ events: dead.length, code, err: (e as Error)?.message, file: this.deadLetterFile }, 'audit events refused by the store and the dead-letter file cannot be written: dropped');
    } finally {
      this.release(dead.map((d) => d.item));
    }
  }

  private markDown(e: unknown): void {
    if (!this.down) this.o.log?.warn({ err: (e as Error)?.message }, 'audit store unavailable: spilling events to the local file');
    this.down = true;
    this.stats.storeDown = true;
    this.scheduleRetry(this.o.retryIntervalMs);
  }

  private spill(batch: readonly Item[]): void {
    if (batch.length === 0) return;
    appendFileSync(this.active, batch.map(spillLine).join('\n') + '\n', { mode: 0o600 });
    this.stats.spilled += batch.length;
  }

  /** Spills a batch; false (logged once per episode) when the spill file cannot be written (disk full, permissions…). */
  private trySpill(batch: readonly Item[]): boolean {
    try {
      this.spill(batch);
      if (this.spillBroken) this.o.log?.info?.({ file: this.active }, 'audit spill file writable again');
      this.spillBroken = false;
      return true;
    } catch (e) {
      if (!this.spillBroken) this.o.log?.error({ err: (e as Error)?.message, file: this.active }, 'audit spill file cannot be written: events are kept in memory up to audit.queueSize, then dropped');
      this.spillBroken = true;
      return false;
    }
  }

  /** Puts a batch back at the front of the queue; what exceeds queueSize is dropped (counted and logged). */
  private requeue(batch: Item[]): void {
    const room = Math.max(0, this.o.queueSize - this.queue.length);
    if (batch.length > room) {
      this.drop(batch.length - room);
      this.release(batch.slice(room));
    }
    this.queue.unshift(...batch.slice(0, room));
    this.stats.queued = this.queue.length;
    // Try again later even without new events (the store's return replays and flushes too).
    this.scheduleRetry(this.o.retryIntervalMs);
  }

  /** Prepared items that left the queue without being written (spilled, dropped) go back to the store. */
  private release(items: readonly Item[]): void {
    if (!this.o.store.release) return;
    const prepared = items.filter(isPrepared);
    if (prepared.length) this.o.store.release(prepared);
  }

  private drop(n: number): void {
    this.stats.dropped += n;
    this.o.log?.error({ dropped: n, total: this.stats.dropped }, 'audit events dropped: the store and the spill file are both unavailable and the queue is full');
  }

  /** A flush nobody awaits: it never rejects (a failure is logged). */
  private flushInBackground(): void {
    this.flush().catch((e) => this.o.log?.error({ err: (e as Error)?.message }, 'audit flush failed'));
  }

  private hasSpill(): boolean {
    return existsSync(this.active) || readdirSync(this.o.spillDir).some((f) => SEG_RE.test(f));
  }

  /** Spill files of processes that are gone become segments this writer replays. */
  private adoptOrphans(): void {
    for (const f of readdirSync(this.o.spillDir)) {
      const m = /^active-(\d+)\.jsonl$/.exec(f);
      if (m && Number(m[1]) !== process.pid && !alive(Number(m[1]))) this.rotate(join(this.o.spillDir, f));
      const c = /^claim-(\d+)-(seg-.+)$/.exec(f);
      if (c && (Number(c[1]) === process.pid || !alive(Number(c[1])))) renameSync(join(this.o.spillDir, f), join(this.o.spillDir, c[2]!));
    }
  }

  private rotate(file: string): void {
    try {
      renameSync(file, join(this.o.spillDir, `seg-${Date.now()}-${process.pid}-${this.seq++}.jsonl`));
    } catch {
      /* nothing to rotate */
    }
  }

  private scheduleRetry(ms: number): void {
    if (this.retry || this.closed) return;
    this.retry = setTimeout(() => {
      this.retry = undefined;
      void this.replay()
        .catch((e) => {
          this.o.log?.error({ err: (e as Error)?.message }, 'audit spill replay failed');
          return false;
        })
        .then((ok) => {
          if (!ok) this.scheduleRetry(this.o.retryIntervalMs);
        });
    }, ms);
    this.retry.unref();
  }

  /**
   * Replays the spill files into the store (idempotent). Returns true when nothing is left.
   * Each segment is claimed by rename, so several processes sharing the directory never replay one twice at once.
   * Replays of this writer run one after another: `close()` waits for a retry's replay that is
   * still inserting a claimed segment (otherwise that segment's events could be left unstored).
   */
  replay(): Promise<boolean> {
    const run = (this.replaying ?? Promise.resolve(true)).catch(() => false).then(() => this.replayNow());
    this.replaying = run;
    return run;
  }

  private async replayNow(): Promise<boolean> {
    // A write that outlasted its deadline still holds a connection: wait for it to settle first.
    if (this.stalled || this.aborted) return false;
    this.rotate(this.active);
    const segs = readdirSync(this.o.spillDir).filter((f) => SEG_RE.test(f)).sort();
    for (const seg of segs) {
      const claimed = join(this.o.spillDir, `claim-${process.pid}-${seg}`);
      try {
        renameSync(join(this.o.spillDir, seg), claimed);
      } catch {
        continue; // another process took it
      }
      let replayed: number;
      try {
        replayed = await this.replaySegment(claimed);
      } catch (e) {
        renameSync(claimed, join(this.o.spillDir, seg));
        this.stats.failures++;
        if (!this.down) this.o.log?.warn({ err: (e as Error)?.message }, 'audit store unavailable: spilling events to the local file');
        this.down = true;
        this.stats.storeDown = true;
        return false;
      }
      unlinkSync(claimed);
      this.stats.replayed += replayed;
    }
    if (this.down) this.o.log?.info?.({ replayed: this.stats.replayed }, 'audit store back: spill replayed');
    this.down = false;
    this.stats.storeDown = false;
    if (existsSync(this.active)) return this.replayNow();
    // Events kept in memory while the spill file could not be written.
    if (this.queue.length > 0 && !this.closed) this.flushInBackground();
    return true;
  }

  /**
   * Inserts the events of one claimed segment, read line by line in batches: a segment holds
   * everything spilled during an outage (hours of traffic, hundreds of MB), and reading it whole
   * held the event loop while it was read and split and kept every event in memory at once.
   * Returns the number of events inserted; throws when the store fails or a write outlasts its
   * deadline (the caller puts the segment back: ids are idempotent, so the part already inserted is
   * skipped next time). Events the store refuses for their data, and lines that parse but are no
   * event, go to the dead-letter file (see writeSplitting): a bad line never stalls the replay.
   */
  private async replaySegment(file: string): Promise<number> {
    const input = createReadStream(file, { encoding: 'utf8' });
    const lines = createInterface({ input, crlfDelay: Infinity });
    let batch: QueuedEvent[] = [];
    let n = 0;
    const write = async () => {
      const r = await this.writeSplitting(batch, (b) => this.o.store.insert(b));
      n += r.written;
      batch = [];
      if (r.rest) throw r.err;
    };
    try {
      for await (const line of lines) {
        if (!line) continue;
        let q: unknown;
        try {
          q = JSON.parse(line);
        } catch {
          continue; // a torn last line of a crash: the rest is still good
        }
        if (!isQueuedEvent(q)) {
          this.deadLetter([{ item: { event: (q as { event?: unknown } | null)?.event ?? q } as QueuedEvent, err: new Error('spill line is not an audit event') }]);
          continue;
        }
        batch.push(q);
        if (batch.length >= this.o.batchSize) await write();
      }
      if (batch.length > 0) await write();
      return n;
    } finally {
      lines.close();
      input.destroy();
    }
  }

  /**
   * Flushes the queue and replays what it can; events that still cannot be stored stay in the
   * spill file. Returns within about `closeTimeoutMs`: then the write in progress fails (its batch
   * and the rest of the queue are spilled, a replay in progress puts its segment back), so a stalled
   * store never holds the shutdown nor loses the queue.
   */
  async close(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const deadline = setTimeout(() => {
      if (!this.aborted) this.o.log?.warn({ closeTimeoutMs: this.closeTimeoutMs }, 'audit writer: store too slow at shutdown, spilling what is left');
      this.aborted = true;
      for (const expire of [...this.waiting]) expire(new WriteTimeoutError(`audit writer closing: the store did not answer within ${this.closeTimeoutMs} ms`));
    }, this.closeTimeoutMs);
    try {
      await this.flush();
      this.closed = true;
      if (this.queue.length > 0) {
        // Neither the store nor the spill file took them: they end with this process (logged, counted).
        this.drop(this.queue.length);
        this.release(this.queue);
        this.queue = [];
        this.stats.queued = 0;
      }
      if (this.retry) clearTimeout(this.retry);
      this.retry = undefined;
      // A retry's replay may still be inserting a segment it claimed (no longer visible as a spill file).
      await this.replaying?.catch(() => false);
      if (this.hasSpill()) await this.replay().catch(() => false);
    } finally {
      clearTimeout(deadline);
    }
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
