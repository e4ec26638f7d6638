/**
 * Gateway overhead benchmark: direct to a local mock upstream vs. through Portcullis (1 and 2
 * workers, no guards) vs. through the Portkey gateway, all measured in one run on this machine.
 *
 * Each gateway runs in its own process; the mock runs in another; the load generator is wrk
 * (or autocannon when wrk is missing). All targets run at once (idle ones cost nothing) and every
 * load phase is split into rounds that rotate through the targets, so a change in machine load
 * during the run hits every target alike; percentiles are the median of the rounds.
 * Tunables (env): PCL_BENCH_DURATION (s per phase and target, default 8), PCL_BENCH_ROUNDS (default 4),
 * PCL_BENCH_TTFB_N (sequential streams, default 200), PCL_BENCH_STREAMS (concurrent streams for
 * the memory sample, default 200), PCL_BENCH_TARGETS (comma list of gateway ids: portcullis, portkey,
 * portcullis-w2, portcullis-guards; default all; `none` = direct only),
 * PCL_BENCH_LOADGEN=autocannon, PCL_BENCH_FROM_SOURCE=1 (run the gateway through tsx even when
 * dist/ is fresh), PCL_BENCH_PROFILE=1 (write a --cpu-prof of the 1-worker gateway under bench/results/profiles/).
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { loadTool, runLoad, type LoadResult } from './lib/load.js';
import { childPids, cpuMs, freePort, rssBytes, startChild, waitForChildren, waitForHttp, waitForPortLine, type Child } from './lib/procs.js';
import { holdConcurrentStreams, sustainConcurrentStreams, measureTtfb, summarize, type Summary } from './lib/streams.js';
import { fmt, table } from './lib/table.js';
import { median } from './lib/stats.js';
import { STREAM_CHUNKS, SLOW_CHUNK_MS } from './lib/mock-upstream.js';
import { built } from './lib/built.js';

/** Model name sent by every client (the mock serves any name; `*-slow` streams slowly). */
const BENCH_MODEL = 'gpt-4o-mini';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

/** Measurements of one target (direct, a gateway). */
export interface TargetResult {
  id: string;
  label: string;
  /** Why the target could not be measured (then the other fields are absent). */
  error?: string;
  /** Non-stream, 50 connections. */
  nonStream50?: LoadResult;
  /** Non-stream, 1 connection. */
  nonStream1?: LoadResult;
  /** Streams of 20 chunks, 50 connections. */
  stream50?: LoadResult;
  /** Time to first SSE byte over sequential streams (ms). */
  ttfb?: Summary;
  /** Whole-stream time over the same sequential streams (ms). */
  streamTotal?: Summary;
  /** Sequential streams that failed. */
  ttfbFailures?: number;
  /** Gateway CPU time per request during the 50-connection non-stream phase (µs). */
  cpuUsPerRequest?: number;
  /** Gateway CPU divided by the mock upstream's CPU for the same requests (same seconds). */
  cpuVsMock?: number;
  /** RSS of the gateway process(es), MB: idle after load, and peak with N streams open. */
  rssIdleMB?: number;
  rssStreamsMB?: number;
  /** The same N streams held by a freshly started process of this target (no load before it): peak RSS, MB. */
  rssStreamsFreshMB?: number;
  /** N streams kept open for PCL_BENCH_SUSTAIN_SECONDS (each re-opened as it ends), right after the hold above on the loaded process: peak and median RSS, MB. */
  rssSustainedPeakMB?: number;
  rssSustainedMedianMB?: number;
  /** The same sustained hold on the freshly started process. */
  rssSustainedFreshPeakMB?: number;
  rssSustainedFreshMedianMB?: number;
  /** Streams open when memory was sampled / completed / failed. */
  streamsOpen?: number;
  streamsCompleted?: number;
  streamsFailed?: number;
  /** For worker clusters: RSS of the primary process (not included in rss*MB). */
  primaryRssMB?: number;
}

/** The whole gateway bench result. */
export interface GatewayBenchResult {
  bench: 'gateway';
  meta: Record<string, unknown>;
  targets: TargetResult[];
  comparisons: Record<string, { value: number | null; target?: string; pass?: boolean | null; note?: string; median?: number | null }>;
  table: string;
}

interface Running {
  pids(): number[];
  primaryPid?: number;
  url: string;
  headers: Record<string, string>;
  stop(): Promise<void>;
}

const num = (name: string, def: number) => {
  const v = Number(process.env[name]);
  return Number.isFinite(v) && v > 0 ? v : def;
};

/** A chat request body of exactly `bytes` bytes (JSON). */
export function chatBody(model: string, stream: boolean, bytes = 1024): string {
  const base = { model, messages: [{ role: 'system', content: 'You are a helpful assistant.' }, { role: 'user', content: '' }], ...(stream ? { stream: true } : {}), max_tokens: 200 };
  const empty = JSON.stringify(base).length;
  const filler = 'Please summarise the following paragraph about gateways and latency budgets. ';
  base.messages[1]!.content = filler.repeat(Math.ceil(bytes / filler.length)).slice(0, Math.max(0, bytes - empty));
  return JSON.stringify(base);
}

