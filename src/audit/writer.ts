/**
 * The durable audit writer: a bounded in-memory queue written in batches; when the store fails
 * (or the queue is full) events go to an append-only spill file, replayed once the store answers
 * again. Ids are idempotent, so a batch replayed twice is stored once. Never blocks the caller.
 */
import { appendFileSync, createReadStream, existsSync, mkdirSync, readdirSync, renameSync, unlinkSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import type { QueuedEvent } from './event.js';
import { eventFromRowValues, preparedRow, type AuditSink, type PreparedEvent } from './store.js';

/** Writer options. */
export interface WriterOptions {
  store: AuditSink;
  spillDir: string;
  queueSize: number;
  batchSize: number;
  flushIntervalMs: number;
  retryIntervalMs: number;
  log?: { warn(o: object, m: string): void; error(o: object, m: string): void; info?(o: object, m: string): void };
}

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
}

const SEG_RE = /^seg-\d+-\d+-\d+\.jsonl$/;

/** A queued event: as given, or as its store row when the store prepares rows (`AuditSink.prepare`). */
type Item = QueuedEvent | PreparedEvent;
const isPrepared = (x: Item): x is PreparedEvent => !('event' in x);

/**
 * The spill line of an item: `JSON.stringify` of its QueuedEvent. A prepared row's JSON leaves out
 * what its columns hold (see rowData), so the event is put back together from the row first.
 */
function spillLine(x: Item): string {
  if (!isPrepared(x)) return JSON.stringify(x);
  const event = eventFromRowValues(preparedRow(x));
  return JSON.stringify(x.payload ? { event, payload: x.payload } : { event });
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
  readonly stats: WriterStats = { enqueued: 0, written: 0, spilled: 0, replayed: 0, failures: 0, queued: 0, storeDown: false, dropped: 0 };
  /** The spill file failed and has not been written since (logged once per episode). */
  private spillBroken = false;

  constructor(private readonly o: WriterOptions) {
    mkdirSync(o.spillDir, { recursive: true, mode: 0o700 });
    this.active = join(o.spillDir, `active-${process.pid}.jsonl`);
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
    this.queue.push(store.prepare && store.insertPrepared ? store.prepare(e) : e);
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
          if (!this.down) {
            try {
              await this.insertBatch(batch);
              this.stats.written += batch.length;
              continue;
            } catch (e) {
              this.stats.failures++;
              this.markDown(e);
            }
          }
          if (!this.trySpill(batch)) {
            // The spill file failed too: the batch goes back to the front of the queue (as much
            // of it as fits) and waits for the store's return or the next flush.
            this.requeue(batch);
            break;
          }
          this.release(batch);
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
   * Returns the number of events inserted; throws when the store fails (the caller puts the
   * segment back: ids are idempotent, so the part already inserted is skipped next time).
   */
  private async replaySegment(file: string): Promise<number> {
    const input = createReadStream(file, { encoding: 'utf8' });
    const lines = createInterface({ input, crlfDelay: Infinity });
    let batch: QueuedEvent[] = [];
    let n = 0;
    try {
      for await (const line of lines) {
        if (!line) continue;
        try {
          batch.push(JSON.parse(line) as QueuedEvent);
        } catch {
          continue; // a torn last line of a crash: the rest is still good
        }
        if (batch.length >= this.o.batchSize) {
          await this.o.store.insert(batch);
          n += batch.length;
          batch = [];
        }
      }
      if (batch.length > 0) await this.o.store.insert(batch);
      return n + batch.length;
    } finally {
      lines.close();
      input.destroy();
    }
  }

  /** Flushes the queue and replays what it can; events that still cannot be stored stay in the spill file. */
  async close(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
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
