/** The usage API of issue 4: aggregation over the audit store (SQLite and PostgreSQL), admin API access rules, and the CLI. */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Command } from 'commander';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { registerAuditCommand } from '../../src/cli/audit.js';
import { registerUsageCommand } from '../../src/cli/usage.js';
import { openDb, type Db } from '../../src/store/db.js';
import { AuditStore } from '../../src/audit/store.js';
import { newEventId, type QueuedEvent } from '../../src/audit/event.js';
import { startGateway } from '../helpers/gateway.js';
import { startMockUpstream } from '../helpers/mock-upstream.js';
import { adminApi, adminKey, dropSchema, PG_URL, pgSkipReason, uniqueSchema, waitFor } from '../identity/util.js';
import type { AuditModule } from '../../src/audit/module.js';
import { openPgSchema } from './util.js';

/** Runs the CLI in-process (commander program with the audit and usage commands); returns stdout. */
async function cli(args: string[]): Promise<string> {
  const program = new Command().exitOverride();
  registerAuditCommand(program);
  registerUsageCommand(program);
  let out = '';
  const orig = process.stdout.write.bind(process.stdout);
  (process.stdout as any).write = (chunk: string | Uint8Array) => {
    out += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
    return true;
  };
  const env = process.env.PORTCULLIS_CONFIG;
  delete process.env.PORTCULLIS_CONFIG;
  try {
    await program.parseAsync(['node', 'portcullis', ...args]);
  } finally {
    (process.stdout as any).write = orig;
    if (env !== undefined) process.env.PORTCULLIS_CONFIG = env;
  }
  return out;
}
const cleanups: Array<() => Promise<void> | void> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

const q = (ts: string, tenantId: string, keyId: string, model: string, tokensIn: number, tokensOut: number, costUsd: number, kind: 'request' | 'admin' = 'request'): QueuedEvent => ({
  event: { id: newEventId(), ts: Date.parse(ts), kind, tenantId, keyId, model, status: 200, tokensIn, tokensOut, costUsd, ...(kind === 'admin' ? { action: 'key.create' } : {}) },
});

/** Events around a day boundary: 23:30Z on Jan 1 and 03:00Z on Jan 2 are both Jan 1 in New York. */
const EVENTS = [
  q('2026-01-01T10:00:00Z', 'ta', 'k1', 'gpt-4o', 100, 10, 0.5),
  q('2026-01-01T23:30:00Z', 'ta', 'k1', 'gpt-4o-mini', 200, 20, 0.25),
  q('2026-01-02T03:00:00Z', 'ta', 'k2', 'gpt-4o', 300, 30, 1),
  q('2026-01-02T12:00:00Z', 'tb', 'k3', 'gpt-4o', 400, 40, 2),
  q('2026-01-02T12:00:00Z', 'tb', 'k3', 'gpt-4o', 0, 0, 0, 'admin'),
];

async function checkAggregation(db: Db): Promise<void> {
  const utc = new AuditStore(db.kysely, 'UTC');
  const ny = new AuditStore(db.kysely, 'America/New_York');
  await utc.insert(EVENTS.slice(0, 2));
  await ny.insert(EVENTS.slice(2));
  // The `day` column follows the store's zone at write time: re-insert everything through one zone.
  await db.kysely.deleteFrom('audit_events').execute();
  await ny.insert(EVENTS);
  const byDay = await ny.usage({ groupBy: ['day'] });
  assert.deepEqual(byDay, [
    { day: '2026-01-01', requests: 3, tokensIn: 600, tokensOut: 60, costUsd: 1.75 },
    { day: '2026-01-02', requests: 1, tokensIn: 400, tokensOut: 40, costUsd: 2 },
  ]);
  const byKey = await ny.usage({ groupBy: ['key'], tenantIds: ['ta'] });
  assert.deepEqual(byKey.map((r) => [r.keyId, r.requests, r.tokensIn]), [['k1', 2, 300], ['k2', 1, 300]]);
  const byModel = await ny.usage({ groupBy: ['tenant', 'model'], since: Date.parse('2026-01-01T12:00:00Z') });
  assert.deepEqual(byModel.map((r) => [r.tenantId, r.model, r.requests]), [['ta', 'gpt-4o', 1], ['ta', 'gpt-4o-mini', 1], ['tb', 'gpt-4o', 1]]);
  const one = await ny.usage({ groupBy: ['day'], keyId: 'k3', model: 'gpt-4o' });
  assert.deepEqual(one, [{ day: '2026-01-02', requests: 1, tokensIn: 400, tokensOut: 40, costUsd: 2 }]);
  assert.deepEqual(await ny.usage({ groupBy: ['day'], tenantIds: [] }), [], 'an operator without tenants sees nothing');
}