/**
 * The Node flags `npm start` gives the gateway (`scripts.start` in package.json: the words after
 * `node` that start with `--`). Portcullis is benchmarked as the README starts it; the flags set at
 * start time (V8's heap and thread pool) cannot be set by the gateway itself.
 */
function startScriptNodeFlags(): string[] {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts?: { start?: string } };
  const words = (pkg.scripts?.start ?? '').trim().split(/\s+/);
  if (words[0] !== 'node') return [];
  const flags: string[] = [];
  for (const w of words.slice(1)) {
    if (!w.startsWith('--')) break;
    flags.push(w);
  }
  return flags;
}

/** Node flags of the Portcullis processes: npm start's, then PCL_BENCH_GATEWAY_NODE_FLAGS (a later V8 flag wins over an earlier one). */
const GATEWAY_NODE_FLAGS = [...startScriptNodeFlags(), ...(process.env.PCL_BENCH_GATEWAY_NODE_FLAGS?.split(/\s+/).filter(Boolean) ?? [])];

/**
 * How to launch the CLI: the compiled dist/ (built first when missing or older than src/), or the
 * TypeScript sources through tsx with PCL_BENCH_FROM_SOURCE=1 (or when the build failed).
 */
function cliCommand(notes: string[]): { args: string[]; from: 'dist' | 'source' } {
  const b = built();
  if (b.note) notes.push(b.note);
  if (b.from === 'dist') return { args: [join(ROOT, 'bin', 'portcullis')], from: 'dist' };
  return { args: ['--import', 'tsx', join(ROOT, 'src', 'cli', 'index.ts')], from: 'source' };
}

