/**
 * Guard pipeline bench: the full default request-stage pipeline (secrets → pii → injection, with
 * body inspection and write-back) on 1 KiB and 16 KiB chat prompts — throughput per core and
 * per-request latency — and 1 MiB adversarial inputs (each must finish in under 1 s).
 * Run: `npm run bench -- guards` or `node --import tsx bench/guards.ts`.
 */
import { pathToFileURL } from 'node:url';
import { PerformanceObserver, type PerformanceEntry } from 'node:perf_hooks';
import { mkdtempSync, openSync, readSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type * as ConfigLoad from '../src/config/load.js';
import type * as Index from '../src/index.js';
import type * as Engine from '../src/guards/engine.js';
import type * as Normalize from '../src/detect/normalize/index.js';
import type * as Pii from '../src/detect/pii/index.js';
import type * as Secrets from '../src/detect/secrets/index.js';
import type * as Injection from '../src/detect/injection/index.js';
import { runLoad, type LoadResult } from './lib/load.js';
import { built, importBuilt } from './lib/built.js';

// The modules measured come from the compiled build (dist/, what `npm start` runs) unless
// PCL_BENCH_FROM_SOURCE=1 (bench/lib/built.ts); loaded by run(), before anything is measured.
let validateConfig: typeof ConfigLoad.validateConfig;
let createGateway: typeof Index.createGateway;
let createLogger: typeof Index.createLogger;
let createGuardEngine: typeof Engine.createGuardEngine;
let normalize: typeof Normalize.normalize;
let detectPii: typeof Pii.detectPii;
let detectSecrets: typeof Secrets.detectSecrets;
let detectInjection: typeof Injection.detectInjection;

async function loadModules(): Promise<void> {
  ({ validateConfig } = await importBuilt<typeof ConfigLoad>('config/load.js'));
  ({ createGateway, createLogger } = await importBuilt<typeof Index>('index.js'));
  ({ createGuardEngine } = await importBuilt<typeof Engine>('guards/engine.js'));
  ({ normalize } = await importBuilt<typeof Normalize>('detect/normalize/index.js'));
  ({ detectPii } = await importBuilt<typeof Pii>('detect/pii/index.js'));
  ({ detectSecrets } = await importBuilt<typeof Secrets>('detect/secrets/index.js'));
  ({ detectInjection } = await importBuilt<typeof Injection>('detect/injection/index.js'));
}

const WORDS = (
  'the a of to and in is for on with that this from by as at be are was it or an can will our your we please could ' +
  'report summary meeting customer order shipment invoice quarter revenue team project deadline review draft email ' +
  'schedule budget update weather recipe travel hotel flight code function error test build deploy server database ' +
  'question answer explain describe compare list write translate improve check 2024 17 42 3.5 version release notes'
).split(' ');

/** Deterministic pseudo-random prose of about `bytes` bytes (no secrets, light PII-free numbers). */
export function prose(bytes: number, seed = 1): string {
  let x = seed >>> 0;
  const rnd = () => ((x = (x * 1664525 + 1013904223) >>> 0) / 2 ** 32);
  let out = '';
  let sentence = 0;
  while (out.length < bytes) {
    const w = WORDS[Math.floor(rnd() * WORDS.length)]!;
    out += sentence === 0 ? w[0]!.toUpperCase() + w.slice(1) : w;
    sentence++;
    if (sentence > 8 + rnd() * 10) {
      out += '. ';
      sentence = 0;
    } else out += ' ';
  }
  return out.slice(0, bytes);
}

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

const schedstat = (() => {
  try {
    return { fd: openSync('/proc/thread-self/schedstat', 'r'), buf: Buffer.alloc(64) };
  } catch {
    return undefined;
  }
})();

/** Milliseconds of CPU this thread has run (Linux: /proc/thread-self/schedstat), else undefined. */
function threadCpuMs(): number | undefined {
  if (!schedstat) return undefined;
  const n = readSync(schedstat.fd, schedstat.buf, 0, schedstat.buf.length, 0);
  return Number(schedstat.buf.toString('latin1', 0, n).split(' ')[0]) / 1e6;
}

function cpuMs(c0: NodeJS.CpuUsage): number {
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / 1000;
}

/**
 * Runs the pipeline on prompts of `size` bytes for `budgetMs`. The machine this runs on may be
 * shared, so throughput is reported per CPU-second of this process (`mbPerCpuSec`, i.e. per core)
 * as well as per wall-clock second; latencies likewise in CPU and wall milliseconds.
 */
async function measure(size: number, budgetMs: number, raw: Parameters<typeof createGuardEngine>[0] = {}) {
  // Cold numbers: the detection cache is off (the texts below repeat).
  const engine = createGuardEngine({ cacheEntries: 0, ...(raw ?? {}) });
  const texts = Array.from({ length: 16 }, (_, i) => prose(size, i + 1));
  // Warm up for a second (at least 30 requests): a running gateway has compiled its hot code; the
  // first few thousand requests after start pay for V8's tier-up compilations, which would
  // otherwise land in the measured tail.
  const w0 = performance.now();
  for (let i = 0; i < 30 || performance.now() - w0 < 1000; i++) await engine.runRequest('chat', { model: 'm', messages: [{ role: 'user', content: texts[i % texts.length] }] }, {});
  const wall: number[] = [];
  /** CPU time of this (main) thread alone, where Linux exposes it: without V8's background threads. */
  const thread: number[] = [];
  const cpu: number[] = [];
  const perGuard: Record<string, number> = {};
  // Garbage collections during the run (young-generation scavenges are what lands in the tail).
  const gc = { count: 0, ms: 0, maxMs: 0 };
  const count = (entries: readonly PerformanceEntry[]) => {
    for (const e of entries) {
      gc.count++;
      gc.ms += e.duration;
      gc.maxMs = Math.max(gc.maxMs, e.duration);
    }
  };
  // Throughput first, without per-request instrumentation: the timers below (two reads of
  // /proc/thread-self/schedstat, two getrusage calls, two clock reads per request) cost several
  // microseconds each time, which is not the pipeline's cost.
  let tBytes = 0;
  let k = 0;
  const tt0 = performance.now();
  const tc0 = process.cpuUsage();
  while (performance.now() - tt0 < budgetMs / 2) {
    for (let j = 0; j < 16; j++) {
      const text = texts[k++ % texts.length]!;
      await engine.runRequest('chat', { model: 'm', messages: [{ role: 'user', content: text }] }, {});
      tBytes += Buffer.byteLength(text);
    }
  }
  const tCpuSecs = cpuMs(tc0) / 1000;
  const tWallSecs = (performance.now() - tt0) / 1000;
  const throughputRequests = k;
  // Then latency: each request timed on its own.
  const obs = new PerformanceObserver((list) => count(list.getEntries()));
  obs.observe({ entryTypes: ['gc'] });
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  let bytes = 0;
  let i = 0;
  while (performance.now() - t0 < budgetMs / 2) {
    const text = texts[i++ % texts.length]!;
    const s = performance.now();
    const t = threadCpuMs();
    const c = process.cpuUsage();
    const r = await engine.runRequest('chat', { model: 'm', messages: [{ role: 'user', content: text }] }, {});
    cpu.push(cpuMs(c));
    if (t !== undefined) thread.push(threadCpuMs()! - t);
    wall.push(performance.now() - s);
    for (const rec of r.outcome.records) perGuard[rec.guard] = (perGuard[rec.guard] ?? 0) + rec.latencyMs;
    bytes += Buffer.byteLength(text);
  }
  // Synchronous guards never yield to the event loop: let the observer's entries arrive first.
  await new Promise((resolve) => setImmediate(resolve));
  count(obs.takeRecords());
  obs.disconnect();
  const wallSecs = (performance.now() - t0) / 1000;
  const cpuSecs = cpuMs(c0) / 1000;
  wall.sort((a, b) => a - b);
  cpu.sort((a, b) => a - b);
  thread.sort((a, b) => a - b);
  await engine.close();
  const n = wall.length;
  return {
    promptBytes: size,
    requests: n,
    throughputRequests,
    mbPerCpuSec: +(tBytes / 1e6 / tCpuSecs).toFixed(2),
    mbPerWallSec: +(tBytes / 1e6 / tWallSecs).toFixed(2),
    /** The same, measured in the latency phase (includes the per-request timers). */
    mbPerCpuSecTimed: +(bytes / 1e6 / cpuSecs).toFixed(2),
    cpuP50Ms: +pct(cpu, 50).toFixed(3),
    cpuP99Ms: +pct(cpu, 99).toFixed(3),
    ...(thread.length > 0 ? { threadCpuP50Ms: +pct(thread, 50).toFixed(3), threadCpuP99Ms: +pct(thread, 99).toFixed(3) } : {}),
    wallP50Ms: +pct(wall, 50).toFixed(3),
    wallP99Ms: +pct(wall, 99).toFixed(3),
    meanWallMsPerGuard: Object.fromEntries(Object.entries(perGuard).map(([k, v]) => [k, +(v / n).toFixed(3)])),
    gc: { per1000Requests: +((gc.count / n) * 1000).toFixed(1), meanMs: gc.count ? +(gc.ms / gc.count).toFixed(2) : 0, maxMs: +gc.maxMs.toFixed(2) },
  };
}

/**
 * Where the time goes: CPU microseconds per KiB of each detector alone on the same prompts
 * (median of 5 rounds). `injection` includes its own `normalize` call.
 */
function components(size: number) {
  const texts = Array.from({ length: 16 }, (_, i) => prose(size, i + 1));
  const iters = Math.max(10, Math.round((200 * 1024) / size));
  const fns: Record<string, (t: string) => unknown> = {
    normalize: (t) => normalize(t),
    pii: (t) => detectPii(t),
    secrets: (t) => detectSecrets(t),
    injection: (t) => detectInjection(t, { trust: 'trusted' }),
  };
  const out: Record<string, number> = {};
  for (const [name, f] of Object.entries(fns)) {
    const rounds: number[] = [];
    for (let r = 0; r < 5; r++) {
      const c = process.cpuUsage();
      for (let k = 0; k < iters; k++) f(texts[k % texts.length]!);
      rounds.push((cpuMs(c) * 1000) / iters);
    }
    rounds.sort((a, b) => a - b);
    out[name] = +(rounds[2]! / (size / 1024)).toFixed(1);
  }
  return out;
}

const MIB = 1024 * 1024;

/** 1 MiB adversarial inputs: long runs, near-matches for every detector family, encodings. */
function adversarial(): Record<string, string> {
  const fill = (unit: string) => unit.repeat(Math.ceil(MIB / unit.length)).slice(0, MIB);
  return {
    'single char run': fill('a'),
    'digits and separators': fill('4111 1111 -'),
    'at signs and dots': fill('a@b.'),
    'base64-like run': fill('QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0NTY3'),
    'hex run': fill('deadbeef'),
    'url-encoded run': fill('%41%42'),
    'chat template tokens': fill('<|im_start|>system '),
    'repeated override phrase': fill('ignore previous instructions '),
    'key-like assignments': fill('password=Zx9'),
    'zero-width and bidi': fill('a\u200b\u202e'),
    'prose': prose(MIB, 99),
  };
}

/**
 * Gateway throughput with guards off vs the default policy, same process, same run: the demo
 * provider answers in-process, so the difference is the guard cost per request. Rounds alternate
 * between the two gateways so a change in machine load hits both alike.
 */
export async function gatewayOnOff(durationSec = Number(process.env.PCL_BENCH_GUARDS_DURATION ?? 3), rounds = 2) {
  const start = async (guards: Record<string, unknown>) => {
    const dataDir = mkdtempSync(join(tmpdir(), 'pcl-bench-guards-'));
    const config = validateConfig({ dataDir, server: { host: '127.0.0.1', port: 0 }, log: { level: 'silent' }, guards });
    const gw = await createGateway(config, { logger: createLogger('silent'), env: {} });
    const { url } = await gw.listen();
    return { gw, url, key: gw.bootstrapKey!.key, close: async () => { await gw.close(); rmSync(dataDir, { recursive: true, force: true }); } };
  };
  const off = await start({ enabled: false });
  const on = await start({});
  const body = JSON.stringify({ model: 'demo', messages: [{ role: 'user', content: prose(1024, 7) }] });
  const results: Record<'off' | 'on', LoadResult[]> = { off: [], on: [] };
  try {
    for (let r = 0; r < rounds; r++) {
      for (const [name, g] of [['off', off], ['on', on]] as const) {
        results[name].push(await runLoad({ url: `${g.url}/v1/chat/completions`, body, headers: { authorization: `Bearer ${g.key}`, 'content-type': 'application/json' }, connections: 10, durationSec }));
      }
    }
  } finally {
    await off.close();
    await on.close();
  }
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const sum = (rs: LoadResult[]) => ({ rps: +med(rs.map((x) => x.rps)).toFixed(1), p50Ms: med(rs.map((x) => x.p50)), p99Ms: med(rs.map((x) => x.p99)), errors: rs.reduce((n, x) => n + x.errors, 0) });
  return { prompt: '1 KiB chat, demo provider, 10 connections', guardsOff: sum(results.off), guardsDefault: sum(results.on) };
}

/** CPU per request of a 10-turn chat (1 KiB per turn, full history resent each turn), with and without the detection cache. */
export async function multiTurn(turns = 10) {
  const outcome: Record<string, number[]> = {};
  for (const [label, cacheEntries] of [['cacheOff', 0], ['cacheOn', 10_000]] as const) {
    const engine = createGuardEngine({ cacheEntries });
    const ms: number[] = [];
    for (let conv = 0; conv < 5; conv++) {
      const messages: Array<{ role: string; content: string }> = [];
      for (let t = 0; t < turns; t++) {
        messages.push({ role: 'user', content: prose(1024, 1000 * conv + t) });
        const c = process.cpuUsage();
        await engine.runRequest('chat', { model: 'm', messages }, {});
        if (conv > 0) ms[t] = (ms[t] ?? 0) + cpuMs(c) / (5 - 1);
        messages.push({ role: 'assistant', content: prose(512, 5000 + t) });
      }
    }
    outcome[label] = ms.map((x) => +x.toFixed(2));
    await engine.close();
  }
  return { turns, cpuMsPerTurn: outcome };
}

/** Runs the bench and returns its numbers. */
export async function run(): Promise<object> {
  await loadModules();
  const build = built();
  process.stdout.write(`  measuring ${build.from === 'dist' ? 'the compiled build (dist/)' : 'the TypeScript sources (tsx)'}${build.note ? `: ${build.note}` : ''}\n`);
  const small = await measure(1024, 3000);
  const large = await measure(16 * 1024, 3000);
  // The pipeline's own cost (inspect, ordering, records, write-back) with every detector off.
  const overhead = await measure(1024, 1000, { injection: { enabled: false }, pii: { enabled: false }, secrets: { enabled: false } });
  const perComponent = { kib1: components(1024), kib16: components(16 * 1024) };
  const engine = createGuardEngine({});
  const adv: Array<{ input: string; wallMs: number; cpuMs: number; action: string; underOneSecond: boolean }> = [];
  for (const [name, text] of Object.entries(adversarial())) {
    const s = performance.now();
    const c = process.cpuUsage();
    const r = await engine.runRequest('chat', { model: 'm', messages: [{ role: 'user', content: text }] }, {});
    const cm = cpuMs(c);
    const ms = performance.now() - s;
    adv.push({ input: name, wallMs: +ms.toFixed(1), cpuMs: +cm.toFixed(1), action: r.outcome.action, underOneSecond: cm < 1000 });
  }
  await engine.close();
  const chatTurns = await multiTurn();
  let gateway: unknown;
  try {
    gateway = await gatewayOnOff();
  } catch (e) {
    gateway = { error: (e as Error).message };
  }
  const result = {
    pipeline: 'default request stage (secrets redact, pii flag, injection block) incl. inspect + write-back, 1 core',
    measured: build.from === 'dist' ? 'compiled build (dist/)' : 'TypeScript sources through tsx',
    ...(build.note ? { buildNote: build.note } : {}),
    kib1: small,
    kib16: large,
    pipelineOnlyAt1KiB: { cpuP50Ms: overhead.cpuP50Ms, cpuP99Ms: overhead.cpuP99Ms, mbPerCpuSec: overhead.mbPerCpuSec },
    cpuMicrosecondsPerKiB: perComponent,
    targets: { mbPerSec: 20, p99MsAt1KiB: 1, adversarial1MiBMs: 1000 },
    adversarial1MiB: adv,
    multiTurnChat: chatTurns,
    gateway,
  };
  const line = (k: string, m: typeof small) => `  ${k}: ${m.mbPerCpuSec} MB/CPU-s (${m.mbPerWallSec} MB/wall-s), CPU p50 ${m.cpuP50Ms} ms p99 ${m.cpuP99Ms} ms (main thread ${m.threadCpuP50Ms ?? '-'} / ${m.threadCpuP99Ms ?? '-'} ms), wall p99 ${m.wallP99Ms} ms, per guard ${JSON.stringify(m.meanWallMsPerGuard)}, GC ${JSON.stringify(m.gc)}\n`;
  process.stdout.write(line('1 KiB', small) + line('16 KiB', large));
  process.stdout.write(`  CPU us per KiB by detector (injection includes normalize): 1 KiB ${JSON.stringify(perComponent.kib1)} | 16 KiB ${JSON.stringify(perComponent.kib16)}\n`);
  process.stdout.write(`  pipeline only (no detectors) 1 KiB: CPU p50 ${overhead.cpuP50Ms} ms p99 ${overhead.cpuP99Ms} ms\n`);
  process.stdout.write(`  10-turn chat, CPU ms per turn: cache off ${chatTurns.cpuMsPerTurn.cacheOff!.join(' ')} | cache on ${chatTurns.cpuMsPerTurn.cacheOn!.join(' ')}\n`);
  process.stdout.write(`  gateway (1 KiB chat, demo upstream): ${JSON.stringify(gateway)}\n`);
  for (const a of adv) process.stdout.write(`  1 MiB ${a.input.padEnd(26)} cpu ${String(a.cpuMs).padStart(8)} ms  wall ${String(a.wallMs).padStart(8)} ms  ${a.action}${a.underOneSecond ? '' : '  OVER 1 s'}\n`);
  return result;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  run().then((r) => process.stdout.write(JSON.stringify(r, null, 2) + '\n'));
}
