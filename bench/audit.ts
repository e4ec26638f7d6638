/**
 * Audit bench: write throughput of the durable writer (events/s) on SQLite and on PostgreSQL
 * (PCL_BENCH_PG_URL, default the test server; skipped when unreachable), and gateway throughput
 * with audit on vs off in the same run (two in-process gateways in front of the bench mock,
 * guards off in both, a warm-up each, then loaded alternately off/on/off/on; best phase of each).
 * Target: on ≥ 90 % of off. The issue's target is for audit + metrics together (both on vs both
 * off), measured three ways: by the on/off comparison of two gateways, by switching both on and
 * off inside one gateway between rounds (toggled: no second instance of every module to differ
 * by), and in situ (the audit and metrics work timed inside a loaded gateway, the writer thread's
 * CPU time read from /proc, against the gateway's CPU per request). The toggled comparison runs
 * twice: with the short request every on/off bench uses and with a 2.2 KB one (CHAT_BODY_2K).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os, { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { openDb, type Db } from '../src/store/db.js';
import { AuditStore } from '../src/audit/store.js';
import { AuditWriter } from '../src/audit/writer.js';
import { newEventId, type QueuedEvent } from '../src/audit/event.js';
import { THREAD_NAME } from '../src/audit/sqlite-rows.js';
import type { AuditModule } from '../src/audit/module.js';
import type * as AuditEventModule from '../src/audit/event.js';
import { importBuilt } from './lib/built.js';
import { threadCpuNs } from './lib/threads.js';
import type { MetricsModule } from '../src/metrics/module.js';
import { CHAT_BODY_2K, compareOnOff, IN_SITU_ROUNDS, inSituShare, onOffTable, timed, toggleOnOff, toggleTable, type BenchGateway, type ToggleResult } from './lib/on-off.js';

const DURATION = Number(process.env.PCL_BENCH_AUDIT_SECONDS ?? 5);
const CONNECTIONS = Number(process.env.PCL_BENCH_AUDIT_CONNECTIONS ?? 32);
const EVENTS = Number(process.env.PCL_BENCH_AUDIT_EVENTS ?? 20_000);
const PG_URL = process.env.PCL_BENCH_PG_URL ?? `postgresql://${encodeURIComponent(process.env.PGUSER ?? userInfo().username)}@127.0.0.1:5432/test`;

/** A realistic request event (guards, findings, hashes). */
function sample(i: number): QueuedEvent {
  return {
    event: {
      id: newEventId(),
      ts: Date.now(),
      kind: 'request',
      requestId: `req_${i}`,
      tenantId: `ten_${i % 10}`,
      keyId: `key_${i % 100}`,
      clientIp: '10.0.0.1',
      route: '/v1/chat/completions',
      api: 'chat',
      model: 'gpt-4o-mini',
      provider: 'openai',
      status: 200,
      latencyMs: 120.5,
      gatewayMs: 1.2,
      upstreamMs: 119.3,
      tokensIn: 350,
      tokensOut: 120,
      costUsd: 0.000125,
      guardAction: 'flag',
      guards: [
        { guard: 'secrets', stage: 'request', mode: 'enforce', action: 'allow', categories: [], findings: 0, latencyMs: 0.1 },
        { guard: 'pii', stage: 'request', mode: 'enforce', action: 'flag', categories: ['EMAIL'], findings: 1, latencyMs: 0.3 },
      ],
      findings: [{ detector: 'pii.email', category: 'EMAIL', severity: 'medium', score: 0.95, spanLength: 21, role: 'user' }],
      categories: ['EMAIL'],
      promptHash: 'a'.repeat(64),
      outputHash: 'b'.repeat(64),
    },
  };
}

