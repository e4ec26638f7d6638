/**
 * The hot-path counters/histograms expose exactly what prom-client's Counter/Histogram would for
 * the same observations (text and JSON, so cluster aggregation treats them alike), cap their
 * series, and ignore invalid values instead of throwing on the request path.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AggregatorRegistry, Counter, Histogram, Registry } from 'prom-client';
import { FastCounter, FastHistogram } from '../../src/metrics/fast.js';

/** Exposition lines with each line's labels sorted (prom-client puts `le` first). */
function normalise(text: string): string[] {
  return text
    .split('\n')
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => {
      const m = /^([^{ ]+)(?:\{(.*)\})? (.+)$/.exec(l)!;
      const labels = m[2] ? m[2].split(/,(?=[a-z_]+=")/).sort().join(',') : '';
      return `${m[1]}{${labels}} ${Number(m[3])}`;
    })
    .sort();
}

test('FastCounter and FastHistogram expose what prom-client would for the same observations', async () => {
  const bounds = [0.001, 0.01, 0.1, 1, 10];
  const ref = new Registry();
  const fast = new Registry();
  const rc = new Counter({ name: 'x_total', help: 'h', labelNames: ['a', 'b', 'c'], registers: [ref] });
  const rh = new Histogram({ name: 'x_seconds', help: 'h', labelNames: ['a', 'b'], buckets: bounds, registers: [ref] });
  const fc = new FastCounter('x_total', 'h', ['a', 'b', 'c'], 1000).register(fast);
  const fh = new FastHistogram('x_seconds', 'h', ['a', 'b'], bounds, 1000).register(fast);
  // Deterministic pseudo-random traffic over a few label combinations, values on and around bounds.
  let seed = 7;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const vals = [0, 0.001, 0.0011, 0.01, 0.5, 1, 10, 10.5, 1234];
  for (let i = 0; i < 5000; i++) {
    const a = `a${Math.floor(rnd() * 4)}`;
    const b = rnd() < 0.5 ? 'x' : 'y"q\\z';
    const c = String(Math.floor(rnd() * 3));
    const n = Math.floor(rnd() * 5) + 1;
    rc.inc({ a, b, c }, n);
    fc.inc(n, a, b, c);
    const v = rnd() < 0.5 ? vals[i % vals.length]! : rnd() * 20;
    rh.observe({ a, b }, v);
    fh.observe(v, a, b);
  }
  assert.deepEqual(normalise(await fast.metrics()), normalise(await ref.metrics()));
  assert.ok(normalise(await fast.metrics()).length > 50);
  // Aggregated twice (two "workers") the same way as prom-client's own metrics.
  const aggRef = await AggregatorRegistry.aggregate([await ref.getMetricsAsJSON(), await ref.getMetricsAsJSON()]).metrics();
  const aggFast = await AggregatorRegistry.aggregate([await fast.getMetricsAsJSON(), await fast.getMetricsAsJSON()]).metrics();
  assert.deepEqual(normalise(aggFast), normalise(aggRef));
  assert.ok(aggFast.includes('x_seconds_count{a="a0",b="x"} '), aggFast.slice(0, 300));
});

test('series are capped per metric (overflow labelled other); invalid values are ignored', async () => {
  const reg = new Registry();
  const c = new FastCounter('c_total', 'h', ['k'], 3).register(reg);
  const h = new FastHistogram('h_seconds', 'h', ['k', 'j'], [1], 2).register(reg);
  for (const k of ['a', 'b', 'c', 'd', 'e']) c.inc(1, k);
  c.inc(2, 'a');
  c.inc(Number.NaN, 'a');
  c.inc(-1, 'a');
  c.inc(Infinity, 'a');
  assert.equal(c.series, 3);
  h.observe(0.5, 'a', '1');
  h.observe(2, 'a', '2');
  h.observe(3, 'b', '1');
  h.observe(Number.NaN, 'a', '1');
  const text = await reg.metrics();
  assert.match(text, /^c_total\{k="a"\} 3$/m);
  assert.match(text, /^c_total\{k="other"\} 2$/m);
  assert.match(text, /^h_seconds_count\{k="other",j="other"\} 1$/m);
  assert.match(text, /^h_seconds_bucket\{k="a",j="1",le="1"\} 1$/m);
  assert.match(text, /^h_seconds_bucket\{k="a",j="2",le="1"\} 0$/m);
  assert.match(text, /^h_seconds_bucket\{k="a",j="2",le="\+Inf"\} 1$/m);
  assert.match(text, /^h_seconds_sum\{k="a",j="1"\} 0.5$/m);
});
