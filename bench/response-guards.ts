/**
 * Response-guard bench: streamed chat responses through two gateways in the same process, one
 * with the response guards off and one with them on (defaults plus the canary), against the
 * same local upstream. Measures, interleaved in the same run:
 *  - streamed throughput (content characters per wall second, and CPU ms per stream) with an
 *    upstream that sends 600 small deltas as fast as it can, in off-on-on-off blocks; the CPU
 *    ratio is the median over blocks of CPU(off) ÷ CPU(on) (neighbouring streams see about the
 *    same machine, so it is far less sensitive to other load than chars per wall second);
 *  - time to first byte and time to first content character with a paced upstream (one delta
 *    every 2 ms), i.e. what the hold-back adds for a real-time stream;
 *  - the same fast streams through the two gateways as child processes, with the CPU time of
 *    each gateway process alone per stream (/proc/<pid>/task/ * /schedstat, every thread): the
 *    in-process CPU also counts the client and the upstream, and the guarded gateway sends the
 *    text in fewer, larger chunks (one per release), which the client parses more cheaply.
 * Run: `npm run bench -- response-guards` or `node --import tsx bench/response-guards.ts`.
 */
import { createServer, type Server } from 'node:http';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { startChild, type Child } from './lib/procs.js';
import { Agent, request } from 'undici';
import { validateConfig } from '../src/config/load.js';
import { createGateway, createLogger, type Gateway } from '../src/index.js';
import { prose } from './guards.js';
import { summarize } from './lib/streams.js';
import { table, fmt } from './lib/table.js';

const FAST_DELTAS = 600;
/** off-on-on-off blocks of fast streams (4 streams each). */
const BLOCKS = 30;
const PACED_PAIRS = 20;
const PACED_DELTAS = 120;
const PACE_MS = 2;

function startUpstream(): Promise<{ url: string; server: Server }> {
  const text = prose(FAST_DELTAS * 6, 7);
  const server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    const paced = String(body.messages?.[body.messages.length - 1]?.content ?? '').includes('paced');
    const n = paced ? PACED_DELTAS : FAST_DELTAS;
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    const base = { id: 'c1', object: 'chat.completion.chunk', created: 1, model: body.model };
    res.write(`data: ${JSON.stringify({ ...base, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }] })}\n\n`);
    for (let i = 0; i < n; i++) {
      res.write(`data: ${JSON.stringify({ ...base, choices: [{ index: 0, delta: { content: text.slice(i * 6, i * 6 + 6) }, finish_reason: null }] })}\n\n`);
      if (paced) await new Promise((r) => setTimeout(r, PACE_MS));
    }
    res.write(`data: ${JSON.stringify({ ...base, choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] })}\n\n`);
    res.write(`data: ${JSON.stringify({ ...base, choices: [], usage: { prompt_tokens: 10, completion_tokens: n, total_tokens: n + 10 } })}\n\n`);
    res.end('data: [DONE]\n\n');
  });
  return new Promise((r) => server.listen(0, '127.0.0.1', () => r({ url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, server })));
}

/** Extra `guards.response` options for the guarded gateway (PCL_BENCH_RESPONSE, JSON), e.g. '{"minRelease":256}'. */
const extra = JSON.parse(process.env.PCL_BENCH_RESPONSE ?? '{}') as Record<string, unknown>;

async function gateway(upstream: string, responseOn: boolean): Promise<{ gw: Gateway; url: string; key: string; dir: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'pcl-bench-rg-'));
  const config = validateConfig({
    dataDir: dir,
    server: { host: '127.0.0.1', port: 0 },
    log: { level: 'silent' },
    providers: { mock: { type: 'openai', baseUrl: upstream + '/v1' } },
    routes: [{ model: 'gpt-*', provider: 'mock' }],
    guards: { response: responseOn ? { canary: { enabled: true }, ...extra } : { enabled: false }, tools: { enabled: responseOn } },
  });
  const gw = await createGateway(config, { logger: createLogger('silent'), env: {} });
  const { url } = await gw.listen();
  return { gw, url, key: gw.bootstrapKey!.key, dir };
}