async function startPortcullis(mockPort: number, workers: number, cli: string[], opts: { guards?: boolean; profileDir?: string } = {}): Promise<Running> {
  const dir = mkdtempSync(join(tmpdir(), 'pcl-bench-'));
  const port = await freePort();
  const cfg = join(dir, 'portcullis.yaml');
  writeFileSync(
    cfg,
    [
      'server:',
      '  host: 127.0.0.1',
      `  port: ${port}`,
      `  workers: ${workers}`,
      `dataDir: ${JSON.stringify(join(dir, 'data'))}`,
      'providers:',
      '  mock:',
      '    type: openai',
      `    baseUrl: http://127.0.0.1:${mockPort}/v1`,
      'routes:',
      `  - model: "${BENCH_MODEL}*"`,
      '    provider: mock',
      'upstream:',
      '  connections: 512',
      // "No guards" is the overhead baseline; the `portcullis-guards` target keeps the default guard set.
      ...(opts.guards ? [] : ['guards:', '  enabled: false']),
      'log:',
      '  level: info',
      '',
    ].join('\n'),
  );
  const keyOut = execFileSync(process.execPath, [...cli, 'keys', 'create', '--config', cfg, '--tenant', 'bench', '--name', 'bench', '--json'], { cwd: ROOT, encoding: 'utf8' });
  const key = (JSON.parse(keyOut.trim().split('\n').pop()!) as { key: string }).key;
  const execArgs = [...(opts.profileDir ? ['--cpu-prof', '--cpu-prof-dir', opts.profileDir] : []), ...GATEWAY_NODE_FLAGS];
  // Request logs stay on (level info) and go to /dev/null, as a production log shipper would drain them.
  const child = startChild(`portcullis x${workers}`, process.execPath, [...execArgs, ...cli, 'serve', '--config', cfg], { cwd: ROOT, stdout: 'ignore' });
  const url = `http://127.0.0.1:${port}`;
  try {
    if (workers > 1) await waitForChildren(child.pid, workers);
    await waitForHttp(child, `${url}/healthz`, { okStatus: 200 });
    if (workers > 1) {
      // Every worker must be listening before load starts.
      await sleep(1500);
    }
  } catch (e) {
    await child.stop();
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  return {
    pids: () => (workers > 1 ? childPids(child.pid) : [child.pid]),
    ...(workers > 1 ? { primaryPid: child.pid } : {}),
    url: `${url}/v1/chat/completions`,
    headers: { authorization: `Bearer ${key}` },
    async stop() {
      await child.stop();
      if (workers > 1) await sleep(300);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function startPortkey(mockPort: number): Promise<Running> {
  const entry = join(ROOT, 'node_modules', '@portkey-ai', 'gateway', 'build', 'start-server.js');
  if (!existsSync(entry)) throw new Error('@portkey-ai/gateway is not installed (npm ci installs it as a devDependency)');
  const port = await freePort();
  const child = startChild('portkey', process.execPath, ['--import', join(ROOT, 'bench', 'lib', 'loopback-preload.mjs'), entry, `--port=${port}`, '--headless'], { cwd: ROOT, stdout: 'ignore' });
  try {
    await waitForHttp(child, `http://127.0.0.1:${port}/`);
  } catch (e) {
    await child.stop();
    throw e;
  }
  return {
    pids: () => [child.pid],
    url: `http://127.0.0.1:${port}/v1/chat/completions`,
    headers: { authorization: 'Bearer sk-bench-not-a-key', 'x-portkey-provider': 'openai', 'x-portkey-custom-host': `http://127.0.0.1:${mockPort}/v1` },
    stop: () => child.stop(),
  };
}

/** Combines rounds of one phase: summed counts; req/s and percentiles are the median of the rounds (robust to a burst of load from other processes during one round). */
function mergeRounds(rs: LoadResult[]): LoadResult {
  const requests = rs.reduce((a, r) => a + r.requests, 0);
  const durationSec = rs.reduce((a, r) => a + r.durationSec, 0);
  return {
    tool: rs[0]!.tool,
    connections: rs[0]!.connections,
    durationSec,
    requests,
    rps: median(rs.map((r) => r.rps)),
    p50: median(rs.map((r) => r.p50)),
    p90: median(rs.map((r) => r.p90)),
    p99: median(rs.map((r) => r.p99)),
    mean: rs.reduce((a, r) => a + r.mean * r.requests, 0) / (requests || 1),
    max: Math.max(...rs.map((r) => r.max)),
    errors: rs.reduce((a, r) => a + r.errors, 0),
  };
}

const sumRss = (pids: number[]) => pids.reduce((a, p) => a + rssBytes(p), 0);
/** The largest RSS sample of each second of a sustained hold (4 samples a second), MB. */
const perSecondMax = (samples: number[]) => Array.from({ length: Math.ceil(samples.length / 4) }, (_, i) => Math.round(Math.max(...samples.slice(i * 4, i * 4 + 4)) / 1048576)).join(' ');
/** The higher peak of a target's two sustained holds (after load, fresh process), MB; null without either. */
const heldPeak = (r?: TargetResult) => {
  const peaks = [r?.rssSustainedPeakMB, r?.rssSustainedFreshPeakMB].filter((x): x is number => x !== undefined);
  return peaks.length ? Math.max(...peaks) : null;
};
const sumCpu = (pids: number[]) => pids.reduce((a, p) => a + cpuMs(p), 0);
const mb = (b: number) => Math.round((b / 1048576) * 10) / 10;

function say(s: string): void {
  process.stdout.write(s + '\n');
}

function brief(r: LoadResult): string {
  return `${fmt(r.rps, 0)} req/s  p50 ${fmt(r.p50, 3)} ms  p99 ${fmt(r.p99, 3)} ms${r.errors ? `  errors ${r.errors}` : ''}`;
}

/** Runs the gateway overhead benchmark and prints its tables. */
export async function run(): Promise<GatewayBenchResult> {
  const D = num('PCL_BENCH_DURATION', 8);
  const ROUNDS = Math.round(num('PCL_BENCH_ROUNDS', 4));
  const seg = Math.max(1, Math.round(D / ROUNDS));
  const TTFB_N = num('PCL_BENCH_TTFB_N', 200);
  const STREAMS = num('PCL_BENCH_STREAMS', 200);
  const SUSTAIN = num('PCL_BENCH_SUSTAIN_SECONDS', 15);
  /** Targets whose memory is also measured over a sustained hold (single processes). */
  const sustained = (id: string) => id === 'portcullis' || id === 'portkey';
  const only = process.env.PCL_BENCH_TARGETS?.split(',').map((s) => s.trim()) ?? ['portcullis', 'portkey', 'portcullis-w2', 'portcullis-guards'];
  const notes: string[] = [];
  const tool = loadTool();
  if (tool === 'autocannon')
    notes.push(
      `autocannon generated the load (${process.env.PCL_BENCH_LOADGEN === 'autocannon' ? 'PCL_BENCH_LOADGEN=autocannon' : 'wrk is not installed; Debian: apt-get install wrk'}). It is slower than wrk, so the direct baseline is capped by the load generator, and it reports whole milliseconds, so the 1-connection added p50 is not meaningful.`,
    );
  const cli = cliCommand(notes);
  const profileDir = process.env.PCL_BENCH_PROFILE === '1' ? join(ROOT, 'bench', 'results', 'profiles') : undefined;
  if (profileDir) mkdirSync(profileDir, { recursive: true });

  const meta: Record<string, unknown> = {
    date: new Date().toISOString(),
    node: process.version,
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model,
    loadavgAtStart: loadavg().map((v) => Math.round(v * 100) / 100),
    loadGenerator: tool,
    gatewayFrom: cli.from,
    rounds: `${ROUNDS} rounds of ${seg}s per target and phase, rotating through the targets; req/s and percentiles are the median of the rounds`,
    roundsDetail: 'targets[].nonStream50 etc. hold the merged result; requests and durationSec are summed over the rounds',
    requestBodyBytes: 1024,
    streamChunks: STREAM_CHUNKS,
    ttfbSequentialRequests: TTFB_N,
    concurrentStreams: STREAMS,
    slowStreamChunkGapMs: SLOW_CHUNK_MS,
    portcullisConfig: 'one openai provider → mock, guards.enabled false (the portcullis-guards target keeps the default guards: injection block, secrets redact, PII flag), default identity/policy/limits modules, log level info to /dev/null, upstream.connections 512',
    portcullisNodeFlags: GATEWAY_NODE_FLAGS.join(' '),
  };
  say(`\n== gateway overhead bench (${tool}, ${ROUNDS}×${seg}s per phase, node ${process.version}, ${cpus().length} cpus, load avg ${loadavg()[0]!.toFixed(2)}; gateway from ${cli.from}, node flags of npm start: ${meta.portcullisNodeFlags || 'none'}) ==`);

  const mockChild = startChild('mock upstream', process.execPath, ['--import', 'tsx', join(ROOT, 'bench', 'lib', 'mock-upstream.ts')], { cwd: ROOT });
  const results: TargetResult[] = [];
  const running: Array<{ r: TargetResult; gw: Running | null }> = [];
  try {
    const mockPort = await waitForPortLine(mockChild);
    // A real OpenAI model name, so per-model work (e.g. BPE token estimation for limits) happens as in production.
    const body = chatBody(BENCH_MODEL, false);
    const streamBody = chatBody(BENCH_MODEL, true);
    const slowBody = chatBody(`${BENCH_MODEL}-slow`, true);
    const load = (t: Running, b: string, connections: number, durationSec: number) => runLoad({ url: t.url, headers: t.headers, body: b, connections, durationSec });
    /** Keeps STREAMS streams open for SUSTAIN seconds on `gw`, prints the RSS, returns its peak and median (MB). */
    const holdSustained = async (r: TargetResult, gw: Running, what: string): Promise<{ peak: number; median: number }> => {
      const h = await sustainConcurrentStreams({ url: gw.url, headers: gw.headers, body: slowBody }, STREAMS, SUSTAIN, () => sumRss(gw.pids()));
      say(`   ${r.label.padEnd(24)} ${what}${STREAMS} streams kept open ${SUSTAIN} s (${h.started} started, ${h.failures} failed): RSS peak ${mb(h.peak)} MB, median ${mb(h.median)} MB; per second max ${perSecondMax(h.samples)}`);
      return { peak: mb(h.peak), median: mb(h.median) };
    };

    const directRun: Running = { pids: () => [], url: `http://127.0.0.1:${mockPort}/v1/chat/completions`, headers: { authorization: 'Bearer sk-bench-not-a-key' }, stop: async () => {} };
    const directRes: TargetResult = { id: 'direct', label: 'direct → mock' };
    results.push(directRes);
    running.push({ r: directRes, gw: directRun });

    const gateways: Array<{ id: string; label: string; start: () => Promise<Running> }> = [
      { id: 'portcullis', label: 'Portcullis (1 process)', start: () => startPortcullis(mockPort, 1, cli.args, profileDir ? { profileDir } : {}) },
      { id: 'portkey', label: 'Portkey gateway 1.15', start: () => startPortkey(mockPort) },
      { id: 'portcullis-w2', label: 'Portcullis --workers 2', start: () => startPortcullis(mockPort, 2, cli.args) },
      { id: 'portcullis-guards', label: 'Portcullis, default guards', start: () => startPortcullis(mockPort, 1, cli.args, { guards: true }) },
    ];
    for (const g of gateways) {
      if (!only.includes(g.id)) continue;
      const r: TargetResult = { id: g.id, label: g.label };
      results.push(r);
      try {
        const gw = await g.start();
        running.push({ r, gw });
        // Check the route works before measuring (a broken route would bench error pages).
        const probe = await fetch(gw.url, { method: 'POST', headers: { 'content-type': 'application/json', ...gw.headers }, body });
        const probeText = await probe.text();
        if (probe.status !== 200 || !probeText.includes('chat.completion')) throw new Error(`probe request failed: ${probe.status} ${probeText.slice(0, 200)}`);
        say(`   started ${g.label}`);
      } catch (e) {
        r.error = (e as Error).message.slice(0, 500);
        say(`   ${g.label} could not start: ${r.error}`);
      }
    }
    const live = () => running.filter((x) => x.gw && !x.r.error) as Array<{ r: TargetResult; gw: Running }>;
    const cpuOf = (gw: Running) => sumCpu(gw.pids()) + (gw.primaryPid ? cpuMs(gw.primaryPid) : 0);

    /** Waits until the mock and every gateway are idle, so a slow target's backlog does not eat into the next one's round. */
    const settle = async () => {
      const pids = [mockChild.pid, ...running.flatMap((x) => (x.gw ? [...x.gw.pids(), ...(x.gw.primaryPid ? [x.gw.primaryPid] : [])] : []))];
      const deadline = Date.now() + 5000;
      let before = sumCpu(pids);
      while (Date.now() < deadline) {
        await sleep(150);
        const now = sumCpu(pids);
        if (now - before <= 20) return;
        before = now;
      }
    };

    /**
     * Runs `phase` for every live target, `ROUNDS` times; each round starts one target later
     * (so no target always follows the same one) and waits for the processes to go idle between runs.
     */
    /** Every process of a target (workers and their primary). */
    const procsOf = (gw: Running) => [...gw.pids(), ...(gw.primaryPid ? [gw.primaryPid] : [])];
    /** Sends `sig` to every process of the targets other than `x` (a process already gone is skipped). */
    const signalOthers = (x: { gw: Running }, sig: 'SIGSTOP' | 'SIGCONT') => {
      for (const o of running) {
        if (!o.gw || o.gw === x.gw) continue;
        for (const pid of procsOf(o.gw)) {
          try {
            process.kill(pid, sig);
          } catch {
            /* exited */
          }
        }
      }
    };
    /**
     * `pauseOthers` (the latency phases): the targets not being measured are stopped (SIGSTOP) for
     * the length of the segment and continued after it. Idle targets are not idle right after their
     * own segment: a gateway's heap trimmer or V8's memory reducer runs a full GC in its first idle
     * second, a Node process's timers fire, and on 2 cores that landed in the next target's latency
     * (the 1-connection p50 of one gateway was 0.31 ms alone and 0.38 ms beside four others). Every
     * target, direct included, is measured alone this way; the throughput phases keep all running.
     */
    const rotate = async (name: string, phase: (x: { r: TargetResult; gw: Running }, round: number) => Promise<void>, opts: { pauseOthers?: boolean } = {}) => {
      say(`-- ${name}${opts.pauseOthers ? ' (the other targets paused meanwhile)' : ''}`);
      for (let round = 0; round < ROUNDS; round++) {
        const targets = live();
        for (let i = 0; i < targets.length; i++) {
          const x = targets[(i + round) % targets.length]!;
          await settle();
          if (opts.pauseOthers) signalOthers(x, 'SIGSTOP');
          try {
            await phase(x, round);
          } catch (e) {
            x.r.error = `${name}: ${(e as Error).message}`.slice(0, 500);
            say(`   ${x.r.label} failed: ${x.r.error}`);
          } finally {
            if (opts.pauseOthers) signalOthers(x, 'SIGCONT');
          }
        }
      }
    };

    say('-- warm-up (2 s at 50 connections each)');
    for (const x of live()) await load(x.gw, body, 50, 2);

    const ns50 = new Map<string, LoadResult[]>();
    const cpuSpent = new Map<string, number>();
    const mockSpent = new Map<string, number>();
    await rotate('non-stream, 50 connections', async ({ r, gw }) => {
      const c0 = cpuOf(gw);
      const m0 = cpuMs(mockChild.pid);
      const res = await load(gw, body, 50, seg);
      await settle(); // the target's CPU for requests still queued when the load stopped counts too
      cpuSpent.set(r.id, (cpuSpent.get(r.id) ?? 0) + cpuOf(gw) - c0);
      mockSpent.set(r.id, (mockSpent.get(r.id) ?? 0) + cpuMs(mockChild.pid) - m0);
      ns50.set(r.id, [...(ns50.get(r.id) ?? []), res]);
    });
    for (const { r } of live()) {
      r.nonStream50 = mergeRounds(ns50.get(r.id)!);
      if (r.id !== 'direct') r.cpuUsPerRequest = r.nonStream50.requests ? Math.round(((cpuSpent.get(r.id) ?? 0) * 1000) / r.nonStream50.requests) : undefined;
      // Gateway CPU over the mock's CPU for the same requests in the same seconds: a cost ratio that
      // cancels out how fast the (shared, throttled) CPU happened to be.
      const mockMs = mockSpent.get(r.id) ?? 0;
      if (r.id !== 'direct' && mockMs > 0) r.cpuVsMock = Math.round(((cpuSpent.get(r.id) ?? 0) / mockMs) * 10) / 10;
      say(`   ${r.label.padEnd(24)} ${brief(r.nonStream50)}${r.cpuUsPerRequest !== undefined ? `  (gateway CPU ${r.cpuUsPerRequest} µs/req, ${r.cpuVsMock ?? '—'}× the mock's)` : ''}`);
    }

    const ns1 = new Map<string, LoadResult[]>();
    await rotate(
      'non-stream, 1 connection',
      async ({ r, gw }) => {
        ns1.set(r.id, [...(ns1.get(r.id) ?? []), await load(gw, body, 1, seg)]);
      },
      { pauseOthers: true },
    );
    for (const { r } of live()) {
      r.nonStream1 = mergeRounds(ns1.get(r.id)!);
      say(`   ${r.label.padEnd(24)} ${brief(r.nonStream1)}`);
    }

    const st50 = new Map<string, LoadResult[]>();
    await rotate('streams (20 chunks), 50 connections', async ({ r, gw }) => {
      st50.set(r.id, [...(st50.get(r.id) ?? []), await load(gw, streamBody, 50, seg)]);
    });
    for (const { r } of live()) {
      r.stream50 = mergeRounds(st50.get(r.id)!);
      say(`   ${r.label.padEnd(24)} ${brief(r.stream50)}`);
    }

    const tt = new Map<string, { ttfb: number[]; total: number[]; failures: number }>();
    await rotate(`time to first SSE byte, ${TTFB_N} sequential streams`, async ({ r, gw }) => {
      const m = await measureTtfb({ url: gw.url, headers: gw.headers, body: streamBody }, Math.ceil(TTFB_N / ROUNDS), 10);
      const acc = tt.get(r.id) ?? { ttfb: [], total: [], failures: 0 };
      acc.ttfb.push(...m.ttfb);
      acc.total.push(...m.total);
      acc.failures += m.failures;
      tt.set(r.id, acc);
    }, { pauseOthers: true });
    for (const { r } of live()) {
      const m = tt.get(r.id)!;
      r.ttfb = summarize(m.ttfb);
      r.streamTotal = summarize(m.total);
      r.ttfbFailures = m.failures;
      say(`   ${r.label.padEnd(24)} TTFB p50 ${fmt(r.ttfb.p50, 3)} ms  p99 ${fmt(r.ttfb.p99, 3)} ms  (whole stream p50 ${fmt(r.streamTotal.p50, 3)} ms)${m.failures ? `  failures ${m.failures}` : ''}`);
    }

    say(`-- memory with ${STREAMS} concurrent streams (${STREAM_CHUNKS} chunks, ${SLOW_CHUNK_MS} ms apart)`);
    for (const { r, gw } of live()) {
      if (r.id === 'direct') continue;
      try {
        await sleep(300);
        r.rssIdleMB = mb(sumRss(gw.pids()));
        const held = await holdConcurrentStreams({ url: gw.url, headers: gw.headers, body: slowBody }, STREAMS, () => sumRss(gw.pids()));
        r.rssStreamsMB = mb(held.peak);
        r.streamsOpen = held.opened;
        r.streamsCompleted = held.completed;
        r.streamsFailed = held.failures;
        if (gw.primaryPid) r.primaryRssMB = mb(rssBytes(gw.primaryPid));
        say(`   ${r.label.padEnd(24)} RSS idle ${r.rssIdleMB} MB, with ${held.opened}/${STREAMS} streams open ${r.rssStreamsMB} MB${gw.primaryPid ? ` (workers summed; primary ${r.primaryRssMB} MB more)` : ''}; completed ${held.completed}, failed ${held.failures}`);
        if (sustained(r.id)) {
          const h = await holdSustained(r, gw, '');
          r.rssSustainedPeakMB = h.peak;
          r.rssSustainedMedianMB = h.median;
        }
      } catch (e) {
        say(`   ${r.label} memory phase failed: ${(e as Error).message}`);
      }
    }
    // The same streams on a process that served nothing before (single-process targets): what
    // the streams themselves cost, next to the figures above, which carry the heap the throughput
    // phases left behind (the target's verdict is the higher peak of the two sustained holds).
    say(`-- memory with ${STREAMS} concurrent streams, freshly started process (no load before)`);
    for (const { r } of live()) {
      const g = gateways.find((x) => x.id === r.id && (x.id === 'portcullis' || x.id === 'portkey'));
      if (!g) continue;
      let fresh: Running | undefined;
      try {
        fresh = await g.start();
        await sleep(1000);
        const held = await holdConcurrentStreams({ url: fresh.url, headers: fresh.headers, body: slowBody }, STREAMS, () => sumRss(fresh!.pids()));
        r.rssStreamsFreshMB = mb(held.peak);
        say(`   ${r.label.padEnd(24)} fresh process, ${held.opened}/${STREAMS} streams open: ${r.rssStreamsFreshMB} MB; completed ${held.completed}, failed ${held.failures}`);
        if (sustained(r.id)) {
          const h = await holdSustained(r, fresh, 'fresh process, ');
          r.rssSustainedFreshPeakMB = h.peak;
          r.rssSustainedFreshMedianMB = h.median;
        }
      } catch (e) {
        say(`   ${r.label} fresh memory phase failed: ${(e as Error).message}`);
      } finally {
        await fresh?.stop().catch(() => {});
      }
    }
  } finally {
    for (const x of running) {
      if (!x.gw) continue;
      // A target left stopped by a failed latency phase would not act on its SIGTERM.
      for (const pid of [...x.gw.pids(), ...(x.gw.primaryPid ? [x.gw.primaryPid] : [])]) {
        try {
          process.kill(pid, 'SIGCONT');
        } catch {
          /* exited */
        }
      }
      await x.gw.stop().catch(() => {});
    }
    await mockChild.stop();
  }

  const comparisons = compare(results);
  const tbl = renderTable(results, comparisons);
  say('\n' + tbl + '\n');
  if (notes.length) say(notes.map((n) => `note: ${n}`).join('\n'));
  meta.notes = notes;
  meta.loadavgAtEnd = loadavg().map((v) => Math.round(v * 100) / 100);
  return { bench: 'gateway', meta, targets: results, comparisons, table: tbl };
}

function compare(rs: TargetResult[]): GatewayBenchResult['comparisons'] {
  const by = (id: string) => rs.find((r) => r.id === id && !r.error);
  const d = by('direct');
  const pc = by('portcullis');
  const pk = by('portkey');
  const w2 = by('portcullis-w2');
  const ratio = (a?: number, b?: number) => (a !== undefined && b ? Math.round((a / b) * 100) / 100 : null);
  const diff = (a?: number, b?: number) => (a !== undefined && b !== undefined ? Math.round((a - b) * 1000) / 1000 : null);
  const check = (v: number | null, ok: (v: number) => boolean) => (v === null ? null : ok(v));
  const thr = ratio(pc?.nonStream50?.rps, pk?.nonStream50?.rps);
  const addP50 = diff(pc?.nonStream1?.p50, d?.nonStream1?.p50);
  const addTtfb = diff(pc?.ttfb?.p50, d?.ttfb?.p50);
  // The target's figure: the higher peak of the two sustained holds (after the throughput phases,
  // and on a fresh process). The 0.5 s sample right after the bursts is reported beside it.
  const rss = heldPeak(pc);
  const workers = ratio(w2?.nonStream50?.rps, pc?.nonStream50?.rps);
  return {
    portcullisVsPortkeyThroughput: { value: thr, target: '≥ 3×', pass: check(thr, (v) => v >= 3) },
    portcullisVsPortkeyStreamThroughput: { value: ratio(pc?.stream50?.rps, pk?.stream50?.rps) },
    addedP50At1ConnectionMs: { value: addP50, target: '≤ 0.3 ms', pass: check(addP50, (v) => v <= 0.3), note: 'p50 through Portcullis minus p50 direct (rounds interleaved)' },
    portkeyAddedP50At1ConnectionMs: { value: diff(pk?.nonStream1?.p50, d?.nonStream1?.p50) },
    workers2AddedP50At1ConnectionMs: { value: diff(w2?.nonStream1?.p50, d?.nonStream1?.p50) },
    addedStreamTtfbMs: { value: addTtfb, target: '≤ 1 ms', pass: check(addTtfb, (v) => v <= 1), note: 'p50 time to first SSE byte minus direct (rounds interleaved)' },
    portkeyAddedStreamTtfbMs: { value: diff(pk?.ttfb?.p50, d?.ttfb?.p50) },
    rssAtConcurrentStreamsMB: { value: rss, target: '< 150 MB', pass: check(rss, (v) => v < 150), note: 'peak RSS while 200 streams are kept open for PCL_BENCH_SUSTAIN_SECONDS (each re-opened as it ends), the higher of: right after the throughput phases, and on a freshly started process' },
    portkeyRssAtConcurrentStreamsMB: { value: heldPeak(pk) },
    rssSustainedAfterLoadMB: { value: pc?.rssSustainedPeakMB ?? null, note: 'peak / median of the hold on the loaded process', median: pc?.rssSustainedMedianMB ?? null },
    rssSustainedFreshProcessMB: { value: pc?.rssSustainedFreshPeakMB ?? null, note: 'peak / median of the hold on a fresh process', median: pc?.rssSustainedFreshMedianMB ?? null },
    rssRightAfterBurstsMB: { value: pc?.rssStreamsMB ?? null, note: '200 streams opened right after the throughput phases, peak of 5 samples over 0.5 s: what the bursts left in the heap before the trimmer ran (informational)' },
    portkeyRssRightAfterBurstsMB: { value: pk?.rssStreamsMB ?? null },
    rssAtConcurrentStreamsFreshProcessMB: { value: pc?.rssStreamsFreshMB ?? null, note: 'the first 0.5 s of 200 streams on a freshly started process (informational)' },
    portkeyRssAtConcurrentStreamsFreshProcessMB: { value: pk?.rssStreamsFreshMB ?? null },
    workers2RssAtConcurrentStreamsMB: { value: w2?.rssStreamsMB ?? null, note: 'sum of both workers; the primary is extra' },
    guardsAddedP50At1ConnectionMs: { value: diff(by('portcullis-guards')?.nonStream1?.p50, pc?.nonStream1?.p50), note: 'default guard set vs no guards, 1 KiB body' },
    guardsThroughputRatio: { value: ratio(by('portcullis-guards')?.nonStream50?.rps, pc?.nonStream50?.rps), note: 'default guards / no guards, non-stream c50' },
    workers2Vs1Throughput: { value: workers, note: 'non-stream c50; on 2 cores the load generator and the mock compete for the same cores' },
    portcullisCpuUsPerRequest: { value: pc?.cpuUsPerRequest ?? null },
    portkeyCpuUsPerRequest: { value: pk?.cpuUsPerRequest ?? null },
    cpuPerRequestPortkeyVsPortcullis: { value: ratio(pk?.cpuUsPerRequest, pc?.cpuUsPerRequest), note: 'gateway CPU time per request, a less load-dependent efficiency ratio' },
    portcullisCpuVsMock: { value: pc?.cpuVsMock ?? null, note: 'gateway CPU ÷ mock CPU for the same requests; cancels out the speed of a throttled CPU' },
    portkeyCpuVsMock: { value: pk?.cpuVsMock ?? null },
  };
}

function renderTable(rs: TargetResult[], c: GatewayBenchResult['comparisons']): string {
  const direct = rs.find((r) => r.id === 'direct');
  const rows: Array<Array<string | number>> = [
    ['target', 'req/s c50', 'p50 c50 ms', 'p99 c50 ms', 'p50 c1 ms', 'added p50 c1 ms', 'stream req/s c50', 'stream p99 ms', 'TTFB p50 ms', 'added TTFB ms', 'CPU µs/req', 'CPU ÷ mock CPU', 'RSS idle MB', 'RSS 200 streams right after MB', 'RSS 200 streams held peak MB'],
  ];
  for (const r of rs) {
    if (r.error && !r.nonStream50) {
      rows.push([r.label, `failed: ${r.error.slice(0, 60)}`, '', '', '', '', '', '', '', '', '', '', '', '', '']);
      continue;
    }
    rows.push([
      r.label + (r.error ? ' (partly failed)' : ''),
      fmt(r.nonStream50?.rps, 0),
      fmt(r.nonStream50?.p50, 2),
      fmt(r.nonStream50?.p99, 2),
      fmt(r.nonStream1?.p50, 3),
      r.id === 'direct' ? '—' : fmt((r.nonStream1?.p50 ?? NaN) - (direct?.nonStream1?.p50 ?? NaN), 3),
      fmt(r.stream50?.rps, 0),
      fmt(r.stream50?.p99, 2),
      fmt(r.ttfb?.p50, 3),
      r.id === 'direct' ? '—' : fmt((r.ttfb?.p50 ?? NaN) - (direct?.ttfb?.p50 ?? NaN), 3),
      r.cpuUsPerRequest === undefined ? '—' : String(r.cpuUsPerRequest),
      r.cpuVsMock === undefined ? '—' : String(r.cpuVsMock),
      fmt(r.rssIdleMB, 1),
      fmt(r.rssStreamsMB, 1),
      fmt(r.rssSustainedPeakMB, 1),
    ]);
  }
  const verdict = (k: string) => {
    const x = c[k]!;
    return `${x.value ?? '—'}${x.target ? ` (target ${x.target}: ${x.pass === null || x.pass === undefined ? 'n/a' : x.pass ? 'met' : 'MISSED'})` : ''}`;
  };
  return [
    table(rows),
    '',
    table([
      ['comparison (same run)', 'value'],
      ['Portcullis / Portkey throughput (non-stream c50)', verdict('portcullisVsPortkeyThroughput')],
      ['Portcullis / Portkey throughput (streams c50)', verdict('portcullisVsPortkeyStreamThroughput')],
      ['added p50 at 1 connection, Portcullis (ms)', verdict('addedP50At1ConnectionMs')],
      ['added p50 at 1 connection, Portkey (ms)', verdict('portkeyAddedP50At1ConnectionMs')],
      ['added stream TTFB p50, Portcullis (ms)', verdict('addedStreamTtfbMs')],
      ['added stream TTFB p50, Portkey (ms)', verdict('portkeyAddedStreamTtfbMs')],
      ['RSS with 200 streams kept open, peak of both holds, Portcullis (MB)', verdict('rssAtConcurrentStreamsMB')],
      ['RSS with 200 streams kept open, peak of both holds, Portkey (MB)', verdict('portkeyRssAtConcurrentStreamsMB')],
      ['  hold after the throughput phases, Portcullis: peak / median (MB)', `${c.rssSustainedAfterLoadMB!.value ?? '—'} / ${c.rssSustainedAfterLoadMB!.median ?? '—'}`],
      ['  hold on a fresh process, Portcullis: peak / median (MB)', `${c.rssSustainedFreshProcessMB!.value ?? '—'} / ${c.rssSustainedFreshProcessMB!.median ?? '—'}`],
      ['RSS in the first 0.5 s of 200 streams right after the bursts, Portcullis / Portkey (MB)', `${c.rssRightAfterBurstsMB!.value ?? '—'} / ${c.portkeyRssRightAfterBurstsMB!.value ?? '—'}`],
      ['RSS in the first 0.5 s of 200 streams, fresh process, Portcullis / Portkey (MB)', `${c.rssAtConcurrentStreamsFreshProcessMB!.value ?? '—'} / ${c.portkeyRssAtConcurrentStreamsFreshProcessMB!.value ?? '—'}`],
      ['workers 2 / 1 throughput', verdict('workers2Vs1Throughput')],
      ['default guards: added p50 at 1 connection (ms)', verdict('guardsAddedP50At1ConnectionMs')],
      ['default guards / no guards throughput', verdict('guardsThroughputRatio')],
      ['gateway CPU per request, Portkey / Portcullis', verdict('cpuPerRequestPortkeyVsPortcullis')],
      ['gateway CPU ÷ mock CPU, Portcullis / Portkey', `${c.portcullisCpuVsMock!.value ?? '—'} / ${c.portkeyCpuVsMock!.value ?? '—'}`],
    ]),
  ].join('\n');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const r = await run();
  process.stdout.write(JSON.stringify(r.comparisons, null, 2) + '\n');
}
