/**
 * Throughput with metrics on vs off (analytics off in both), then metrics + analytics on vs off,
 * in the same run: two in-process gateways in front of the bench mock upstream, warmed up, then
 * loaded in rounds off, on, on, off ×2 with the same request; reports the best round of each by
 * req/s and the CPU per request of neighbouring rounds. Target: on ≥ 90 % of off. Also the cost
 * of one extraction-detector observation and one metrics observation in µs.
 */
import os from 'node:os';
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

/** Measured rounds: off, on, on, off twice (ABBA cancels a steady drift of the shared machine). */
const PATTERN = Array.from({ length: 2 }, () => ['off', 'on', 'on', 'off'] as const).flat();

/** Runs the bench and returns its numbers. */
export async function run(): Promise<object> {
  const loadBefore = os.loadavg().map((x) => Math.round(x * 10) / 10);
  const common = { connections: CONNECTIONS, durationSec: DURATION, warmupSec: 2, pattern: PATTERN, prefix: 'pcl-bench-metrics-' };
  // Metrics alone (analytics off in both), then metrics + analytics vs neither.
  const alone = await compareOnOff({ ...common, offConfig: { metrics: { enabled: false }, analytics: { enabled: false } }, onConfig: { metrics: { enabled: true, public: true }, analytics: { enabled: false } } });
  const res = await compareOnOff({
    ...common,
    offConfig: { metrics: { enabled: false }, analytics: { enabled: false } },
    onConfig: { metrics: { enabled: true, public: true }, analytics: { enabled: true } },
  });
  const { on: bOn, off: bOff, ratioPercent: ratio } = res;
  const micro = microbench();
  const loadAfter = os.loadavg().map((x) => Math.round(x * 10) / 10);
  process.stdout.write(
    `metrics alone:\n${onOffTable(alone)}\nmetrics on: ${alone.ratioPercent} % of off by best req/s, ${alone.cpuRatioPercent} % by CPU per request (paired rounds)\n` +
      `metrics + analytics:\n${onOffTable(res)}\nmetrics + analytics on: ${ratio} % of off by best req/s, ${res.cpuRatioPercent} % by CPU per request (target ≥ 90 %); ` +
      `extraction observe ${micro.extractionObserveUs} µs, metrics observe ${micro.metricsObserveUs} µs per request; load average ${loadBefore.join(' ')} → ${loadAfter.join(' ')}\n`,
  );
  return {
    tool: bOn.tool,
    connections: CONNECTIONS,
    durationSec: DURATION,
    loadAverage: { before: loadBefore, after: loadAfter },
    metricsAlone: { off: { rps: alone.off.rps, p50: alone.off.p50, p99: alone.off.p99 }, on: { rps: alone.on.rps, p50: alone.on.p50, p99: alone.on.p99 }, ratioPercent: alone.ratioPercent, cpuRatioPercent: alone.cpuRatioPercent },
    off: { rps: bOff.rps, p50: bOff.p50, p99: bOff.p99 },
    on: { rps: bOn.rps, p50: bOn.p50, p99: bOn.p99 },
    ratioPercent: ratio,
    cpuRatioPercent: res.cpuRatioPercent,
    ...micro,
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  run().then((r) => process.stdout.write(JSON.stringify(r) + '\n'));
}
