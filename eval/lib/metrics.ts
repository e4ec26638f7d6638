/**
 * Shared metrics for the evaluation suites: confusion counts, precision/recall/F1/FPR,
 * throughput, and a plain-text table printer.
 */

/** Confusion counts of a binary detector. */
export interface Confusion {
  tp: number;
  fp: number;
  tn: number;
  fn: number;
}

/** Derived metrics; `null` where the denominator is zero (e.g. recall on an all-benign set). */
export interface Metrics extends Confusion {
  n: number;
  precision: number | null;
  recall: number | null;
  f1: number | null;
  fpr: number | null;
}

/** A new zeroed confusion. */
export function emptyConfusion(): Confusion {
  return { tp: 0, fp: 0, tn: 0, fn: 0 };
}

/** Adds one prediction to a confusion (mutates and returns it). */
export function addPrediction(c: Confusion, actualPositive: boolean, predictedPositive: boolean): Confusion {
  if (actualPositive) predictedPositive ? c.tp++ : c.fn++;
  else predictedPositive ? c.fp++ : c.tn++;
  return c;
}

/** Sums confusions. */
export function mergeConfusion(...cs: Confusion[]): Confusion {
  const out = emptyConfusion();
  for (const c of cs) {
    out.tp += c.tp;
    out.fp += c.fp;
    out.tn += c.tn;
    out.fn += c.fn;
  }
  return out;
}

/** Precision, recall, F1 and false-positive rate from confusion counts. */
export function metricsOf(c: Confusion): Metrics {
  const precision = c.tp + c.fp > 0 ? c.tp / (c.tp + c.fp) : null;
  const recall = c.tp + c.fn > 0 ? c.tp / (c.tp + c.fn) : null;
  const f1 =
    precision !== null && recall !== null && precision + recall > 0
      ? (2 * precision * recall) / (precision + recall)
      : precision !== null && recall !== null
        ? 0
        : null;
  const fpr = c.fp + c.tn > 0 ? c.fp / (c.fp + c.tn) : null;
  return { ...c, n: c.tp + c.fp + c.tn + c.fn, precision, recall, f1, fpr };
}

/** Throughput of a timed run. */
export interface Throughput {
  texts: number;
  bytes: number;
  ms: number;
  mbPerS: number;
  textsPerS: number;
}

/** Throughput from a count of texts, their UTF-8 bytes and the elapsed milliseconds. */
export function throughputOf(texts: number, bytes: number, ms: number): Throughput {
  const s = Math.max(ms, 1e-6) / 1000;
  return { texts, bytes, ms, mbPerS: bytes / 1e6 / s, textsPerS: texts / s };
}

/** Formats a ratio with fixed digits; `null` prints as `-`. */
export function fmt(x: number | null | undefined, digits = 3): string {
  return x === null || x === undefined || Number.isNaN(x) ? '-' : x.toFixed(digits);
}

/** Renders rows as an aligned plain-text table (numbers right-aligned). */
export function formatTable(headers: string[], rows: (string | number | null)[][]): string {
  const cells = rows.map((r) => r.map((v) => (v === null ? '-' : typeof v === 'number' ? fmtNum(v) : v)));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => (r[i] ?? '').length)));
  const isNum = headers.map((_, i) => rows.every((r) => r[i] === null || typeof r[i] === 'number'));
  const line = (r: string[]) =>
    r.map((v, i) => (isNum[i] ? (v ?? '').padStart(widths[i]) : (v ?? '').padEnd(widths[i]))).join('  ').trimEnd();
  return [line(headers), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.map(line)].join('\n');
}

function fmtNum(v: number): string {
  return Number.isInteger(v) ? String(v) : v.toFixed(3);
}

/** Standard metric columns for a labelled row: n, tp, fp, fn, tn, precision, recall, F1, FPR. */
export const METRIC_HEADERS = ['n', 'tp', 'fp', 'fn', 'tn', 'precision', 'recall', 'F1', 'FPR'];

/** The metric cells matching METRIC_HEADERS. */
export function metricCells(m: Metrics): (number | null)[] {
  return [m.n, m.tp, m.fp, m.fn, m.tn, m.precision, m.recall, m.f1, m.fpr];
}

/** Prints a titled metrics table: each row is a label (or several) plus its metrics and optional extra cells. */
export function printMetricsTable(
  title: string,
  labelHeaders: string[],
  rows: { labels: string[]; metrics: Metrics; extra?: (string | number | null)[] }[],
  extraHeaders: string[] = [],
): void {
  console.log(`\n${title}`);
  console.log(
    formatTable(
      [...labelHeaders, ...METRIC_HEADERS, ...extraHeaders],
      rows.map((r) => [...r.labels, ...metricCells(r.metrics), ...(r.extra ?? [])]),
    ),
  );
}

/** Truncates a text for showing examples (single line, ellipsis). */
export function truncate(text: string, max = 160): string {
  const one = text.replace(/\s+/g, ' ').trim();
  return one.length > max ? `${one.slice(0, max - 1)}…` : one;
}
