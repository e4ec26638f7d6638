/**
 * Hostile input to the audit and usage admin API answers 400 or 404 in the gateway's error
 * envelope on both stores — never a 500 (PostgreSQL refuses a NUL in text and a bigint out of
 * range, where SQLite answered): NUL in a filter or an event id, times and cursors out of range,
 * `since` later than `until`, a non-decimal `limit`. Times read as documented: digits are epoch
 * milliseconds whatever their number, ages take s/m/h/d/w.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { adminApi, adminKey, dropSchema, PG_URL, pgSkipReason, uniqueSchema } from '../identity/util.js';
import type { AuditModule } from '../../src/audit/module.js';
import { newEventId } from '../../src/audit/event.js';

const cleanups: Array<() => Promise<unknown>> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

const A = '/admin/v1/audit';
const cursorOf = (s: string) => Buffer.from(s, 'utf8').toString('base64url');

/** Inputs that must be refused (status, and the `param` named when there is one). */
const REFUSED: Array<[path: string, status: number, param?: string]> = [
  [`${A}?tenant=a%00b`, 400, 'tenant'],
  [`${A}?key=a%00b`, 400, 'key'],
  [`${A}?requestId=a%00b`, 400, 'requestId'],
  [`${A}?action=a%00b`, 400, 'action'],
  [`${A}?category=a%00b`, 400, 'category'],
  ['/admin/v1/usage?model=a%00b', 400, 'model'],
  ['/admin/v1/usage?tenant=a%00b', 400, 'tenant'],
  [`${A}/a%00b`, 404],
  [`${A}/a%00b/payload`, 404],
  [`${A}?since=999999999999d`, 400, 'since'],
  [`${A}?until=999999999999w`, 400, 'until'],
  [`${A}?since=99999999999999999999999999999999w`, 400, 'since'],
  [`${A}?since=9000000000000000`, 400, 'since'],
  [`${A}?since=123456789012345678901234567890`, 400, 'since'],
  ['/admin/v1/usage?until=999999999999d', 400, 'until'],
  ['/admin/v1/usage?since=999999999999w', 400, 'since'],
  [`${A}?cursor=${cursorOf('1e300:aud_x')}`, 400, 'cursor'],
  [`${A}?cursor=${cursorOf('1.5:aud_x')}`, 400, 'cursor'],
  [`${A}?cursor=${cursorOf('99000000000000000000:aud_x')}`, 400, 'cursor'],
  [`${A}?cursor=${cursorOf('9000000000000000:aud_x')}`, 400, 'cursor'],
  [`${A}?cursor=${cursorOf('1:a\u0000b')}`, 400, 'cursor'],
  [`${A}?cursor=${cursorOf('1:')}`, 400, 'cursor'],
  [`${A}?cursor=${cursorOf(`1:${'a'.repeat(65)}`)}`, 400, 'cursor'],
  [`${A}?since=1d&until=7d`, 400, 'since'],
  ['/admin/v1/usage?since=2024-02-01&until=2024-01-01', 400, 'since'],
  [`${A}?limit=0x10`, 400, 'limit'],
  [`${A}?limit=1e3`, 400, 'limit'],
  [`${A}?limit=%2016`, 400, 'limit'],
  [`${A}?limit=0`, 400, 'limit'],
];

async function check(g: TestGateway): Promise<void> {
  const audit = g.gw.modules.get('audit') as AuditModule;
  const owner = await adminKey(g.gw, 'owner');
  // One event of 1970 (ts 1000) and one of now.
  const old = { id: newEventId(1000), ts: 1000, kind: 'request' as const, requestId: 'r-1970', tenantId: 'ten_x', model: 'm', status: 200 };
  const now = { id: newEventId(), ts: Date.now(), kind: 'request' as const, requestId: 'r-now', tenantId: 'ten_x', model: 'm', status: 200 };
  await audit.store.insert([{ event: old }, { event: now }]);

  for (const [path, status, param] of REFUSED) {
    const r = await adminApi(g.url, owner, 'GET', path);
    assert.equal(r.status, status, `${path}: ${JSON.stringify(r.body)}`);
    const e = r.body?.error;
    assert.ok(e && typeof e.message === 'string' && typeof e.type === 'string' && typeof e.code === 'string' && 'param' in e, `${path}: the gateway's error envelope: ${JSON.stringify(r.body)}`);
    assert.equal(e.code, status === 400 ? 'invalid_request' : 'not_found', path);
    if (param) assert.equal(e.param, param, `${path} names its parameter`);
  }

  const ids = async (q: string) => {
    const r = await adminApi(g.url, owner, 'GET', `${A}?tenant=ten_x&${q}`);
    assert.equal(r.status, 200, `${q}: ${JSON.stringify(r.body)}`);
    return (r.body.data as Array<{ id: string }>).map((e) => e.id);
  };
  // Digits are epoch milliseconds, however many (`0` was read as 2000-01-01, so 1970 was not found).
  assert.deepEqual(await ids('since=0'), [now.id, old.id]);
  assert.deepEqual(await ids('since=0&until=1001'), [old.id]);
  assert.deepEqual(await ids('since=1001&until=99999'), []);
  assert.deepEqual(await ids(`since=${now.ts}`), [now.id]);
  assert.deepEqual(await ids('until=2000-01-01T00:00:00Z'), [old.id]);
  // Ages in seconds and weeks; since = until is an empty range, not an error.
  assert.deepEqual(await ids('since=90s'), [now.id]);
  assert.deepEqual(await ids('since=1w&until=60s'), []);
  assert.deepEqual(await ids(`since=${now.ts}&until=${now.ts}`), []);
  assert.deepEqual(await ids('limit=1'), [now.id]);
  assert.deepEqual(await ids('limit=0016'), [now.id, old.id]);
  // A cursor the gateway made still pages.
  const p1 = await adminApi(g.url, owner, 'GET', `${A}?tenant=ten_x&limit=1`);
  assert.ok(p1.body.nextCursor);
  assert.deepEqual(await ids(`limit=1&cursor=${p1.body.nextCursor}`), [old.id]);
  assert.equal((await adminApi(g.url, owner, 'GET', `/admin/v1/usage?since=0&until=1001`)).body.total.requests, 1);
}

test('hostile audit API input is a 400/404 in the error envelope, times read as documented (SQLite)', async () => {
  const g = await startGateway({ audit: { adminPollMs: 600_000 } });
  cleanups.push(() => g.close());
  await check(g);
});

test('hostile audit API input is a 400/404 in the error envelope, times read as documented (PostgreSQL)', async (t) => {
  const skip = await pgSkipReason();
  if (skip) return t.skip(skip);
  const schema = uniqueSchema('apiin');
  cleanups.push(() => dropSchema(schema));
  const g = await startGateway({ store: { kind: 'cluster', postgresUrl: PG_URL }, audit: { adminPollMs: 600_000 } }, { pgSchema: schema });
  cleanups.push(() => g.close());
  await check(g);
});
