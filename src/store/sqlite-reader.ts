/**
 * Read queries of the embedded SQLite store on a thread of their own (`SqliteReader.all`). With
 * better-sqlite3 every statement runs synchronously on the calling thread: an audit search that
 * scans the trail or a usage aggregation over millions of events would stop the gateway's event
 * loop, and every proxied request with it, for as long as it runs (200 000 events: 90–130 ms;
 * proportionally longer on a trail of millions). WAL mode lets the reader's connection run beside
 * the writers. Started on the first query; when it cannot start or fails, `all` answers undefined
 * and the caller runs the query on its own connection as before.
 */
import type { Worker } from 'node:worker_threads';
import type { CompiledQuery } from 'kysely';
import { siblingWorker } from '../util/worker.js';

/** A read query as Kysely builds it: compiled for the reader thread, executed on its own connection otherwise. */
export interface ReadQuery<R> {
  compile(): CompiledQuery<R>;
  execute(): Promise<R[]>;
}

/** Name of the reader thread (Linux `comm`, at most 15 bytes). */
export const READER_THREAD_NAME = 'pcl-db-reader';

/** A lazily started reader thread on one SQLite database file. */
export class SqliteReader {
  private worker?: Worker;
  private failed = false;
  private seq = 0;
  private readonly pending = new Map<number, { resolve(rows: unknown[]): void; reject(e: Error): void }>();

  constructor(private readonly file: string) {}

  /** Whether queries currently run on the reader thread. */
  get threaded(): boolean {
    return this.worker !== undefined;
  }

  /** The rows of a compiled SELECT, read on the reader thread; undefined when the thread is unavailable. */
  all<R>(q: CompiledQuery<R>): Promise<R[]> | undefined {
    const w = this.thread();
    if (!w) return undefined;
    const id = ++this.seq;
    const done = new Promise<R[]>((resolve, reject) => this.pending.set(id, { resolve: resolve as (rows: unknown[]) => void, reject }));
    w.ref();
    w.postMessage({ id, sql: q.sql, params: q.parameters });
    return done;
  }

  /** Stops the thread; later queries get undefined (the caller's connection answers them). */
  async close(): Promise<void> {
    this.failed = true;
    const w = this.worker;
    this.worker = undefined;
    if (w) await w.terminate();
  }

  private thread(): Worker | undefined {
    if (this.worker || this.failed) return this.worker;
    try {
      // A small young generation (V8's default for a worker is up to 16 MB): the thread holds one
      // result set at a time, and what it commits stays in the process's RSS.
      const resourceLimits = { maxYoungGenerationSizeMb: 4 };
      const w = siblingWorker(import.meta.url, 'sqlite-reader-worker', { workerData: { file: this.file, threadName: READER_THREAD_NAME }, resourceLimits });
      w.unref();
      w.on('message', (m: { id: number; rows?: unknown[]; error?: string }) => {
        const p = this.pending.get(m.id);
        if (!p) return;
        this.pending.delete(m.id);
        if (this.pending.size === 0) w.unref();
        if (m.error !== undefined) p.reject(new Error(m.error));
        else p.resolve(m.rows ?? []);
      });
      // A thread that fails is not restarted; its unanswered queries fail (the caller may retry).
      const gone = (why: string) => {
        this.failed = true;
        if (this.worker === w) this.worker = undefined;
        const left = [...this.pending.values()];
        this.pending.clear();
        for (const p of left) p.reject(new Error(`database reader thread ${why}`));
      };
      w.on('error', (e) => gone(`failed: ${e.message}`));
      w.on('exit', (code) => gone(`exited (${code})`));
      this.worker = w;
    } catch {
      this.failed = true;
    }
    return this.worker;
  }
}
