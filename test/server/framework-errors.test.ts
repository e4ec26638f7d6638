/**
 * Requests the router refuses before any route or hook runs (fastify's framework errors): a
 * malformed %-escape in a parametric path, a path parameter over the router's limit. They get the
 * gateway's error envelope and an x-request-id, not fastify's own body; the gateway keeps serving.
 * They are recorded like any other refused request: the request log, the audit trail, the metrics.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'undici';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { auditEventOf } from '../helpers/audit.js';
import { auditOf } from '../helpers/mock-gateway.js';
import { metricValue } from '../helpers/metrics.js';

let g: TestGateway;
before(async () => {
  g = await startGateway({ audit: { flushIntervalMs: 20 } }, { env: { PORTCULLIS_METRICS_TOKEN: 'metrics-token' } });
});
after(async () => {
  await g?.close();
});

async function get(path: string, headers: Record<string, string> = {}) {
  const res = await request(`${g.url}${path}`, { headers: { authorization: `Bearer ${g.key}`, ...headers } });
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, text, json: JSON.parse(text) };
}

function assertEnvelope(r: Awaited<ReturnType<typeof get>>, status: number): void {
  assert.equal(r.status, status, r.text);
  assert.equal(typeof r.json.error?.message, 'string', r.text);
  assert.equal(r.json.error.type, 'invalid_request_error');
  assert.equal(r.json.error.code, 'invalid_request');
  assert.match(String(r.headers['content-type']), /^application\/json/);
  assert.match(String(r.headers['x-request-id']), /^req_[0-9a-f]{32}$/);
  assert.ok(r.json.error.message.includes(String(r.headers['x-request-id'])), 'the message carries the request id, as every envelope does');
  assert.ok(!/FST_ERR|is not a valid url component|exceeding the max param/.test(r.text), `fastify's own text: ${r.text}`);
}

test('a malformed %-escape in a path parameter is a 400 in the error envelope with a request id', async () => {
  for (const path of ['/v1/files/%', '/v1/files/%zz/content', '/v1/responses/%E0%A4%A', '/admin/v1/tenants/%']) {
    try {
      assertEnvelope(await get(path), 400);
    } catch (e) {
      assert.fail(`${path}: ${(e as Error).message}`);
    }
  }
});

test('a path parameter over the router limit is a 414 in the error envelope with a request id', async () => {
  const r = await get('/v1/files/' + 'a'.repeat(250));
  assertEnvelope(r, 414);
  assert.match(r.json.error.message, /too long/);
  // At the limit (200 characters) it is routed as usual: an unknown file.
  assert.equal((await get('/v1/files/' + 'a'.repeat(200))).status, 404);
});

test('a valid client x-request-id is kept on a framework error, and the gateway keeps serving', async () => {
  const r = await get('/v1/files/%', { 'x-request-id': 'client-req-1' });
  assert.equal(r.status, 400);
  assert.equal(r.headers['x-request-id'], 'client-req-1');
  const ok = await request(`${g.url}/healthz`);
  assert.equal(ok.statusCode, 200);
  await ok.body.text();
});

test('a request refused before routing is in the audit trail and the metrics (unmatched), without its query', async () => {
  const r = await get('/v1/files/%zz/content?api_key=sk-should-not-be-kept', { 'x-request-id': 'bad-url-audit-1' });
  assert.equal(r.status, 400);
  const ev = await auditEventOf(auditOf(g), 'bad-url-audit-1');
  assert.equal(ev.status, 400);
  assert.equal(ev.route, '/v1/files/%zz/content');
  assert.equal(ev.errorCode, 'invalid_request');
  assert.equal(ev.tenantId, undefined, 'not authenticated');
  assert.doesNotMatch(JSON.stringify(ev), /sk-should-not-be-kept/);
  const m = await request(`${g.url}/metrics`, { headers: { authorization: 'Bearer metrics-token' } });
  const text = await m.body.text();
  assert.ok(metricValue(text, 'portcullis_requests_total', { route: 'unmatched', status: '400' }) >= 1, 'counted under the unmatched route label');
});