test('usage aggregation on SQLite: per day in the configured time zone, per key, per tenant and model', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pcl-usage-'));
  const db = await openDb({ dataDir: dir });
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }), () => db.close());
  await checkAggregation(db);
});

test('usage aggregation on PostgreSQL: same answers', async (t) => {
  const skip = await pgSkipReason();
  if (skip) return t.skip(skip);
  const schema = uniqueSchema('usage');
  cleanups.push(() => dropSchema(schema));
  const db = await openPgSchema(PG_URL, schema);
  cleanups.push(() => db.close());
  await checkAggregation(db);
});

test('usage through the gateway: admin API (operators limited to their tenants) and the CLI offline and with --url', async () => {
  const mock = await startMockUpstream();
  const dataDir = mkdtempSync(join(tmpdir(), 'pcl-usage-gw-'));
  const g = await startGateway({ dataDir, providers: { mock: { type: 'openai', baseUrl: `${mock.url}/v1` } }, routes: [{ model: 'mock-*', provider: 'mock' }], audit: { flushIntervalMs: 10 }, limits: { timeZone: 'Europe/Berlin' } });
  let closed = false;
  cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }), () => mock.close(), async () => (closed ? undefined : g.close()));
  const other = await g.newKey('beta');
  const send = async (key: string, model: string) => {
    const r = await fetch(`${g.url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }] }) });
    assert.equal(r.status, 200);
    await r.text();
  };
  for (let i = 0; i < 3; i++) await send(g.key, 'mock-a');
  await send(g.key, 'mock-b');
  await send(other, 'mock-a');
  const audit = g.gw.modules.get('audit') as AuditModule;
  await waitFor(async () => {
    await audit.flush();
    return (await audit.store.count()) >= 5;
  }, 5000);

  const owner = await adminKey(g.gw, 'owner');
  const all = await adminApi(g.url, owner, 'GET', '/admin/v1/usage?groupBy=tenant,model');
  assert.equal(all.status, 200);
  assert.equal(all.body.timeZone, 'Europe/Berlin');
  assert.equal(all.body.total.requests, 5);
  assert.equal(all.body.total.tokensIn, 5 * 11, 'provider-reported input tokens');
  assert.equal(all.body.total.tokensOut, 5 * 7);
  assert.ok(all.body.total.costUsd >= 0);
  assert.equal(all.body.data.length, 3);

  const beta = all.body.data.find((r: any) => r.model === 'mock-a' && r.requests === 1);
  const op = await adminKey(g.gw, 'operator', [beta.tenantId]);
  const mine = await adminApi(g.url, op, 'GET', '/admin/v1/usage?groupBy=key');
  assert.equal(mine.status, 200);
  assert.equal(mine.body.total.requests, 1, 'the operator sees its tenant only');
  assert.equal((await adminApi(g.url, op, 'GET', '/admin/v1/usage?tenant=default')).status, 404);
  assert.equal((await adminApi(g.url, owner, 'GET', '/admin/v1/usage?groupBy=week')).status, 400);
  const auditor = await adminKey(g.gw, 'auditor');
  assert.equal((await adminApi(g.url, auditor, 'GET', '/admin/v1/usage?tenant=beta&since=1d')).body.total.requests, 1);

  const viaUrl = await cli(['audit', 'export', '--format', 'jsonl', '--url', g.url, '--admin-key', owner, '--kind', 'request']);
  const exported = viaUrl.trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(exported.length, 5);
  assert.ok(exported.every((e) => e.kind === 'request' && e.tokensIn === 11));

  await g.close();
  closed = true;
  const u = JSON.parse(await cli(['usage', '--data-dir', g.dataDir, '--group-by', 'model', '--json']));
  assert.deepEqual(u.data.map((r: any) => [r.model, r.requests]), [['mock-a', 4], ['mock-b', 1]]);
  const table = await cli(['audit', 'search', '--data-dir', g.dataDir, '--kind', 'request', '--limit', '2']);
  assert.match(table, /^TIME\s+KIND\s+TENANT/);
  assert.match(table, /next page: --cursor \S+/);
  assert.equal(u.timeZone, 'UTC', 'offline without a config file: the default zone');
});
