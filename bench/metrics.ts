/**
 * Throughput with metrics + analytics on vs off, in the same run: two in-process gateways in
 * front of the bench mock upstream, loaded alternately (off, on, off, on) with the same
 * request; the best phase of each counts. Target: on ≥ 90 % of off. Also the cost of one
 * extraction-detector observation and one metrics observation in µs.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { validateConfig } from '../src/config/load.js';
import { createGateway, createLogger, type Gateway } from '../src/index.js';
import { ExtractionDetector } from '../src/analytics/extraction.js';
import { createMetrics, metricsConfigSchema } from '../src/metrics/index.js';
import { startBenchMock } from './lib/mock-upstream.js';
import { runLoad, type LoadResult } from './lib/load.js';
import { table, fmt } from './lib/table.js';

const DURATION = Number(process.env.PCL_BENCH_METRICS_SECONDS ?? 5);
const CONNECTIONS = Number(process.env.PCL_BENCH_METRICS_CONNECTIONS ?? 32);

async function gateway(upstream: string, on: boolean): Promise<{ gw: Gateway; url: string; key: string; dir: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'pcl-bench-metrics-'));
  const config = validateConfig({
    dataDir: dir,
    server: { host: '127.0.0.1', port: 0 },
    log: { level: 'silent' },
    providers: { mock: { type: 'openai', baseUrl: upstream + '/v1' } },
    routes: [{ model: '*', provider: 'mock' }],
    metrics: on ? { enabled: true, public: true } : { enabled: false },
    analytics: { enabled: on },
  });
  const gw = await createGateway(config, { logger: createLogger('silent'), env: {} });
  const { url } = await gw.listen();
  return { gw, url, key: gw.bootstrapKey!.key, dir };
}

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
  const mock = await startBenchMock();
  const upstream = `http://127.0.0.1:${mock.port}`;
  const off = await gateway(upstream, false);
  const on = await gateway(upstream, true);
  const body = JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'system', content: 'You are a helpful assistant.' }, { role: 'user', content: 'Write one sentence about the sea and the weather today.' }], max_tokens: 64 });
  const phases: Array<{ mode: 'off' | 'on'; r: LoadResult }> = [];
  try {
    for (const mode of ['off', 'on', 'off', 'on'] as const) {
      const g = mode === 'on' ? on : off;
      const r = await runLoad({ url: `${g.url}/v1/chat/completions`, body, headers: { authorization: `Bearer ${g.key}`, 'content-type': 'application/json' }, connections: CONNECTIONS, durationSec: DURATION });
      phases.push({ mode, r });
    }
  } finally {
    await on.gw.close();
    await off.gw.close();
    await mock.close();
    rmSync(on.dir, { recursive: true, force: true });
    rmSync(off.dir, { recursive: true, force: true });
  }
  const best = (m: 'on' | 'off') => phases.filter((p) => p.mode === m).reduce((a, b) => (b.r.rps > a.r.rps ? b : a)).r;
  const bOff = best('off');
  const bOn = best('on');
  const ratio = Math.round((bOn.rps / bOff.rps) * 1000) / 10;
  const micro = microbench();
  process.stdout.write(
    table([
      ['mode', 'rps', 'p50 ms', 'p99 ms', 'errors'],
      ...phases.map((p) => [p.mode, fmt(p.r.rps, 0), fmt(p.r.p50), fmt(p.r.p99), p.r.errors]),
    ]) + `\nmetrics + analytics on: ${ratio} % of off (target ≥ 90 %); extraction observe ${micro.extractionObserveUs} µs, metrics observe ${micro.metricsObserveUs} µs per request\n`,
  );
  return { tool: bOn.tool, connections: CONNECTIONS, durationSec: DURATION, off: { rps: bOff.rps, p50: bOff.p50, p99: bOff.p99 }, on: { rps: bOn.rps, p50: bOn.p50, p99: bOn.p99 }, ratioPercent: ratio, ...micro };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  run().then((r) => process.stdout.write(JSON.stringify(r) + '\n'));
}
