/**
 * The audit trail while PostgreSQL itself goes down: a private PostgreSQL server (its own data
 * directory and port, so the shared test server is never touched) is stopped in immediate mode
 * (a crash: every backend killed, no checkpoint) in the middle of the load and started again.
 * No event may be lost, none stored twice. Skipped with a reason when the PostgreSQL server
 * binaries are missing or a private server cannot be started here — except with CI=true.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { openDb } from '../../src/store/db.js';
import { AuditStore } from '../../src/audit/store.js';
import { AuditWriter } from '../../src/audit/writer.js';
import { newEventId, type QueuedEvent } from '../../src/audit/event.js';
import { freePort } from '../helpers/services.js';

const cleanups: Array<() => Promise<void> | void> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The newest PostgreSQL server binaries of the Debian layout, if any. */
function pgBin(): string | undefined {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root)
    .filter((v) => existsSync(join(root, v, 'bin', 'initdb')))
    .sort((a, b) => Number(b) - Number(a));
  return versions.length ? join(root, versions[0]!, 'bin') : undefined;
}

/** A private PostgreSQL server in a temporary directory (run as `postgres` when this is root: initdb refuses root). */
async function privateServer(bin: string) {
  const dir = mkdtempSync(join(tmpdir(), 'pcl-pg-'));
  const data = join(dir, 'data');
  const port = await freePort();
  const asRoot = userInfo().uid === 0;
  let uid = -1;
  if (asRoot) {
    uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
    chownSync(dir, uid, gid);
  }
  const run = (cmd: string, args: string[]) => execFileSync(asRoot ? 'runuser' : join(bin, cmd), asRoot ? ['-u', 'postgres', '--', join(bin, cmd), ...args] : args, { stdio: 'pipe', timeout: 60_000 });
  run('initdb', ['-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8']);
  const opts = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=20`;
  const start = () => run('pg_ctl', ['-D', data, '-o', opts, '-l', join(dir, 'log'), '-w', '-t', '60', 'start']);
  const stop = (mode: 'immediate' | 'fast') => run('pg_ctl', ['-D', data, '-m', mode, '-w', '-t', '60', 'stop']);
  start();
  return {
    url: `postgresql://postgres@127.0.0.1:${port}/postgres`,
    start,
    stop,
    remove() {
      try {
        stop('immediate');
      } catch {
        /* already stopped */
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function ev(i: number): QueuedEvent {
  return { event: { id: newEventId(), ts: Date.now(), kind: 'request', requestId: `r${i}`, tenantId: 'ten_a', keyId: 'k1', model: 'm', status: 200, tokensIn: 10, tokensOut: 5, costUsd: 0.001 } };
}

test('PostgreSQL stopped (immediate) mid-load and started again: no event lost, none duplicated', async (t) => {
  const bin = pgBin();
  let server: Awaited<ReturnType<typeof privateServer>> | undefined;
  let reason: string | undefined;
  if (!bin) reason = 'no PostgreSQL server binaries under /usr/lib/postgresql';
  else {
    try {
      server = await privateServer(bin);
    } catch (e) {
      reason = `a private PostgreSQL server could not be started: ${String((e as { stderr?: Buffer }).stderr ?? (e as Error).message).trim().slice(0, 300)}`;
    }
  }
  if (!server) {
    if (process.env.CI === 'true') assert.fail(`${reason} (required with CI=true)`);
    return t.skip(reason);
  }
  cleanups.push(() => server!.remove());
  const db = await openDb({ postgresUrl: server.url });
  cleanups.push(() => db.close());
  const spill = mkdtempSync(join(tmpdir(), 'pcl-pgr-spill-'));
  cleanups.push(() => rmSync(spill, { recursive: true, force: true }));
  const w = new AuditWriter({ store: new AuditStore(db.kysely), spillDir: spill, queueSize: 1000, batchSize: 100, flushIntervalMs: 10, retryIntervalMs: 100, closeTimeoutMs: 30_000 });
  const want: string[] = [];
  const N = 3000;
  let restarted = false;
  for (let i = 0; i < N; i++) {
    if (i === 1000) server.stop('immediate');
    if (i === 2000) {
      server.start();
      restarted = true;
    }
    const e = ev(i);
    want.push(e.event.id);
    w.push(e);
    if (i % 50 === 0) await sleep(10);
  }
  assert.ok(restarted);
  assert.ok(w.stats.spilled > 0, `the outage was noticed (stats ${JSON.stringify(w.stats)})`);
  await w.close();
  const direct = new pg.Client({ connectionString: server.url });
  await direct.connect();
  try {
    const r = await direct.query('select id from audit_events');
    const got = r.rows.map((x: { id: string }) => x.id);
    assert.equal(got.length, N, `every event stored exactly once (stats ${JSON.stringify(w.stats)})`);
    assert.deepEqual(new Set(got), new Set(want));
  } finally {
    await direct.end();
  }
});
