/**
 * Payload capture through a real gateway: the request is captured as the client sent it (before
 * the policy step strips tools), and `audit.payloads.maxBytes` caps UTF-8 bytes, cut between characters.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createKey, loadPepper } from '../../src/identity/keys.js';
import type { AuditModule } from '../../src/audit/module.js';
import { auditEventOf } from '../helpers/audit.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { defaultChat, startMockUpstream, type MockUpstream } from '../helpers/mock-upstream.js';
import { adminApi, adminKey } from '../identity/util.js';

const MASTER = '5e'.repeat(32);
const MAX_BYTES = 1024;
const MARKER = '\n[truncated]';
/** 3-byte CJK characters and a 4-byte emoji (a surrogate pair in UTF-16), 10 bytes a round. */
const WIDE = '漢字😀'.repeat(300);
const TOOLS = [
  { type: 'function', function: { name: 'get_weather', description: 'Current weather for a city.', parameters: { type: 'object', properties: { city: { type: 'string' } } } } },
  { type: 'function', function: { name: 'run_sql', description: 'Runs a read-only SQL query.', parameters: { type: 'object', properties: { query: { type: 'string' } } } } },
];

let mock: MockUpstream;
let g: TestGateway;
let audit: AuditModule;
let auditor: string;

before(async () => {
  mock = await startMockUpstream((req, res) => defaultChat(req, res, 7, req.body?.messages?.[0]?.content === 'wide please' ? WIDE : 'ok'));
  g = await startGateway(
    {
      providers: { mock: { type: 'openai', baseUrl: `${mock.url}/v1` } },
      routes: [{ model: 'mock-*', provider: 'mock' }],
      guards: { tenants: { forensic: { tools: { onDisallowed: 'strip' } } } },
      audit: { flushIntervalMs: 20, payloads: { enabled: true, tenants: ['forensic'], maxBytes: MAX_BYTES } },
    },
    { env: { PORTCULLIS_MASTER_KEY: MASTER } },
  );
  audit = g.gw.modules.get('audit') as AuditModule;
  auditor = await adminKey(g.gw, 'auditor');
});
after(async () => {
  await g?.close();
  await mock?.close();
});

/** Sends `body` (serialized as given) and returns the decrypted capture of its audit event. */
async function captured(key: string, body: Record<string, unknown>): Promise<{ sent: string; received: string; request: string; response: string }> {
  const sent = JSON.stringify(body);
  const res = await fetch(`${g.url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: sent });
  const received = await res.text();
  assert.equal(res.status, 200, received);
  const ev = await auditEventOf(audit, res.headers.get('x-request-id')!);
  assert.equal(ev.payload, true);
  const d = await adminApi(g.url, auditor, 'GET', `/admin/v1/audit/${ev.id}/payload`);
  assert.equal(d.status, 200);
  return { sent, received, request: d.body.request, response: d.body.response };
}

test('the captured request is the body the client sent, before the policy step strips a tool', async () => {
  // Key scopes allow run_sql only; the tenant strips disallowed tools instead of refusing.
  const key = (await createKey(g.gw.db.kysely, loadPepper(g.dataDir, {}), { tenant: 'forensic', name: 'scoped', scopes: { tools: ['run_sql'] } })).key;
  const c = await captured(key, { model: 'mock-1', messages: [{ role: 'user', content: 'hello' }], tools: TOOLS });
  const upstream = mock.requests.at(-1)!.body;
  assert.deepEqual(upstream.tools.map((t: any) => t.function.name), ['run_sql'], 'the policy stripped get_weather');
  assert.equal(c.request, c.sent, 'captured as sent');
  assert.deepEqual(JSON.parse(c.request).tools.map((t: any) => t.function.name), ['get_weather', 'run_sql']);
});

/** Checks a capture cut at MAX_BYTES: valid UTF-8 of at most MAX_BYTES bytes, as long as fits, a prefix of `whole`. */
function assertCut(capture: string, whole: string, what: string): void {
  assert.ok(capture.endsWith(MARKER), `${what}: marked as truncated`);
  const head = capture.slice(0, -MARKER.length);
  const bytes = Buffer.byteLength(head, 'utf8');
  assert.ok(bytes <= MAX_BYTES, `${what}: ${bytes} bytes > ${MAX_BYTES}`);
  assert.ok(bytes > MAX_BYTES - 4, `${what}: cut at the last whole character (${bytes} bytes)`);
  // The decryption decodes the plaintext as UTF-8: a split character would come back as U+FFFD.
  assert.ok(!head.includes('\uFFFD'), `${what}: valid UTF-8, no split character`);
  assert.ok(whole.startsWith(head), `${what}: a prefix of the whole body`);
}

test('maxBytes caps UTF-8 bytes, cut between characters (CJK and emoji), request and response, body and stream', async () => {
  const key = await g.newKey('forensic');
  for (const stream of [false, true]) {
    const c = await captured(key, { model: 'mock-1', messages: [{ role: 'user', content: 'wide please' }, { role: 'user', content: WIDE }], ...(stream ? { stream: true } : {}) });
    assert.ok(Buffer.byteLength(c.sent) > MAX_BYTES && c.sent.length > MAX_BYTES);
    assertCut(c.request, c.sent, `request (${stream ? 'stream' : 'body'})`);
    assert.ok(Buffer.byteLength(c.received) > MAX_BYTES);
    assertCut(c.response, c.received, `response (${stream ? 'stream' : 'body'})`);
  }
});

test('a body within maxBytes is captured whole, without the marker', async () => {
  const key = await g.newKey('forensic');
  const c = await captured(key, { model: 'mock-1', messages: [{ role: 'user', content: '漢字😀'.repeat(20) }] });
  assert.equal(c.request, c.sent);
  assert.equal(c.response, c.received);
});
