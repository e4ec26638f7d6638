/**
 * "Feature on vs off" gateway throughput in one run: two in-process gateways that differ only in
 * a config section, loaded alternately (off, on, off, on) with the same 1-KiB-ish chat body, best
 * round of each mode compared. Shared by the audit, metrics (and any later on/off) benches.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { validateConfig } from '../../src/config/load.js';
import { createGateway, createLogger, type Gateway } from '../../src/index.js';
import { startBenchMock } from './mock-upstream.js';
import { runLoad, type LoadResult } from './load.js';
import { fmt, table } from './table.js';

/** A started bench gateway. */
export interface BenchGateway {
  gw: Gateway;
  url: string;
  key: string;
  dir: string;
}

/** Starts an in-process gateway routing every model to `upstream`, with `extra` config merged in. */
export async function startBenchGateway(upstream: string, extra: Record<string, unknown>, prefix = 'pcl-bench-gw-'): Promise<BenchGateway> {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const config = validateConfig({
    dataDir: dir,
    server: { host: '127.0.0.1', port: 0 },
    log: { level: 'silent' },
    providers: { mock: { type: 'openai', baseUrl: upstream + '/v1' } },
    routes: [{ model: '*', provider: 'mock' }],
    ...extra,
  });
  const gw = await createGateway(config, { logger: createLogger('silent'), env: {} });
  const { url } = await gw.listen();
  return { gw, url, key: gw.bootstrapKey!.key, dir };
}

/** Best round per mode and the on/off ratio. */
export interface OnOffResult {
  phases: Array<{ mode: 'off' | 'on'; r: LoadResult }>;
  off: LoadResult;
  on: LoadResult;
  ratioPercent: number;
}

const BODY = JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'system', content: 'You are a helpful assistant.' }, { role: 'user', content: 'Write one sentence about the sea and the weather today.' }], max_tokens: 64 });

/**
 * Runs the alternating load against gateways built with `offConfig` and `onConfig`; `inspect`
 * sees the "on" gateway before it is closed (e.g. to count stored audit events).
 */
export async function compareOnOff(opts: {
  offConfig: Record<string, unknown>;
  onConfig: Record<string, unknown>;
  connections: number;
  durationSec: number;
  warmupSec?: number;
  prefix?: string;
  inspect?: (on: BenchGateway) => Promise<void>;
}): Promise<OnOffResult> {
  const mock = await startBenchMock();
  const upstream = `http://127.0.0.1:${mock.port}`;
  const off = await startBenchGateway(upstream, opts.offConfig, opts.prefix);
  const on = await startBenchGateway(upstream, opts.onConfig, opts.prefix);
  const load = (g: BenchGateway, durationSec: number) =>
    runLoad({ url: `${g.url}/v1/chat/completions`, body: BODY, headers: { authorization: `Bearer ${g.key}`, 'content-type': 'application/json' }, connections: opts.connections, durationSec });
  const phases: OnOffResult['phases'] = [];
  try {
    if (opts.warmupSec) for (const g of [off, on]) await load(g, opts.warmupSec);
    for (const mode of ['off', 'on', 'off', 'on'] as const) phases.push({ mode, r: await load(mode === 'on' ? on : off, opts.durationSec) });
    await opts.inspect?.(on);
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
  return { phases, off: bOff, on: bOn, ratioPercent: Math.round((bOn.rps / bOff.rps) * 1000) / 10 };
}

/** The per-round table of an on/off run. */
export function onOffTable(res: OnOffResult): string {
  return table([['mode', 'rps', 'p50 ms', 'p99 ms', 'errors'], ...res.phases.map((p) => [p.mode, fmt(p.r.rps, 0), fmt(p.r.p50), fmt(p.r.p99), p.r.errors])]);
}
