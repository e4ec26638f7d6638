/**
 * Audit bench: write throughput of the durable writer (events/s) on SQLite and on PostgreSQL
 * (PCL_BENCH_PG_URL, default the test server; skipped when unreachable), and gateway throughput
 * with audit on vs off in the same run (two in-process gateways in front of the bench mock,
 * guards off in both, a warm-up each, then loaded alternately off/on/off/on; best phase of each).
 * Target: on ≥ 90 % of off.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { openDb, type Db } from '../src/store/db.js';
import { AuditStore } from '../src/audit/store.js';
import { AuditWriter } from '../src/audit/writer.js';
import { newEventId, type QueuedEvent } from '../src/audit/event.js';
import { compareOnOff, onOffTable } from './lib/on-off.js';

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
    const w = new AuditWriter({ store, spillDir: join(dir, 'spill'), queueSize: EVENTS + 1, batchSize: 500, flushIntervalMs: 50, retryIntervalMs: 1000 });
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
  // The target is for audit + metrics together: both on vs both off, in off-on-on-off blocks.
  const both = await compareOnOff({
    offConfig: { guards: { enabled: false }, audit: { enabled: false }, metrics: { enabled: false } },
    onConfig: { guards: { enabled: false }, audit: { enabled: true }, metrics: { enabled: true } },
    connections: CONNECTIONS,
    durationSec: 2,
    warmupSec: 1,
    pattern: Array.from({ length: 4 }, () => ['off', 'on', 'on', 'off'] as const).flat(),
    prefix: 'pcl-bench-audit-metrics-gw-',
  });
  const { phases, on: bOn, off: bOff, ratioPercent: ratio } = res;
  const served = phases.filter((p) => p.mode === 'on').reduce((a, p) => a + p.r.requests - p.r.errors, 0);
  const pgLine = 'eventsPerSec' in postgres ? `${postgres.eventsPerSec} events/s` : postgres.skipped;
  process.stdout.write(
    onOffTable(res) +
      `\naudit on: ${ratio} % of off (target ≥ 90 %); ${stored} events stored for ${served} requests completed in the audit-on phases (plus warm-up and in-flight ones)\n` +
      `audit + metrics:\n${onOffTable(both)}\naudit + metrics on: ${both.ratioPercent} % of off by best req/s, ${both.cpuRatioPercent} % by CPU per request (paired rounds) (target ≥ 90 %)\n` +
      `writer: SQLite ${sqlite.eventsPerSec} events/s, PostgreSQL ${pgLine} (${EVENTS} events, batches of 500)\n`,
  );
  return {
    tool: bOn.tool,
    connections: CONNECTIONS,
    durationSec: DURATION,
    off: { rps: bOff.rps, p50: bOff.p50, p99: bOff.p99 },
    on: { rps: bOn.rps, p50: bOn.p50, p99: bOn.p99 },
    ratioPercent: ratio,
    auditAndMetrics: { ratioPercent: both.ratioPercent, cpuRatioPercent: both.cpuRatioPercent },
    eventsStored: stored,
    requestsWithAuditOn: served,
    writer: { sqlite, postgres },
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  run().then((r) => process.stdout.write(JSON.stringify(r) + '\n'));
}
