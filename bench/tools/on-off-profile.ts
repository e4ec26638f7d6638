/**
 * Where a feature's cost goes, function by function: two in-process gateways (by default audit +
 * metrics off vs on, guards off in both) loaded in alternating 1 s rounds under one V8 CPU profile
 * of the event-loop thread; samples are split by round and reported per request for each mode
 * (bench/lib/profile-rounds.ts). Writer or other worker threads are not in the profile.
 *
 *   node --import tsx bench/tools/on-off-profile.ts [--rounds 10] [--seconds 1] [--top 30] [--inclusive] [--out FILE]
 *
 * Sampled time undercounts CPU time (a sample is missed while the thread is descheduled or in
 * some native code), so read the columns against each other, not as absolute CPU. Local only: the
 * mock upstream and wrk/autocannon on 127.0.0.1, bounded by rounds × seconds.
 */
import { Session } from 'node:inspector/promises';
import { rmSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { startBenchMock } from '../lib/mock-upstream.js';
import { loadBenchGateway, startBenchGateway, type BenchGateway } from '../lib/on-off.js';
import { attribute, type CpuProfile, type ProfileRound } from '../lib/profile-rounds.js';
import { fmt, table } from '../lib/table.js';

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string', default: '10' },
    seconds: { type: 'string', default: '1' },
    top: { type: 'string', default: '30' },
    connections: { type: 'string', default: '32' },
    inclusive: { type: 'boolean', default: false },
    out: { type: 'string' },
  },
});
const ROUNDS = Math.max(1, Math.min(100, Number(args.rounds)));
const SECONDS = Math.max(1, Math.min(10, Number(args.seconds)));
const INTERVAL_US = 100;
const MODES = [
  { name: 'off', config: { guards: { enabled: false }, audit: { enabled: false }, metrics: { enabled: false } } },
  { name: 'on', config: { guards: { enabled: false }, audit: { enabled: true }, metrics: { enabled: true } } },
] as const;

const mock = await startBenchMock();
const gws: BenchGateway[] = [];
const session = new Session();
try {
  for (const m of MODES) gws.push(await startBenchGateway(`http://127.0.0.1:${mock.port}`, m.config, 'pcl-profile-'));
  const load = (i: number, sec: number) => loadBenchGateway(gws[i]!, Number(args.connections), sec);
  for (let i = 0; i < gws.length; i++) await load(i, 2); // warm-up, not profiled
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: INTERVAL_US });
  await session.post('Profiler.start');
  const rounds: ProfileRound[] = [];
  const now = () => Number(process.hrtime.bigint() / 1000n);
  for (let r = 0; r < ROUNDS; r++) {
    for (const mode of (r % 2 ? [1, 0] : [0, 1]) as Array<0 | 1>) {
      const t0 = now();
      const res = await load(mode, SECONDS);
      rounds.push({ mode, t0, t1: now(), requests: res.requests - res.errors });
    }
  }
  const { profile } = (await session.post('Profiler.stop')) as { profile: CpuProfile };
  if (args.out) writeFileSync(args.out, JSON.stringify({ profile, rounds }));
  const split = attribute(profile, rounds, INTERVAL_US);
  const rows = (args.inclusive ? split.inclusive : split.self).slice(0, Number(args.top));
  process.stdout.write(
    `${ROUNDS} rounds of ${SECONDS} s each mode; requests ${MODES[0].name} ${split.requests[0]}, ${MODES[1].name} ${split.requests[1]}; ` +
      `sampled busy µs per request ${fmt(split.busyUs[0])} vs ${fmt(split.busyUs[1])} (${args.inclusive ? 'inclusive' : 'self'} time, largest difference first)\n` +
      table([['function', `${MODES[0].name} µs/req`, `${MODES[1].name} µs/req`, 'difference'], ...rows.map((r) => [r.fn, fmt(r.us[0]), fmt(r.us[1]), fmt(r.diff)])]) +
      '\n',
  );
} finally {
  session.disconnect();
  for (const g of gws) {
    await g.gw.close();
    rmSync(g.dir, { recursive: true, force: true });
  }
  await mock.close();
}
