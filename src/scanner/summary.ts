/** Aggregates results into rates, compares with a baseline, evaluates CI gates. */
import { readFileSync } from 'node:fs';
import type { GateResult, Outcome, ProbeResult, Rate, ScanReport } from './types.js';
import { PROBE_FAMILIES, SEVERITIES } from './types.js';

/** Rates for a group of results; ASR counts only graded attempts (errors excluded). */
export function rateOf(results: ProbeResult[]): Rate {
  const total = results.length;
  const succeeded = results.filter((r) => r.outcome === 'succeeded').length;
  const blocked = results.filter((r) => r.outcome === 'blocked').length;
  const errors = results.filter((r) => r.outcome === 'error').length;
  const graded = total - errors;
  return { total, succeeded, blocked, errors, asr: graded > 0 ? succeeded / graded : 0 };
}

function groupBy(results: ProbeResult[], key: (r: ProbeResult) => string, order: readonly string[]): Record<string, Rate> {
  const out: Record<string, Rate> = {};
  for (const k of order) {
    const g = results.filter((r) => key(r) === k);
    if (g.length) out[k] = rateOf(g);
  }
  return out;
}

/** Summary block of a report. */
export function summarize(results: ProbeResult[]): ScanReport['summary'] {
  const byGuard: Record<string, number> = {};
  for (const r of results) {
    if (r.guard && r.outcome !== 'succeeded' && r.guard.action !== 'allow') byGuard[r.guard.name] = (byGuard[r.guard.name] ?? 0) + 1;
  }
  return {
    overall: rateOf(results),
    byFamily: groupBy(results, (r) => r.family, PROBE_FAMILIES),
    bySeverity: groupBy(results, (r) => r.severity, SEVERITIES),
    byGuard,
  };
}

/** Probes whose outcome differs between the streamed and non-streamed sends. */
export function streamParity(results: ProbeResult[]): ScanReport['streamParity'] {
  const plain = new Map<string, ProbeResult>();
  for (const r of results) if (r.mode === 'plain') plain.set(`${r.probeId}|${r.buff ?? '-'}`, r);
  const out: ScanReport['streamParity'] = [];
  for (const r of results) {
    if (r.mode !== 'stream') continue;
    const p = plain.get(`${r.probeId}|${r.buff ?? '-'}`);
    const succ = (o: Outcome): boolean => o === 'succeeded';
    if (p && p.outcome !== 'error' && r.outcome !== 'error' && succ(p.outcome) !== succ(r.outcome)) {
      out.push({ probeId: r.probeId, buff: r.buff, plain: p.outcome, stream: r.outcome });
    }
  }
  return out;
}

/** Compares with an earlier JSON report: regressions are attacks that now succeed but did not before. */
export function compareBaseline(results: ProbeResult[], baselineFile: string): NonNullable<ScanReport['baseline']> {
  const base = JSON.parse(readFileSync(baselineFile, 'utf8')) as Partial<ScanReport>;
  if (base.tool !== 'portcullis-scan' || !Array.isArray(base.results)) throw new Error(`${baselineFile}: not a portcullis scan JSON report`);
  const before = new Map(base.results.map((r) => [r.key, r.outcome]));
  const regressions: string[] = [];
  const fixed: string[] = [];
  const newKeys: string[] = [];
  for (const r of results) {
    const b = before.get(r.key);
    if (b === undefined) newKeys.push(r.key);
    else if (r.outcome === 'succeeded' && b !== 'succeeded') regressions.push(r.key);
    else if (b === 'succeeded' && (r.outcome === 'resisted' || r.outcome === 'blocked')) fixed.push(r.key);
  }
  return { file: baselineFile, regressions, fixed, newKeys };
}

/** Gate settings. */
export interface GateOptions {
  /** Minimum overall defence rate (1 − ASR), e.g. 0.9. */
  failUnder?: number;
  /** Maximum ASR per family or severity, e.g. `{ 'pii-leakage': 0, critical: 0 }`. */
  failOn?: Record<string, number>;
  /** Fail when any regression against the baseline exists. */
  failOnRegression?: boolean;
  /** Only regressions gate (other gates are reported but do not fail). */
  regressionsOnly?: boolean;
}

/** Parses `--fail-on FAMILY=RATE,…` (family or severity names); throws on bad input. */
export function parseFailOn(spec: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const part of spec.split(',').map((s) => s.trim()).filter(Boolean)) {
    const m = /^([a-z-]+)=(\d+(?:\.\d+)?%?)$/.exec(part);
    if (!m) throw new Error(`--fail-on: expected FAMILY=RATE, got "${part}"`);
    const key = m[1];
    if (!(PROBE_FAMILIES as readonly string[]).includes(key) && !SEVERITIES.includes(key as never) && key !== 'overall') {
      throw new Error(`--fail-on: unknown family or severity "${key}"`);
    }
    out[key] = parseRate(m[2], '--fail-on');
  }
  return out;
}

/** Parses a rate given as 0.25 or 25%. */
export function parseRate(v: string, what: string): number {
  const n = v.endsWith('%') ? Number(v.slice(0, -1)) / 100 : Number(v);
  if (!Number.isFinite(n) || n < 0 || n > 1) throw new Error(`${what}: expected a rate between 0 and 1 (or 0%–100%), got "${v}"`);
  return n;
}

/** Evaluates the gates against the summary. */
export function evaluateGates(summary: ScanReport['summary'], baseline: ScanReport['baseline'] | undefined, g: GateOptions): { gates: GateResult[]; passed: boolean } {
  const gates: GateResult[] = [];
  if (g.failUnder !== undefined) {
    const defence = 1 - summary.overall.asr;
    gates.push({ gate: 'defence rate (overall)', threshold: g.failUnder, actual: defence, passed: defence >= g.failUnder });
  }
  for (const [key, max] of Object.entries(g.failOn ?? {})) {
    const rate = key === 'overall' ? summary.overall : (summary.byFamily[key] ?? summary.bySeverity[key]);
    const asr = rate?.asr ?? 0;
    gates.push({ gate: `attack success rate (${key})`, threshold: max, actual: asr, passed: asr <= max });
  }
  if (g.failOnRegression || g.regressionsOnly) {
    const n = baseline?.regressions.length ?? 0;
    gates.push({ gate: 'regressions against baseline', threshold: 0, actual: n, passed: n === 0 });
  }
  const counted = g.regressionsOnly ? gates.filter((x) => x.gate.startsWith('regressions')) : gates;
  return { gates, passed: counted.every((x) => x.passed) };
}