async function writeThroughput(db: Db): Promise<{ eventsPerSec: number; events: number; ms: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'pcl-bench-audit-'));
  try {
    const store = new AuditStore(db.kysely);
    const w = new AuditWriter({ store, spillDir: join(dir, 'spill'), queueSize: EVENTS + 1, batchSize: 500, flushIntervalMs: 50, retryIntervalMs: 1000, closeTimeoutMs: 120_000 });
    const events = Array.from({ length: EVENTS }, (_, i) => sample(i));
    const t0 = performance.now();
    for (const e of events) w.push(e);
    await w.close();
    const ms = performance.now() - t0;
    if (w.stats.spilled) throw new Error(`the store failed during the bench (${w.stats.spilled} spilled)`);
    return { eventsPerSec: Math.round((EVENTS / ms) * 1000), events: EVENTS, ms: Math.round(ms) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** CPU time (ns, exact: /proc/<pid>/task/<tid>/schedstat) of the audit writer thread(s) of this process; undefined off Linux. */
function writerThreadNs(): number | undefined {
  const t = threadCpuNs();
  return t && (t.get(THREAD_NAME) ?? 0);
}

/** In-situ numbers: µs per request of each part, and their share of the gateway's CPU per request. */
export interface AuditInSitu {
  /** Wall time per request of the audit module's `done` step (event, two keyed hashes, its row and JSON, queueing). */
  auditDoneUs: number;
  /** Wall time per request of the metrics module's `done` step. */
  metricsDoneUs: number;
  /** Wall time per event of the writer's batch hand-off on the event loop (`insertPrepared` up to the postMessage). */
  batchUs: number;
  /** Wall time per request of the output tap (the response text kept for the output hash). */
  tapUs: number;
  /** CPU time of the writer thread (SQLite) per stored event, from /proc (null when unavailable). */
  writerThreadUs: number | null;
  /** CPU per request (all threads of the process: both gateways and the mock) of the "on" rounds. */
  cpuUsPerRequest: number;
  /** The parts above as a share of `cpuUsPerRequest`, and the on/off throughput that share implies (100 − share). */
  sharePercent: number;
  impliedOnOffPercent: number;
  /** The same run's on/off comparison by CPU per request (paired rounds), for reference. */
  cpuRatioPercent: number;
}

/**
 * Audit + metrics measured inside a loaded gateway. The "on" gateway's audit and metrics `done`
 * steps, the writer's batch hand-off (`store.insertPrepared` up to the postMessage) and the output tap are
 * wrapped with a timer (all synchronous: their wall time is their CPU time unless the thread is
 * preempted, so under load this errs high); the writer thread's CPU time comes from the kernel.
 * Not included: garbage collection caused by the audit's allocations, and the per-batch reply.
 */
async function inSitu(): Promise<AuditInSitu> {
  const spent = { audit: 0, metrics: 0, batch: 0, tap: 0, calls: 0 };
  let ns0: number | undefined;
  let written0 = 0;
  let writerUs: number | null = null;
  // The tap class of the build the gateways run (compareOnOff loads dist/ unless PCL_BENCH_FROM_SOURCE=1).
  const { OutputTap: GatewayTap } = await importBuilt<typeof AuditEventModule>('audit/event.js');
  const tapProto = GatewayTap.prototype as unknown as { body: (...a: unknown[]) => void };
  const tapBody = tapProto.body;
  const parts = (on: BenchGateway) => ({ audit: on.gw.modules.get('audit') as AuditModule, metrics: on.gw.modules.get('metrics') as MetricsModule });
  let res: Awaited<ReturnType<typeof compareOnOff>>;
  try {
    res = await compareOnOff({
      offConfig: { guards: { enabled: false }, audit: { enabled: false }, metrics: { enabled: false } },
      onConfig: { guards: { enabled: false }, audit: { enabled: true }, metrics: { enabled: true } },
      connections: CONNECTIONS,
      ...IN_SITU_ROUNDS,
      prefix: 'pcl-bench-audit-insitu-',
      async prepare(_off, on) {
        const { audit, metrics } = parts(on);
        const a = audit.steps!;
        const m = metrics.steps!;
        // The composed `done` step looks each module's step up per call, so replacing it here takes effect.
        a.done = timed(a.done!.bind(a), (ms) => {
          spent.audit += ms;
          spent.calls++;
        });
        m.done = timed(m.done!.bind(m), (ms) => (spent.metrics += ms));
        const store = audit.store;
        store.insertPrepared = timed(store.insertPrepared.bind(store), (ms) => (spent.batch += ms));
        tapProto.body = timed(tapBody, (ms) => (spent.tap += ms));
        // The writer thread starts with the first batch: one request (its event written) starts it
        // here, so its start-up (isolate, module loading, SQLite open) is not counted per event below.
        const probe = await fetch(`${on.url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${on.key}`, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'probe' }] }) });
        await probe.text();
        for (let t = 0; t < 100 && audit.writer.stats.written === 0; t++) {
          await new Promise((r) => setTimeout(r, 20)); // the event is queued after the response
          await audit.flush();
        }
        ns0 = writerThreadNs();
        written0 = audit.writer.stats.written;
      },
      async inspect(on) {
        const { audit } = parts(on);
        await audit.flush();
        const ns1 = writerThreadNs();
        const n = audit.writer.stats.written - written0;
        if (ns0 !== undefined && ns1 !== undefined && n > 0 && audit.store.threaded) writerUs = (ns1 - ns0) / 1000 / n;
      },
    });
  } finally {
    tapProto.body = tapBody;
  }
  const per = (ms: number) => (ms * 1000) / Math.max(1, spent.calls);
  const r2 = (x: number) => Math.round(x * 100) / 100;
  const total = per(spent.audit) + per(spent.metrics) + per(spent.batch) + per(spent.tap) + (writerUs ?? 0);
  return {
    auditDoneUs: r2(per(spent.audit)),
    metricsDoneUs: r2(per(spent.metrics)),
    batchUs: r2(per(spent.batch)),
    tapUs: r2(per(spent.tap)),
    writerThreadUs: writerUs === null ? null : r2(writerUs),
    ...inSituShare(res, total),
    cpuRatioPercent: res.cpuRatioPercent,
  };
}

