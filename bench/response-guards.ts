/**
 * Response-guard bench: streamed chat responses through two gateways in the same process, one
 * with the response guards off and one with them on (defaults plus the canary), against the
 * same local upstream. Measures, interleaved in the same run:
 *  - streamed throughput (content characters per wall second, and CPU ms per stream) with an
 *    upstream that sends 600 small deltas as fast as it can;
 *  - time to first byte and time to first content character with a paced upstream (one delta
 *    every 2 ms), i.e. what the hold-back adds for a real-time stream.
 * Run: `npm run bench -- response-guards` or `node --import tsx bench/response-guards.ts`.
 */
import { createServer, type Server } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Agent, request } from 'undici';
import { validateConfig } from '../src/config/load.js';
import { createGateway, createLogger, type Gateway } from '../src/index.js';
import { prose } from './guards.js';
import { summarize } from './lib/streams.js';
import { table, fmt } from './lib/table.js';

const FAST_DELTAS = 600;
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

/** Runs the bench; returns the numbers (also printed as a table). */
export async function run(): Promise<object> {
  const up = await startUpstream();
  const off = await gateway(up.url, false);
  const on = await gateway(up.url, true);
  const agent = new Agent({ keepAliveTimeout: 10_000, connections: 8 });
  const samples = { off: { fast: [] as One[], paced: [] as One[] }, on: { fast: [] as One[], paced: [] as One[] } };
  try {
    for (let i = 0; i < 5; i++) {
      await one(agent, off.url, off.key, false);
      await one(agent, on.url, on.key, false);
    }
    for (let i = 0; i < 40; i++) {
      samples.off.fast.push(await one(agent, off.url, off.key, false));
      samples.on.fast.push(await one(agent, on.url, on.key, false));
    }
    for (let i = 0; i < 15; i++) {
      samples.off.paced.push(await one(agent, off.url, off.key, true));
      samples.on.paced.push(await one(agent, on.url, on.key, true));
    }
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
  };
  const ratio = res.throughputCharsPerSec.on.p50 / res.throughputCharsPerSec.off.p50;
  const addedTtfb = res.ttfbMs.on.p50 - res.ttfbMs.off.p50;
  const addedFirstContent = res.firstContentMs.on.p50 - res.firstContentMs.off.p50;
  const out = { ...res, summary: { throughputRatioP50: Math.round(ratio * 1000) / 1000, addedTtfbMsP50: Math.round(addedTtfb * 100) / 100, addedFirstContentMsP50: Math.round(addedFirstContent * 100) / 100, targets: { addedTtfbMs: 5, throughputRatio: 0.8 } } };
  process.stdout.write(
    table([
      ['', 'guards off', 'guards on'],
      ['throughput p50 (chars/s)', fmt(res.throughputCharsPerSec.off.p50, 0), fmt(res.throughputCharsPerSec.on.p50, 0)],
      ['CPU ms / stream p50', fmt(res.cpuMsPerStream.off.p50), fmt(res.cpuMsPerStream.on.p50)],
      ['TTFB p50 (ms, paced)', fmt(res.ttfbMs.off.p50), fmt(res.ttfbMs.on.p50)],
      ['first content p50 (ms, paced)', fmt(res.firstContentMs.off.p50), fmt(res.firstContentMs.on.p50)],
    ]) + `\nthroughput ratio ${fmt(ratio, 3)} (target ≥ 0.8), added TTFB ${fmt(addedTtfb)} ms (target ≤ 5), added time to first content ${fmt(addedFirstContent)} ms\n`,
  );
  return out;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  run().then(
    (r) => process.stdout.write(JSON.stringify(r, null, 2) + '\n'),
    (e) => {
      process.stderr.write(String((e as Error)?.stack ?? e) + '\n');
      process.exit(1);
    },
  );
}
