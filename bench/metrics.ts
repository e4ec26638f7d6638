/**
 * Throughput with metrics + analytics on vs off, in the same run: two in-process gateways in
 * front of the bench mock upstream, loaded alternately (off, on, off, on) with the same
 * request; the best phase of each counts. Target: on ≥ 90 % of off. Also the cost of one
 * extraction-detector observation and one metrics observation in µs.
 */
import { fileURLToPath } from 'node:url';
import { ExtractionDetector } from '../src/analytics/extraction.js';
import { createMetrics, metricsConfigSchema } from '../src/metrics/index.js';
import { compareOnOff, onOffTable } from './lib/on-off.js';

const DURATION = Number(process.env.PCL_BENCH_METRICS_SECONDS ?? 5);
const CONNECTIONS = Number(process.env.PCL_BENCH_METRICS_CONNECTIONS ?? 32);

function microbench(): { extractionObserveUs: number; metricsObserveUs: number } {
  const d = new ExtractionDetector();
  const n = 20_000;
  let t = performance.now();
  for (let i = 0; i < n; i++) d.observe(`k${i % 50}`, { at: 1e6 + i, text: `Please summarise the quarterly report number ${i} for the finance team in three bullet points.`, logprobs: 0 });
  const ex = ((performance.now() - t) * 1000) / n;
  const m = createMetrics(metricsConfigSchema.parse({ processMetrics: false }));
  const ctx = { requestId: 'r', api: 'chat', route: '/v1/chat/completions', startedAt: performance.now(), clientIp: '127.0.0.1', stream: false, body: {}, responseHeaders: {}, state: { httpStatus: 200, guards: [{ guard: 'injection', stage: 'request', mode: 'enforce', action: 'allow', categories: [], latencyMs: 0.2 }] }, principal: { tenantId: 't', tenantName: 't', keyId: 'k', subject: 's', scopes: null, authMethod: 'api_key' }, model: 'gpt-4o-mini', upstreamMs: 5, ttfbMs: 3, usage: { inputTokens: 100, outputTokens: 20 } } as never;
  t = performance.now();
  for (let i = 0; i < n; i++) m.observe(ctx);
  const mo = ((performance.now() - t) * 1000) / n;
  return { extractionObserveUs: Math.round(ex * 100) / 100, metricsObserveUs: Math.round(mo * 100) / 100 };
}

/** Runs the bench and returns its numbers. */
export async function run(): Promise<object> {
  const res = await compareOnOff({
    offConfig: { metrics: { enabled: false }, analytics: { enabled: false } },
    onConfig: { metrics: { enabled: true, public: true }, analytics: { enabled: true } },
    connections: CONNECTIONS,
    durationSec: DURATION,
    prefix: 'pcl-bench-metrics-',
  });
  const { on: bOn, off: bOff, ratioPercent: ratio } = res;
  const micro = microbench();
  process.stdout.write(
    onOffTable(res) + `\nmetrics + analytics on: ${ratio} % of off (target ≥ 90 %); extraction observe ${micro.extractionObserveUs} µs, metrics observe ${micro.metricsObserveUs} µs per request\n`,
  );
  return { tool: bOn.tool, connections: CONNECTIONS, durationSec: DURATION, off: { rps: bOff.rps, p50: bOff.p50, p99: bOff.p99 }, on: { rps: bOn.rps, p50: bOn.p50, p99: bOn.p99 }, ratioPercent: ratio, ...micro };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  run().then((r) => process.stdout.write(JSON.stringify(r) + '\n'));
}
