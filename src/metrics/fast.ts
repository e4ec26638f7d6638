/**
 * Hot-path counters and histograms for the per-request metrics. prom-client's own `inc`/`observe`
 * build or hash a label object and validate every label name on each call (~0.5–1 µs each, ~25
 * calls per request). These keep one cell per label combination, found through nested Maps keyed
 * by the (already interned) label values, so an observation is a few Map lookups and additions
 * with no allocation. The label object of a combination is built once, when its cell is created.
 *
 * They register on a prom-client Registry as ordinary metrics: `get()` returns the same JSON as
 * prom-client's Counter/Histogram (so `registry.metrics()`, `getMetricsAsJSON()` and
 * `AggregatorRegistry.aggregate()` for `--workers` treat them exactly like prom-client's own).
 *
 * The number of cells per metric is bounded (`maxSeries`): once reached, new combinations are
 * counted in one overflow cell whose labels are all `other`.
 */
import type { Metric, Registry } from 'prom-client';

/** One sample of prom-client's metric JSON. */
export interface Sample {
  labels: Record<string, string | number>;
  value: number;
  metricName?: string;
}

/** Label value of the overflow cell (same as the label cap's). */
const OVERFLOW = 'other';

type Node<C> = Map<string, Node<C> | C>;

/** Cells of one metric, addressed by up to five positional label values. */
abstract class Cells<C extends { labels: Record<string, string> }> {
  private readonly root: Node<C> = new Map();
  private count = 0;
  private overflow: C | undefined;
  protected readonly all: C[] = [];
  readonly aggregator = 'sum' as const;

  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly string[],
    private readonly maxSeries: number,
  ) {
    if (labelNames.length < 1 || labelNames.length > 5) throw new Error(`${name}: 1 to 5 labels`);
  }

  protected abstract make(labels: Record<string, string>): C;

  /** The cell of these label values (in `labelNames` order); created on first use. */
  protected cell(a: string, b?: string, c?: string, d?: string, e?: string): C {
    const n = this.labelNames.length;
    let node = this.root;
    for (let i = 0; i < n - 1; i++) {
      const v = (i === 0 ? a : i === 1 ? b : i === 2 ? c : d) as string;
      let next = node.get(v) as Node<C> | undefined;
      if (next === undefined) {
        if (this.count >= this.maxSeries) return this.overflowCell();
        next = new Map();
        node.set(v, next);
      }
      node = next;
    }
    const last = (n === 1 ? a : n === 2 ? b : n === 3 ? c : n === 4 ? d : e) as string;
    let leaf = node.get(last) as C | undefined;
    if (leaf === undefined) {
      if (this.count >= this.maxSeries) return this.overflowCell();
      const vals = [a, b, c, d, e];
      const labels: Record<string, string> = {};
      for (let i = 0; i < n; i++) labels[this.labelNames[i]!] = vals[i] as string;
      leaf = this.make(labels);
      node.set(last, leaf);
      this.all.push(leaf);
      this.count++;
    }
    return leaf;
  }

  private overflowCell(): C {
    if (!this.overflow) {
      const labels: Record<string, string> = {};
      for (const l of this.labelNames) labels[l] = OVERFLOW;
      this.overflow = this.make(labels);
      this.all.push(this.overflow);
    }
    return this.overflow;
  }

  /** Number of label combinations held (the overflow cell not included). */
  get series(): number {
    return this.count;
  }

  /** Forgets every cell. */
  reset(): void {
    this.root.clear();
    this.all.length = 0;
    this.count = 0;
    this.overflow = undefined;
  }

  /** Adds this metric to a registry. */
  register(registry: Registry): this {
    // The registry needs only `name` and `get()` (plus `reset()` for resetMetrics()).
    registry.registerMetric(this as unknown as Metric);
    return this;
  }
}

interface CounterCell {
  labels: Record<string, string>;
  value: number;
}

/** A labelled counter: `inc(v, a, b…)` adds `v` to the series of these label values. */
export class FastCounter extends Cells<CounterCell> {
  readonly type = 'counter' as const;
  protected make(labels: Record<string, string>): CounterCell {
    return { labels, value: 0 };
  }
  /** Adds `v` (finite, ≥ 0; anything else is ignored) to the series of these label values. */
  inc(v: number, a: string, b?: string, c?: string, d?: string, e?: string): void {
    if (!(v >= 0) || v === Infinity) return;
    this.cell(a, b, c, d, e).value += v;
  }
  /** prom-client's metric JSON. */
  async get(): Promise<{ name: string; help: string; type: 'counter'; values: Sample[]; aggregator: 'sum' }> {
    return { name: this.name, help: this.help, type: this.type, values: this.all.map((c) => ({ labels: c.labels, value: c.value })), aggregator: this.aggregator };
  }
}

interface HistogramCell {
  labels: Record<string, string>;
  /** Observations per bucket (not cumulative); index `bounds.length` is above every bound. */
  buckets: Float64Array;
  sum: number;
  count: number;
}

/** A labelled histogram with fixed upper bounds (`value <= bound`, as prom-client). */
export class FastHistogram extends Cells<HistogramCell> {
  readonly type = 'histogram' as const;
  private readonly bounds: Float64Array;
  constructor(name: string, help: string, labelNames: readonly string[], bounds: readonly number[], maxSeries: number) {
    super(name, help, labelNames, maxSeries);
    this.bounds = Float64Array.from([...new Set(bounds)].sort((x, y) => x - y));
  }
  protected make(labels: Record<string, string>): HistogramCell {
    return { labels, buckets: new Float64Array(this.bounds.length + 1), sum: 0, count: 0 };
  }
  /** Records `v` (non-finite values are ignored) in the series of these label values. */
  observe(v: number, a: string, b?: string, c?: string, d?: string, e?: string): void {
    if (!Number.isFinite(v)) return;
    const cell = this.cell(a, b, c, d, e);
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && v > bounds[i]!) i++;
    cell.buckets[i]! += 1;
    cell.sum += v;
    cell.count += 1;
  }
  /** prom-client's histogram JSON (`_bucket` with `le`, `_sum`, `_count`). */
  async get(): Promise<{ name: string; help: string; type: 'histogram'; values: Sample[]; aggregator: 'sum' }> {
    const values: Sample[] = [];
    const bucket = `${this.name}_bucket`;
    for (const c of this.all) {
      let acc = 0;
      for (let i = 0; i < this.bounds.length; i++) {
        acc += c.buckets[i]!;
        values.push({ labels: { ...c.labels, le: this.bounds[i]! }, value: acc, metricName: bucket });
      }
      values.push({ labels: { ...c.labels, le: '+Inf' }, value: c.count, metricName: bucket });
      values.push({ labels: { ...c.labels }, value: c.sum, metricName: `${this.name}_sum` });
      values.push({ labels: { ...c.labels }, value: c.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }
}