/**
 * Audit + metrics switched on and off inside one gateway (toggleOnOff): "off" rounds replace both
 * modules' `done` steps (the event, its hashes, JSON and row, the writer hand-off; the metrics'
 * observations) with a no-op. What stays in "off": the audit module's `authorize` step (the output
 * tap object, ~0.2 µs per request) and an idle writer thread. Each "on" round ends with a flush,
 * so the writer thread's work for that round's events is counted in it.
 */
async function toggled(body?: string): Promise<ToggleResult> {
  const noop = () => undefined;
  let real: { audit: NonNullable<AuditModule['steps']>['done']; metrics: NonNullable<MetricsModule['steps']>['done'] } | undefined;
  return toggleOnOff({
    config: { guards: { enabled: false }, audit: { enabled: true }, metrics: { enabled: true } },
    connections: CONNECTIONS,
    durationSec: 2,
    warmupSec: 1,
    prefix: 'pcl-bench-audit-toggle-',
    ...(body ? { body } : {}),
    toggle(g, on) {
      const audit = g.gw.modules.get('audit') as AuditModule;
      const metrics = g.gw.modules.get('metrics') as MetricsModule;
      real ??= { audit: audit.steps!.done, metrics: metrics.steps!.done };
      audit.steps!.done = on ? real.audit : noop;
      metrics.steps!.done = on ? real.metrics : noop;
    },
    async endRound(g) {
      await (g.gw.modules.get('audit') as AuditModule).flush();
    },
  });
}

