/**
 * Per-request cost of identify + authorize with a warm key cache on the embedded default
 * (SQLite): API-key parse, cached lookup, HMAC-SHA256 verify, principal, layered scope checks.
 * Target ≤ 20 µs. Then, in the same run, gateway throughput with authentication on vs off
 * (bench/lib/on-off.ts): two in-process gateways with the same config (guards off, every other
 * module as by default), the "off" one given an identity service that returns the bootstrap
 * key's principal without any lookup or hashing. Target: on ≥ 95 % of off. PCL_BENCH_AA=1 adds
 * an A/A control (two identical gateways) that shows how much of a difference is noise.
 * Run directly: `node --import tsx bench/identity.ts`.
 */
import { mkdtempSync, rmSync, mkdirSync, writeFileSync } from 'node:fs';
import os, { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { openDb } from '../src/store/db.js';
import { createKey, loadPepper } from '../src/identity/keys.js';
import { createIdentity, type AuthFailureCounts, type AuthResult, type Identity } from '../src/identity/service.js';
import type { Principal } from '../src/identity/types.js';
import { createPolicyEngine } from '../src/policy/engine.js';
import { policyConfigSchema, tiersConfigSchema } from '../src/policy/config.js';
import { compareOnOff, IN_SITU_ROUNDS, inSituShare, onOffTable, timed, type OnOffResult } from './lib/on-off.js';

const DURATION = Number(process.env.PCL_BENCH_IDENTITY_SECONDS ?? 2);
const CONNECTIONS = Number(process.env.PCL_BENCH_IDENTITY_CONNECTIONS ?? 32);
/** 16 short rounds in blocks of off, on, on, off, so a steady drift in machine load cancels out. */
const PATTERN = Array.from({ length: 4 }, () => ['off', 'on', 'on', 'off'] as const).flat();
/** PCL_BENCH_AA=1: also compare two identical gateways (both with authentication) — the noise floor of this machine. */
const AA = process.env.PCL_BENCH_AA === '1';

/**
 * Authentication "off": every request gets `principal` (set before the load starts) without
 * parsing, looking up or hashing the presented key. Admin authentication always fails.
 */
function fixedIdentity(): Identity & { principal?: Principal; counts?: AuthFailureCounts } {
  const self: Identity & { principal?: Principal; counts?: AuthFailureCounts } = {
    async authenticateKey() {
      return self.principal ?? null;
    },
    async authenticate(): Promise<AuthResult<Principal>> {
      return self.principal ? { ok: true, principal: self.principal } : { ok: false, reason: 'unknown_key' };
    },
    async authenticateAdmin() {
      return { ok: false, reason: 'unknown_key' };
    },
    invalidate() {},
    failureCounts: () => self.counts ?? ({ total: 0, byReason: {} } as AuthFailureCounts),
    async start() {},
    async flushLastUsed() {},
    async close() {},
  };
  return self;
}

/** Gateway throughput with authentication on (the real identity service, warm cache) vs off (or vs on again: `aa`). */
async function gatewayOnOff(aa = false): Promise<OnOffResult> {
  const base = { guards: { enabled: false } };
  const off = fixedIdentity();
  const res = await compareOnOff({
    offConfig: base,
    onConfig: base,
    ...(aa ? {} : { offOptions: { identity: off } }),
    connections: CONNECTIONS,
    durationSec: DURATION,
    warmupSec: 2,
    pattern: PATTERN,
    prefix: 'pcl-bench-identity-gw-',
    async prepare(g) {
      if (aa) return;
      // The principal the real service gives the off gateway's bootstrap key, resolved once.
      const real = createIdentity({ db: g.gw.db, pepper: loadPepper(g.dir, {}) });
      const p = await real.authenticateKey(g.key);
      off.counts = real.failureCounts();
      await real.close();
      if (!p) throw new Error('bench: the bootstrap key did not authenticate');
      off.principal = p;
    },
  });
  return res;
}

/**
 * Authentication measured inside a loaded gateway: `identity.authenticate` of the "on" gateway
 * wrapped with a timer (with the key cached it runs to completion synchronously, so its wall time
 * is its CPU time), against the CPU per request of the rounds it served. The on/off comparison
 * cannot resolve a few percent on a busy 2-vCPU machine; this can.
 */
async function inSitu(): Promise<{ authenticateUs: number; cpuUsPerRequest: number; sharePercent: number; impliedOnOffPercent: number }> {
  let spent = 0;
  let calls = 0;
  const res = await compareOnOff({
    offConfig: { guards: { enabled: false } },
    onConfig: { guards: { enabled: false } },
    connections: CONNECTIONS,
    ...IN_SITU_ROUNDS,
    prefix: 'pcl-bench-identity-insitu-',
    async prepare(_off, on) {
      const id = on.gw.identity;
      id.authenticate = timed(id.authenticate.bind(id), (ms) => {
        spent += ms;
        calls++;
      });
    },
  });
  const us = (spent * 1000) / Math.max(1, calls);
  return { authenticateUs: Math.round(us * 100) / 100, ...inSituShare(res, us) };
}

/** Runs the benchmark; returns the measured numbers. */
export async function run(opts: { iterations?: number } = {}): Promise<object> {
  const micro = await identifyAuthorize(opts);
  const res = await gatewayOnOff();
  const { on: bOn, off: bOff, ratioPercent: ratio } = res;
  const control = AA ? await gatewayOnOff(true) : undefined;
  const situ = await inSitu();
  const loadAverage = os.loadavg().map((x) => Math.round(x * 10) / 10);
  if (control) process.stdout.write(`A/A control (both gateways authenticate):\n${onOffTable(control)}\nA/A: ${control.ratioPercent} % by best req/s, ${control.cpuRatioPercent} % by CPU per request (paired rounds)\n`);
  process.stdout.write(
    `identify+authorize (warm cache, SQLite): mean ${micro.meanUs} µs, p50 ${micro.p50Us} µs, p99 ${micro.p99Us} µs (identify alone ${micro.identifyOnlyMeanUs} µs; target ≤ 20 µs)\n` +
      onOffTable(res) +
      `\nauthentication on: ${ratio} % of off by best req/s, ${res.cpuRatioPercent} % by CPU per request (paired rounds) (target ≥ 95 %); load average ${loadAverage.join(' ')} on ${os.cpus().length} CPUs\n` +
      `in situ: authenticate ${situ.authenticateUs} µs per request of ${situ.cpuUsPerRequest} µs CPU per request (gateway + mock) = ${situ.sharePercent} %, i.e. on ≈ ${situ.impliedOnOffPercent} % of off\n`,
  );
  return {
    ...micro,
    gateway: { tool: bOn.tool, connections: CONNECTIONS, durationSec: DURATION, off: { rps: bOff.rps, p50: bOff.p50, p99: bOff.p99 }, on: { rps: bOn.rps, p50: bOn.p50, p99: bOn.p99 }, ratioPercent: ratio, cpuRatioPercent: res.cpuRatioPercent, targetPercent: 95, phases: res.phases },
    ...(control ? { aaControl: { ratioPercent: control.ratioPercent, cpuRatioPercent: control.cpuRatioPercent } } : {}),
    inSitu: situ,
    loadAverage,
  };
}

/** identify + authorize per request with a warm cache, outside the gateway. */
async function identifyAuthorize(opts: { iterations?: number }) {
  const iterations = opts.iterations ?? 100_000;
  const dir = mkdtempSync(join(tmpdir(), 'pcl-bench-id-'));
  const db = await openDb({ dataDir: dir });
  try {
    const pepper = Buffer.alloc(32, 7);
    const k = await createKey(db.kysely, pepper, {
      tenant: 'bench',
      name: 'svc',
      tier: 'standard',
      scopes: { models: { allow: ['gpt-4o*', 'demo*'], deny: ['*-preview'] }, operations: ['chat', 'embeddings'], tools: ['search_*', 'get_weather'], maxOutputTokens: 4096 },
    });
    const identity = createIdentity({ db, pepper });
    const engine = createPolicyEngine({
      tiers: tiersConfigSchema.parse({ standard: { models: { deny: ['o1*'] }, maxOutputTokens: 8192 } }),
      policy: policyConfigSchema.parse({ defaults: { models: { deny: ['forbidden-*'] } }, dataBoundaries: [{ model: 'gpt-*', label: 'external' }] }),
    });
    const req = { operation: 'chat', model: 'gpt-4o-mini', tools: ['search_web'], maxOutputTokens: 1000 };
    const once = async () => {
      const r = await identity.authenticate(k.key, { ip: '10.0.0.1' });
      if (!r.ok) throw new Error('bench key refused');
      const d = engine.authorize(r.principal, req);
      if (!d.allow) throw new Error('bench request denied');
    };
    for (let i = 0; i < 5_000; i++) await once(); // warm cache and JIT
    const samples: number[] = [];
    const t0 = performance.now();
    for (let i = 0; i < iterations; i++) {
      if (i % 100 === 0) {
        const s = performance.now();
        await once();
        samples.push((performance.now() - s) * 1000);
      } else await once();
    }
    const totalMs = performance.now() - t0;
    samples.sort((a, b) => a - b);
    const pct = (p: number) => Math.round(samples[Math.min(samples.length - 1, Math.floor(p * samples.length))]! * 100) / 100;
    let authOnly = performance.now();
    for (let i = 0; i < 20_000; i++) await identity.authenticate(k.key, { ip: '10.0.0.1' });
    authOnly = ((performance.now() - authOnly) * 1000) / 20_000;
    const result = {
      benchmark: 'identify+authorize (warm cache, SQLite)',
      iterations,
      meanUs: Math.round(((totalMs * 1000) / iterations) * 100) / 100,
      p50Us: pct(0.5),
      p99Us: pct(0.99),
      identifyOnlyMeanUs: Math.round(authOnly * 100) / 100,
      targetUs: 20,
      pass: (totalMs * 1000) / iterations <= 20,
    };
    await identity.close();
    return result;
  } finally {
    await db.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const r = await run();
  console.table([r]);
  const out = join(import.meta.dirname, 'results');
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'identity.json'), JSON.stringify({ ...r, at: new Date().toISOString(), node: process.version }, null, 2) + '\n');
}