/** CPU time (ms) of every thread of process `pid` so far (nanosecond counters of the scheduler). */
function processCpuMs(pid: number): number {
  let ns = 0;
  for (const t of readdirSync(`/proc/${pid}/task`)) {
    try {
      ns += Number(readFileSync(`/proc/${pid}/task/${t}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      /* thread ended */
    }
  }
  return ns / 1e6;
}

/** Starts a gateway (guards on or off) as a child process of this file; resolves with its URL and key. */
async function gatewayChild(upstream: string, responseOn: boolean): Promise<{ child: Child; url: string; key: string }> {
  const child = startChild(`gateway ${responseOn ? 'on' : 'off'}`, process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url)], { env: { ...process.env, PCL_RG_CHILD: responseOn ? 'on' : 'off', PCL_RG_UPSTREAM: upstream } });
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const m = /\{"url":"([^"]+)","key":"([^"]+)"\}/.exec(child.tail());
    if (m) return { child, url: m[1]!, key: m[2]! };
    if (child.proc.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  await child.stop();
  throw new Error(`${child.name} did not start: ${child.tail().slice(-600)}`);
}

interface One {
  ttfb: number;
  firstContent: number;
  total: number;
  chars: number;
  cpuMs: number;
}

async function one(agent: Agent, url: string, key: string, paced: boolean): Promise<One> {
  const body = JSON.stringify({ model: 'gpt-4o', stream: true, messages: [{ role: 'system', content: 'You are a helpful assistant.' }, { role: 'user', content: paced ? 'paced answer please' : 'fast answer please' }] });
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const res = await request(url + '/v1/chat/completions', { method: 'POST', dispatcher: agent, headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body });
  let ttfb = -1;
  let firstContent = -1;
  let chars = 0;
  let buf = '';
  for await (const chunk of res.body) {
    const now = performance.now() - t0;
    if (ttfb < 0) ttfb = now;
    buf += chunk.toString();
    let i: number;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const ev = buf.slice(0, i);
      buf = buf.slice(i + 2);
      const d = ev.replace(/^data: /, '');
      if (d === '[DONE]') continue;
      try {
        const c = JSON.parse(d)?.choices?.[0]?.delta?.content;
        if (typeof c === 'string' && c.length > 0) {
          if (firstContent < 0) firstContent = now;
          chars += c.length;
        }
      } catch {
        /* ignore */
      }
    }
  }
  const cu = process.cpuUsage(c0);
  return { ttfb, firstContent, total: performance.now() - t0, chars, cpuMs: (cu.user + cu.system) / 1000 };
}

/** The fast streams through gateway child processes: CPU ms of each gateway process per stream, off-on-on-off blocks. */
async function childPhase(upstream: string): Promise<{ gatewayCpuMsPerStream: { off: ReturnType<typeof summarize>; on: ReturnType<typeof summarize> }; throughputCharsPerSec: { off: ReturnType<typeof summarize>; on: ReturnType<typeof summarize> }; cpuRatio: number }> {
  const off = await gatewayChild(upstream, false);
  const on = await gatewayChild(upstream, true);
  const agent = new Agent({ keepAliveTimeout: 10_000, connections: 8 });
  const cpu = { off: [] as number[], on: [] as number[] };
  const tput = { off: [] as number[], on: [] as number[] };
  const ratios: number[] = [];
  const stream = async (g: typeof off, mode: 'off' | 'on'): Promise<number> => {
    const c0 = processCpuMs(g.child.pid);
    const r = await one(agent, g.url, g.key, false);
    const ms = processCpuMs(g.child.pid) - c0;
    cpu[mode].push(ms);
    tput[mode].push((r.chars / r.total) * 1000);
    return ms;
  };
  try {
    for (let i = 0; i < 10; i++) {
      await one(agent, off.url, off.key, false);
      await one(agent, on.url, on.key, false);
    }
    for (let b = 0; b < BLOCKS; b++) {
      const o1 = await stream(off, 'off');
      const n1 = await stream(on, 'on');
      const n2 = await stream(on, 'on');
      const o2 = await stream(off, 'off');
      ratios.push((o1 + o2) / (n1 + n2));
    }
  } finally {
    await agent.close();
    await off.child.stop();
    await on.child.stop();
  }
  ratios.sort((a, b) => a - b);
  return { gatewayCpuMsPerStream: { off: summarize(cpu.off), on: summarize(cpu.on) }, throughputCharsPerSec: { off: summarize(tput.off), on: summarize(tput.on) }, cpuRatio: ratios[Math.floor(ratios.length / 2)] ?? NaN };
}

/** Runs the bench; returns the numbers (also printed as a table). */
export async function run(): Promise<object> {
  const up = await startUpstream();
  const off = await gateway(up.url, false);
  const on = await gateway(up.url, true);
  const agent = new Agent({ keepAliveTimeout: 10_000, connections: 8 });
  const samples = { off: { fast: [] as One[], paced: [] as One[] }, on: { fast: [] as One[], paced: [] as One[] } };
  const blockRatios: number[] = [];
  let children: Awaited<ReturnType<typeof childPhase>> | undefined;
  try {
    for (let i = 0; i < 10; i++) {
      await one(agent, off.url, off.key, false);
      await one(agent, on.url, on.key, false);
    }
    for (let b = 0; b < BLOCKS; b++) {
      const o1 = await one(agent, off.url, off.key, false);
      const n1 = await one(agent, on.url, on.key, false);
      const n2 = await one(agent, on.url, on.key, false);
      const o2 = await one(agent, off.url, off.key, false);
      samples.off.fast.push(o1, o2);
      samples.on.fast.push(n1, n2);
      blockRatios.push((o1.cpuMs + o2.cpuMs) / (n1.cpuMs + n2.cpuMs));
    }
    for (let i = 0; i < PACED_PAIRS; i++) {
      const first = i % 2 === 0 ? off : on;
      const second = first === off ? on : off;
      samples[first === off ? 'off' : 'on'].paced.push(await one(agent, first.url, first.key, true));
      samples[second === off ? 'off' : 'on'].paced.push(await one(agent, second.url, second.key, true));
    }
    children = await childPhase(up.url);
  } finally {
    await agent.close();
    for (const g of [off, on]) {
      await g.gw.close();
      rmSync(g.dir, { recursive: true, force: true });
    }
    up.server.closeAllConnections();
    await new Promise<void>((r) => up.server.close(() => r()));
  }
  const tput = (xs: One[]) => summarize(xs.map((x) => (x.chars / x.total) * 1000));
  const res = {
    fastDeltas: FAST_DELTAS,
    pacedDeltas: PACED_DELTAS,
    paceMs: PACE_MS,
    throughputCharsPerSec: { off: tput(samples.off.fast), on: tput(samples.on.fast) },
    cpuMsPerStream: { off: summarize(samples.off.fast.map((x) => x.cpuMs)), on: summarize(samples.on.fast.map((x) => x.cpuMs)) },
    ttfbMs: { off: summarize(samples.off.paced.map((x) => x.ttfb)), on: summarize(samples.on.paced.map((x) => x.ttfb)) },
    firstContentMs: { off: summarize(samples.off.paced.map((x) => x.firstContent)), on: summarize(samples.on.paced.map((x) => x.firstContent)) },
    charsDelivered: { off: samples.off.fast[0]?.chars, on: samples.on.fast[0]?.chars },
    blocks: BLOCKS,
    gatewayProcesses: children ? { gatewayCpuMsPerStream: children.gatewayCpuMsPerStream, throughputCharsPerSec: children.throughputCharsPerSec, gatewayCpuRatioPercent: Math.round(children.cpuRatio * 1000) / 10 } : undefined,
  };
  const sortedRatios = [...blockRatios].sort((a, b) => a - b);
  const cpuRatio = sortedRatios[Math.floor(sortedRatios.length / 2)] ?? NaN;
  const ratio = res.throughputCharsPerSec.on.p50 / res.throughputCharsPerSec.off.p50;
  const addedTtfb = res.ttfbMs.on.p50 - res.ttfbMs.off.p50;
  const addedFirstContent = res.firstContentMs.on.p50 - res.firstContentMs.off.p50;
  const out = { ...res, summary: { throughputRatioP50: Math.round(ratio * 1000) / 1000, cpuRatioPercent: Math.round(cpuRatio * 1000) / 10, gatewayCpuRatioPercent: res.gatewayProcesses?.gatewayCpuRatioPercent, addedTtfbMsP50: Math.round(addedTtfb * 100) / 100, addedFirstContentMsP50: Math.round(addedFirstContent * 100) / 100, targets: { addedTtfbMs: 5, throughputRatio: 0.8 } } };
  process.stdout.write(
    table([
      ['', 'guards off', 'guards on'],
      ['throughput p50 (chars/s)', fmt(res.throughputCharsPerSec.off.p50, 0), fmt(res.throughputCharsPerSec.on.p50, 0)],
      ['CPU ms / stream p50', fmt(res.cpuMsPerStream.off.p50), fmt(res.cpuMsPerStream.on.p50)],
      ['TTFB p50 (ms, paced)', fmt(res.ttfbMs.off.p50), fmt(res.ttfbMs.on.p50)],
      ['first content p50 (ms, paced)', fmt(res.firstContentMs.off.p50), fmt(res.firstContentMs.on.p50)],
      ['gateway process CPU ms / stream p50', fmt(children?.gatewayCpuMsPerStream.off.p50 ?? NaN), fmt(children?.gatewayCpuMsPerStream.on.p50 ?? NaN)],
      ['throughput p50 (chars/s, gateway processes)', fmt(children?.throughputCharsPerSec.off.p50 ?? NaN, 0), fmt(children?.throughputCharsPerSec.on.p50 ?? NaN, 0)],
    ]) + `\nthroughput ratio ${fmt(ratio, 3)} by wall-clock chars/s, ${fmt(cpuRatio * 100, 1)} % by CPU per stream (median of ${BLOCKS} off-on-on-off blocks), ${fmt((children?.cpuRatio ?? NaN) * 100, 1)} % by the gateway process's own CPU per stream (target ≥ 80 %), added TTFB ${fmt(addedTtfb)} ms (target ≤ 5), added time to first content ${fmt(addedFirstContent)} ms\n`,
  );
  return out;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href && process.env.PCL_RG_CHILD) {
  // Child mode: one gateway (guards on or off) for the gateway-process phase; stops on SIGTERM.
  gateway(process.env.PCL_RG_UPSTREAM!, process.env.PCL_RG_CHILD === 'on').then(
    (g) => {
      process.stdout.write(JSON.stringify({ url: g.url, key: g.key }) + '\n');
      process.once('SIGTERM', () => {
        void g.gw.close().finally(() => {
          rmSync(g.dir, { recursive: true, force: true });
          process.exit(0);
        });
      });
    },
    (e) => {
      process.stderr.write(String((e as Error)?.stack ?? e) + '\n');
      process.exit(1);
    },
  );
} else if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  run().then(
    (r) => process.stdout.write(JSON.stringify(r, null, 2) + '\n'),
    (e) => {
      process.stderr.write(String((e as Error)?.stack ?? e) + '\n');
      process.exit(1);
    },
  );
}