/** Runs the bench and returns its numbers. */
export async function run(): Promise<object> {
  const sqliteDir = mkdtempSync(join(tmpdir(), 'pcl-bench-audit-db-'));
  const sdb = await openDb({ dataDir: sqliteDir });
  let sqlite: Awaited<ReturnType<typeof writeThroughput>>;
  try {
    sqlite = await writeThroughput(sdb);
  } finally {
    await sdb.close();
    rmSync(sqliteDir, { recursive: true, force: true });
  }
  let postgres: Awaited<ReturnType<typeof writeThroughput>> | { skipped: string };
  const schema = `pcl_bench_audit_${process.pid}`;
  try {
    const pdb = await openDb({ postgresUrl: PG_URL, pgSchema: schema });
    try {
      postgres = await writeThroughput(pdb);
    } finally {
      await pdb.close();
    }
  } catch (e) {
    postgres = { skipped: `PostgreSQL at ${PG_URL}: ${(e as Error).message}` };
  } finally {
    const c = new pg.Client({ connectionString: PG_URL });
    await c.connect().then(() => c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`)).catch(() => {});
    await c.end().catch(() => {});
  }

  let stored = 0;
  // Guards off in both, as in the gateway overhead bench: the difference is the audit trail alone.
  const res = await compareOnOff({
    offConfig: { guards: { enabled: false }, audit: { enabled: false } },
    onConfig: { guards: { enabled: false }, audit: { enabled: true } },
    connections: CONNECTIONS,
    durationSec: DURATION,
    warmupSec: 1,
    prefix: 'pcl-bench-audit-gw-',
    async inspect(on) {
      const m = on.gw.modules.get('audit') as unknown as { flush(): Promise<void>; store: AuditStore };
      await m.flush();
      stored = await m.store.count();
    },
  });
  // The issue's target is for audit + metrics together: both on vs both off, in off-on-on-off blocks.
  const both = await compareOnOff({
    offConfig: { guards: { enabled: false }, audit: { enabled: false }, metrics: { enabled: false } },
    onConfig: { guards: { enabled: false }, audit: { enabled: true }, metrics: { enabled: true } },
    connections: CONNECTIONS,
    durationSec: 2,
    warmupSec: 1,
    pattern: Array.from({ length: 4 }, () => ['off', 'on', 'on', 'off'] as const).flat(),
    prefix: 'pcl-bench-audit-metrics-gw-',
  });
  const situ = await inSitu();
  const tog = await toggled();
  // The same with a 2.2 KB request: the canonical prompt and its hash grow with the prompt.
  const tog2k = await toggled(CHAT_BODY_2K);
  const loadAverage = os.loadavg().map((x) => Math.round(x * 10) / 10);
  const { phases, on: bOn, off: bOff, ratioPercent: ratio } = res;
  const served = phases.filter((p) => p.mode === 'on').reduce((a, p) => a + p.r.requests - p.r.errors, 0);
  const pgLine = 'eventsPerSec' in postgres ? `${postgres.eventsPerSec} events/s` : postgres.skipped;
  process.stdout.write(
    onOffTable(res) +
      `\naudit on: ${ratio} % of off (target ≥ 90 %); ${stored} events stored for ${served} requests completed in the audit-on phases (plus warm-up and in-flight ones)\n` +
      `audit + metrics:\n${onOffTable(both)}\naudit + metrics on: ${both.ratioPercent} % of off by best req/s, ${both.rpsPairedPercent} % by req/s of paired rounds, ${both.cpuRatioPercent} % by CPU per request (paired rounds) (target ≥ 90 %)\n` +
      `audit + metrics toggled in one gateway:\n${toggleTable(tog)}\ntoggled: on ${tog.rpsPairedPercent} % of off by req/s of paired rounds, ${tog.cpuRatioPercent} % by CPU per request, ${tog.mainRatioPercent} % by the event loop's CPU per request (target ≥ 90 %); medians µs per request off → on: ${Object.keys(tog.threadsUs.on).map((k) => `${k} ${tog.threadsUs.off[k] ?? 0} → ${tog.threadsUs.on[k]}`).join(', ')}\n` +
      `audit + metrics toggled, 2.2 KB requests (CHAT_BODY_2K):\n${toggleTable(tog2k)}\ntoggled, 2.2 KB requests: on ${tog2k.rpsPairedPercent} % of off by req/s of paired rounds, ${tog2k.cpuRatioPercent} % by CPU per request, ${tog2k.mainRatioPercent} % by the event loop's CPU per request; medians µs per request off → on: ${Object.keys(tog2k.threadsUs.on).map((k) => `${k} ${tog2k.threadsUs.off[k] ?? 0} → ${tog2k.threadsUs.on[k]}`).join(', ')}\n` +
      `in situ (audit + metrics on): audit done ${situ.auditDoneUs} µs + metrics done ${situ.metricsDoneUs} µs + batch hand-off ${situ.batchUs} µs + output tap ${situ.tapUs} µs per request on the event loop, writer thread ${situ.writerThreadUs ?? 'n/a'} µs CPU per event; of ${situ.cpuUsPerRequest} µs CPU per request = ${situ.sharePercent} %, i.e. on ≈ ${situ.impliedOnOffPercent} % of off (the same run's on/off by CPU: ${situ.cpuRatioPercent} %)\n` +
      `writer: SQLite ${sqlite.eventsPerSec} events/s, PostgreSQL ${pgLine} (${EVENTS} events, batches of 500); load average ${loadAverage.join(' ')} on ${os.cpus().length} CPUs\n`,
  );
  return {
    tool: bOn.tool,
    connections: CONNECTIONS,
    durationSec: DURATION,
    off: { rps: bOff.rps, p50: bOff.p50, p99: bOff.p99 },
    on: { rps: bOn.rps, p50: bOn.p50, p99: bOn.p99 },
    ratioPercent: ratio,
    auditAndMetrics: {
      ratioPercent: both.ratioPercent,
      rpsPairedPercent: both.rpsPairedPercent,
      cpuRatioPercent: both.cpuRatioPercent,
      inSitu: situ,
      toggled: { rpsPairedPercent: tog.rpsPairedPercent, cpuRatioPercent: tog.cpuRatioPercent, mainRatioPercent: tog.mainRatioPercent, threadsUs: tog.threadsUs },
      toggled2k: { rpsPairedPercent: tog2k.rpsPairedPercent, cpuRatioPercent: tog2k.cpuRatioPercent, mainRatioPercent: tog2k.mainRatioPercent, threadsUs: tog2k.threadsUs },
    },
    eventsStored: stored,
    requestsWithAuditOn: served,
    writer: { sqlite, postgres },
    loadAverage,
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  run().then((r) => process.stdout.write(JSON.stringify(r) + '\n'));
}
