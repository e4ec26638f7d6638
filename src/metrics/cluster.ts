/**
 * /metrics across `serve --workers N` (node:cluster). Each worker keeps its own registry; the
 * worker that receives a scrape asks the primary, which collects every worker's metrics as JSON
 * over IPC and merges them with prom-client's `AggregatorRegistry.aggregate` (counters and
 * histograms summed bucket by bucket, gauges by each metric's `aggregator`: process memory
 * summed, event-loop lag averaged, version `first`, start time omitted…).
 *
 * - Only workers that announced their metrics (`ready`) are asked; a worker that exits during a
 *   collection is dropped from it.
 * - A worker that does not answer within the timeout fails the scrape (HTTP 500): a partial sum
 *   would look like a counter reset to Prometheus.
 * - When a worker exits, the primary keeps the counters and histograms of its last collected
 *   snapshot and adds them to every later scrape, so the gateway's totals stay monotonic across
 *   worker restarts (increments after that worker's last scrape are lost with it).
 * - A worker whose primary runs no aggregator (an embedding application's own cluster) gets no
 *   acknowledgement and keeps serving its own registry, as without workers.
 */
import cluster, { type Worker } from 'node:cluster';
import { AggregatorRegistry, type Registry } from 'prom-client';

const TAG = '__pclMetrics';

type Json = Awaited<ReturnType<Registry['getMetricsAsJSON']>>;
type Msg =
  | { [TAG]: 'ready' }
  | { [TAG]: 'ack' }
  | { [TAG]: 'scrape'; id: number }
  | { [TAG]: 'text'; id: number; text?: string; error?: string }
  | { [TAG]: 'collect'; id: number }
  | { [TAG]: 'json'; id: number; metrics?: Json; error?: string };

const isMsg = (m: unknown): m is Msg => typeof m === 'object' && m !== null && typeof (m as Record<string, unknown>)[TAG] === 'string';

/** Options of the primary's aggregator. */
export interface AggregatorOptions {
  /** How long the primary waits for every worker's metrics (ms). */
  collectTimeoutMs?: number;
}

/** The primary's side; `stop()` removes its listeners. */
export interface MetricsAggregator {
  /** Aggregated exposition of all ready workers (plus retired ones' counters). */
  collect(): Promise<string>;
  stop(): void;
}

/** Keeps the counters and histograms of a metric snapshot (drops gauges and summaries). */
function monotonicOnly(metrics: Json): Json {
  return metrics.filter((m) => (String(m.type) === 'counter' || String(m.type) === 'histogram'));
}

/** Starts the aggregator in the cluster primary (call once, before forking). */
export function startMetricsAggregator(opts: AggregatorOptions = {}): MetricsAggregator {
  if (!cluster.isPrimary) throw new Error('startMetricsAggregator: call it in the cluster primary');
  const timeoutMs = opts.collectTimeoutMs ?? 5000;
  const ready = new Map<number, Worker>();
  const lastSnapshot = new Map<number, Json>();
  let retired: Json = [];
  const retiredIds = new Set<number>();
  let nextId = 1;
  const pending = new Map<number, { waiting: Set<number>; got: Map<number, Json>; done: (e?: Error) => void }>();

  const forget = (w: Worker) => {
    ready.delete(w.id);
    if (retiredIds.has(w.id)) return;
    retiredIds.add(w.id);
    const snap = lastSnapshot.get(w.id);
    lastSnapshot.delete(w.id);
    if (snap) {
      const kept = monotonicOnly(snap);
      if (kept.length) retired = monotonicOnly(mergeJson([retired, kept]));
    }
    for (const p of pending.values()) {
      if (p.waiting.delete(w.id) && p.waiting.size === 0) p.done();
    }
  };

  async function collect(): Promise<string> {
    const id = nextId++;
    const workers = [...ready.values()].filter((w) => w.isConnected());
    const got = new Map<number, Json>();
    await new Promise<void>((resolve, reject) => {
      const waiting = new Set(workers.map((w) => w.id));
      const timer = setTimeout(() => done(new Error(`metrics: worker(s) ${[...waiting].map((i) => ready.get(i)?.process.pid ?? i).join(', ')} did not answer within ${timeoutMs} ms`)), timeoutMs);
      function done(e?: Error) {
        clearTimeout(timer);
        pending.delete(id);
        if (e) reject(e);
        else resolve();
      }
      pending.set(id, { waiting, got, done });
      if (waiting.size === 0) return done();
      for (const w of workers) w.send({ [TAG]: 'collect', id } satisfies Msg);
    });
    // A worker that answered and then exited is already in `retired` (its last snapshot is this answer).
    const live = [...got].filter(([wid]) => !retiredIds.has(wid)).map(([, j]) => j);
    const reg = AggregatorRegistry.aggregate(retired.length ? [retired, ...live] : live);
    return reg.metrics();
  }

  const onMessage = (w: Worker, m: unknown) => {
    if (!isMsg(m)) return;
    const kind = m[TAG];
    if (kind === 'ready') {
      ready.set(w.id, w);
      w.send({ [TAG]: 'ack' } satisfies Msg);
    } else if (kind === 'json') {
      const p = pending.get(m.id);
      if (!p || !p.waiting.delete(w.id)) return;
      if (m.error || !m.metrics) return p.done(new Error(`metrics: worker ${w.process.pid}: ${m.error ?? 'no metrics'}`));
      p.got.set(w.id, m.metrics);
      lastSnapshot.set(w.id, m.metrics);
      if (p.waiting.size === 0) p.done();
    } else if (kind === 'scrape') {
      collect().then(
        (text) => w.isConnected() && w.send({ [TAG]: 'text', id: m.id, text } satisfies Msg),
        (e: Error) => w.isConnected() && w.send({ [TAG]: 'text', id: m.id, error: e.message } satisfies Msg),
      );
    }
  };
  const onExit = (w: Worker) => forget(w);
  cluster.on('message', onMessage);
  cluster.on('exit', onExit);
  cluster.on('disconnect', onExit);
  return {
    collect,
    stop() {
      cluster.off('message', onMessage);
      cluster.off('exit', onExit);
      cluster.off('disconnect', onExit);
    },
  };
}

