/** Bad input gets a clear OpenAI-shaped error with the right status, never a crash or a stack trace. */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'undici';
import { gzipSync } from 'node:zlib';
import { startGateway, type TestGateway } from '../helpers/gateway.js';

let g: TestGateway;
before(async () => {
  g = await startGateway({ server: { bodyLimit: '64kb', maxJsonDepth: 32 } });
});
after(() => g.close());

async function post(path: string, body: string | Buffer, headers: Record<string, string> = {}) {
  const res = await request(`${g.url}${path}`, { method: 'POST', headers: { authorization: `Bearer ${g.key}`, 'content-type': 'application/json', ...headers }, body });
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, text, json: (() => { try { return JSON.parse(text); } catch { return null; } })() };
}

function assertEnvelope(r: { status: number; headers: Record<string, unknown>; text: string; json: any }, status: number, code: string) {
  assert.equal(r.status, status, r.text);
  assert.ok(r.json?.error, 'OpenAI error envelope');
  assert.equal(r.json.error.code, code);
  assert.equal(typeof r.json.error.message, 'string');
  assert.ok(r.headers['x-request-id'], 'x-request-id header');
  assert.ok(!/\bat [\w.<>]+ \(|node_modules|\.ts:\d+/.test(r.text), 'no stack trace');
}

const chat = (extra: Record<string, unknown> = {}) => JSON.stringify({ model: 'demo', messages: [{ role: 'user', content: 'hi' }], ...extra });

test('malformed JSON → 400 invalid_json', async () => {
  assertEnvelope(await post('/v1/chat/completions', '{"model": "demo", "messages": ['), 400, 'invalid_json');
  assertEnvelope(await post('/v1/chat/completions', ''), 400, 'invalid_json');
});

test('body over the limit → 413', async () => {
  assertEnvelope(await post('/v1/chat/completions', chat({ pad: 'x'.repeat(70 * 1024) })), 413, 'request_too_large');
});

test('invalid UTF-8 → 400 invalid_encoding', async () => {
  const buf = Buffer.concat([Buffer.from('{"model":"demo","messages":[{"role":"user","content":"'), Buffer.from([0xc3, 0x28, 0xff]), Buffer.from('"}]}')]);
  assertEnvelope(await post('/v1/chat/completions', buf), 400, 'invalid_encoding');
});

test('JSON nested deeper than the limit → 400', async () => {
  const deep = '{"model":"demo","messages":[{"role":"user","content":"hi"}],"x":' + '['.repeat(5000) + ']'.repeat(5000) + '}';
  assertEnvelope(await post('/v1/chat/completions', deep), 400, 'invalid_json');
});

test('wrong types → 400 naming the parameter', async () => {
  const r1 = await post('/v1/chat/completions', JSON.stringify({ model: 42, messages: [] }));
  assertEnvelope(r1, 400, 'invalid_request');
  assert.equal(r1.json.error.param, 'model');
  const r2 = await post('/v1/chat/completions', JSON.stringify({ model: 'demo', messages: 'hello' }));
  assert.equal(r2.json.error.param, 'messages');
  const r3 = await post('/v1/chat/completions', chat({ stream: 'yes' }));
  assert.equal(r3.json.error.param, 'stream');
  const r4 = await post('/v1/chat/completions', '[1,2,3]');
  assertEnvelope(r4, 400, 'invalid_request');
  const r5 = await post('/v1/messages', JSON.stringify({ model: 'demo', messages: [{ role: 'user', content: 'hi' }] }));
  assert.equal(r5.json.error.param, 'max_tokens');
  const r6 = await post('/v1/chat/completions', JSON.stringify({ model: 'demo', messages: [null] }));
  assertEnvelope(r6, 400, 'invalid_request');
});

test('unknown model → 404 model_not_found', async () => {
  const r = await post('/v1/chat/completions', chat({ model: 'gpt-9-ultra' }));
  assertEnvelope(r, 404, 'model_not_found');
  assertEnvelope(await post('/v1/chat/completions', chat({ model: 'x'.repeat(5000) })), 404, 'model_not_found');
});

test('missing and invalid keys → 401', async () => {
  const noKey = await request(`${g.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: chat() });
  assert.equal(noKey.statusCode, 401);
  assert.equal(JSON.parse(await noKey.body.text()).error.code, 'invalid_api_key');
  for (const bad of ['Bearer nonsense', 'Bearer pcl_AAAAAAAAAAAA_' + 'A'.repeat(43), 'Basic abc', 'Bearer ' + g.key.slice(0, -1) + (g.key.endsWith('A') ? 'B' : 'A')]) {
    assertEnvelope(await post('/v1/chat/completions', chat(), { authorization: bad }), 401, 'invalid_api_key');
  }
});

test('unsupported route → 404; wrong content type → 415', async () => {
  const r = await request(`${g.url}/v1/engines/davinci`, { method: 'GET', headers: { authorization: `Bearer ${g.key}` } });
  assert.equal(r.statusCode, 404);
  assert.equal(JSON.parse(await r.body.text()).error.code, 'unknown_url');
  assertEnvelope(await post('/v1/chat/completions', 'model=demo', { 'content-type': 'application/x-www-form-urlencoded' }), 415, 'unsupported_media_type');
});

test('compressed or non-UTF-8 bodies → 415 saying why; a UTF-8 byte order mark is accepted', async () => {
  const gz = await post('/v1/chat/completions', gzipSync(Buffer.from(chat())), { 'content-encoding': 'gzip' });
  assertEnvelope(gz, 415, 'unsupported_media_type');
  assert.match(gz.json.error.message, /Content-Encoding 'gzip' is not supported/);
  const u16 = await post('/v1/chat/completions', Buffer.from(chat(), 'utf16le'), { 'content-type': 'application/json; charset=utf-16le' });
  assertEnvelope(u16, 415, 'unsupported_media_type');
  assert.match(u16.json.error.message, /charset utf-16le/);
  assert.equal((await post('/v1/chat/completions', chat(), { 'content-type': 'application/json; charset=UTF-8' })).status, 200);
  assert.equal((await post('/v1/chat/completions', chat(), { 'content-encoding': 'identity' })).status, 200);
  assert.equal((await post('/v1/chat/completions', Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(chat())]))).status, 200, 'BOM ignored (RFC 8259)');
});

test('prototype-pollution keys are inert', async () => {
  const r = await post('/v1/chat/completions', '{"model":"demo","messages":[{"role":"user","content":"hi"}],"__proto__":{"polluted":true},"constructor":{"prototype":{"polluted":true}}}');
  assert.equal(r.status, 200);
  assert.equal(({} as any).polluted, undefined);
});

test('the gateway keeps serving after all of the above', async () => {
  const r = await post('/v1/chat/completions', chat());
  assert.equal(r.status, 200);
  const h = await request(`${g.url}/readyz`);
  assert.equal(h.statusCode, 200);
  await h.body.text();
});
