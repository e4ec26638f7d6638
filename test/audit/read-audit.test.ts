/**
 * Reads of the audit trail are themselves audited: a search, a single event and a usage query
 * through the admin API each leave an admin event (who, which filters or event, how much came
 * back — never the results) that is bridged into the trail; `audit.recordReads: false` turns it off.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { adminApi, adminKey } from '../identity/util.js';
import type { AuditModule } from '../../src/audit/module.js';

const gateways: TestGateway[] = [];
after(async () => {
  for (const g of gateways) await g.close();
});

/** One chat request through the gateway, so the trail holds a request event. */
async function chat(g: TestGateway): Promise<void> {
  const res = await fetch(`${g.url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${g.key}`, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'demo', messages: [{ role: 'user', content: 'hello' }] }) });
  assert.equal(res.status, 200);
  await res.text();
}

test('searches, single-event reads and usage queries of the trail are recorded as admin events', async () => {
  const g = await startGateway({});
  gateways.push(g);
  const audit = g.gw.modules.get('audit') as AuditModule;
  await chat(g);
  await audit.flush();
  const auditor = await adminKey(g.gw, 'auditor');
  const s = await adminApi(g.url, auditor, 'GET', '/admin/v1/audit?kind=request&category=EMAIL&limit=5');
  assert.equal(s.status, 200);
  const all = await adminApi(g.url, auditor, 'GET', '/admin/v1/audit?kind=request');
  const id = all.body.data[0].id as string;
  assert.equal((await adminApi(g.url, auditor, 'GET', `/admin/v1/audit/${id}`)).status, 200);
  assert.equal((await adminApi(g.url, auditor, 'GET', '/admin/v1/usage?groupBy=key')).status, 200);
  await audit.pollAdminEvents();
  await audit.flush();
  const reads = await audit.store.search({ kind: 'admin', limit: 50 });
  const byAction = (a: string) => reads.data.filter((e) => e.action === a);
  const searches = byAction('audit.search');
  assert.equal(searches.length, 2, JSON.stringify(reads.data.map((e) => e.action)));
  const first = searches.find((e) => JSON.stringify(e.detail).includes('EMAIL'));
  assert.ok(first, 'the filtered search is recorded with its filters');
  assert.deepEqual(first.detail, { filters: { kind: 'request', category: 'EMAIL', limit: 5 }, page: 'first', returned: 0 });
  assert.equal(first.actorRole, 'auditor');
  const read = byAction('audit.read');
  assert.equal(read.length, 1);
  assert.equal(read[0]!.targetId, id, 'the event read is named');
  const usage = byAction('audit.usage');
  assert.equal(usage.length, 1);
  assert.deepEqual((usage[0]!.detail as { filters: unknown }).filters, { groupBy: 'key' });
  // Never the results: the recorded reads carry no field of the events they returned.
  for (const e of [...searches, ...read, ...usage]) assert.ok(!JSON.stringify(e).includes(all.body.data[0].requestId), 'no returned event in the record');
});

test('audit.recordReads: false leaves reads unrecorded', async () => {
  const g = await startGateway({ audit: { recordReads: false } });
  gateways.push(g);
  const audit = g.gw.modules.get('audit') as AuditModule;
  await chat(g);
  await audit.flush();
  const auditor = await adminKey(g.gw, 'auditor');
  assert.equal((await adminApi(g.url, auditor, 'GET', '/admin/v1/audit?kind=request')).status, 200);
  assert.equal((await adminApi(g.url, auditor, 'GET', '/admin/v1/usage')).status, 200);
  await audit.pollAdminEvents();
  await audit.flush();
  const reads = await audit.store.search({ kind: 'admin', limit: 50 });
  assert.deepEqual(reads.data.filter((e) => String(e.action).startsWith('audit.')).map((e) => e.action), []);
});