/** Merges metric snapshots by summation (every metric treated with its own aggregator). */
function mergeJson(list: Json[]): Json {
  const reg = AggregatorRegistry.aggregate(list);
  // The aggregated registry holds plain metric objects whose get() returns the merged JSON.
  return reg.getMetricsAsArray().map((m) => (m as unknown as { get(): Json[number] }).get());
}

/** The worker's side: answers the primary's collections and routes scrapes through it. */
export interface WorkerMetricsLink {
  /** The gateway-wide exposition when the primary aggregates, else this worker's own. */
  scrape(): Promise<string>;
  /** Whether the primary acknowledged (scrapes are aggregated). */
  readonly aggregated: boolean;
  stop(): void;
}

/** Joins the primary's aggregation from a cluster worker. */
export function joinMetricsCluster(registry: Registry, opts: { timeoutMs?: number } = {}): WorkerMetricsLink {
  if (!cluster.isWorker || !process.send) throw new Error('joinMetricsCluster: call it in a cluster worker');
  const timeoutMs = opts.timeoutMs ?? 8000;
  let acked = false;
  let nextId = 1;
  const waiting = new Map<number, { resolve: (s: string) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  const onMessage = (m: unknown) => {
    if (!isMsg(m)) return;
    const kind = m[TAG];
    if (kind === 'ack') acked = true;
    else if (kind === 'collect') {
      registry.getMetricsAsJSON().then(
        (metrics) => process.send?.({ [TAG]: 'json', id: m.id, metrics } satisfies Msg),
        (e: Error) => process.send?.({ [TAG]: 'json', id: m.id, error: e.message } satisfies Msg),
      );
    } else if (kind === 'text') {
      const w = waiting.get(m.id);
      if (!w) return;
      waiting.delete(m.id);
      clearTimeout(w.timer);
      if (m.text !== undefined) w.resolve(m.text);
      else w.reject(new Error(m.error ?? 'metrics: no answer'));
    }
  };
  process.on('message', onMessage);
  process.send({ [TAG]: 'ready' } satisfies Msg);
  return {
    get aggregated() {
      return acked;
    },
    scrape() {
      if (!acked || !process.connected) return registry.metrics();
      const id = nextId++;
      return new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => {
          waiting.delete(id);
          reject(new Error(`metrics: the primary did not answer within ${timeoutMs} ms`));
        }, timeoutMs);
        waiting.set(id, { resolve, reject, timer });
        process.send!({ [TAG]: 'scrape', id } satisfies Msg);
      });
    },
    stop() {
      process.off('message', onMessage);
      for (const w of waiting.values()) {
        clearTimeout(w.timer);
        w.reject(new Error('metrics: stopped'));
      }
      waiting.clear();
    },
  };
}
