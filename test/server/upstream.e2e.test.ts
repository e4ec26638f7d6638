/** The proxy against a local mock upstream: credentials, routing, streaming usage, and faults. */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { defaultChat, startMockUpstream, type MockUpstream } from '../helpers/mock-upstream.js';
import { auditEventOf } from '../helpers/audit.js';
import type { AuditModule } from '../../src/audit/module.js';

const UPSTREAM_KEY = 'upstream-' + 'secret-' + 'value-0001';
const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

async function setup(upstream: Partial<Record<string, number>> = {}): Promise<{ g: TestGateway; mock: MockUpstream; client: OpenAI }> {
  const mock = await startMockUpstream();
  const g = await startGateway(
    {
      providers: { mock: { type: 'openai', baseUrl: `${mock.url}/v1`, apiKeyEnv: 'MOCK_UPSTREAM_KEY' } },
      routes: [{ model: 'mock-*', provider: 'mock' }, { model: 'aliased', provider: 'mock', upstreamModel: 'mock-real' }],
      upstream,
      guards: { enabled: false }, // the proxy itself; guards have their own tests
    },
    { env: { MOCK_UPSTREAM_KEY: UPSTREAM_KEY } },
  );
  cleanups.push(() => g.close(), () => mock.close());
  return { g, mock, client: new OpenAI({ baseURL: `${g.url}/v1`, apiKey: g.key, maxRetries: 0 }) };
}

test('upstream gets the configured credential, never the client key; model aliases are rewritten', async () => {
  const { g, mock, client } = await setup();
  const r = await client.chat.completions.create({ model: 'aliased', messages: [{ role: 'user', content: 'hi' }] });
  assert.equal(r.choices[0]!.message.content, 'Hello from the mock upstream.');
  const seen = mock.requests[0]!;
  assert.equal(seen.url, '/v1/chat/completions');
  assert.equal(seen.headers.authorization, `Bearer ${UPSTREAM_KEY}`);
  assert.ok(!JSON.stringify(seen.headers).includes(g.key), 'client key must not be forwarded');
  assert.equal(seen.body.model, 'mock-real');
  assert.ok(seen.headers['x-request-id']);
});

test('client-supplied hosts cannot redirect the upstream (no SSRF through headers or body)', async () => {
  const { g, mock } = await setup();
  const res = await fetch(`${g.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${g.key}`, 'content-type': 'application/json', host: 'evil.example', 'x-forwarded-host': 'evil.example', 'x-portkey-custom-host': 'http://169.254.169.254' },
    body: JSON.stringify({ model: 'mock-1', api_base: 'http://169.254.169.254', base_url: 'http://169.254.169.254', messages: [{ role: 'user', content: 'hi' }] }),
  });
  assert.equal(res.status, 200);
  assert.equal(mock.requests.length, 1, 'went to the configured upstream');
});

test('streams: gateway asks upstream for usage, hides it from a client that did not ask', async () => {
  const { mock, client } = await setup();
  const s = await client.chat.completions.create({ model: 'mock-1', stream: true, messages: [{ role: 'user', content: 'hi' }] });
  let text = '';
  for await (const c of s) {
    assert.equal(c.usage ?? null, null);
    text += c.choices[0]?.delta?.content ?? '';
  }
  assert.equal(text, 'Hello from the mock upstream.');
  assert.equal(mock.requests[0]!.body.stream_options.include_usage, true);
});

test('first-byte timeout answers 504 without upstream details', async () => {
  const { g, mock, client } = await setup({ firstByteTimeoutMs: 300 });
  mock.handler = () => new Promise(() => {}); // never answers
  await assert.rejects(client.chat.completions.create({ model: 'mock-1', messages: [{ role: 'user', content: 'hi' }] }), (e: any) => {
    assert.equal(e.status, 504);
    assert.equal(e.code, 'upstream_timeout');
    assert.ok(!JSON.stringify(e.error).includes('127.0.0.1'));
    return true;
  });
  void g;
});

test('upstream 500 with a secret in its body: 502, the secret and host never reach the client', async () => {
  const { g, mock } = await setup();
  const leaked = 'sk-' + 'live-' + 'ABCDEF0123456789';
  mock.handler = (_req, res) => {
    res.writeHead(500, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: { message: `db down at 10.0.0.5, key ${leaked}`, stack: 'Error: at /srv/app.js:1' } }));
  };
  const res = await fetch(`${g.url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${g.key}`, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'mock-1', messages: [{ role: 'user', content: 'hi' }] }) });
  const text = await res.text();
  assert.equal(res.status, 502);
  assert.ok(res.headers.get('x-request-id'));
  assert.ok(!text.includes(leaked) && !text.includes('10.0.0.5') && !text.includes('/srv/app.js') && !text.includes(mock.url));
  assert.equal(JSON.parse(text).error.code, 'upstream_error');
});

test('upstream 429 is relayed as 429 with Retry-After', async () => {
  const { g, mock } = await setup();
  mock.handler = (_req, res) => {
    res.writeHead(429, { 'content-type': 'application/json', 'retry-after': '7' });
    res.end('{"error":{"message":"slow down"}}');
  };
  const res = await fetch(`${g.url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${g.key}`, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'mock-1', messages: [{ role: 'user', content: 'hi' }] }) });
  assert.equal(res.status, 429);
  assert.equal(res.headers.get('retry-after'), '7');
});

test('malformed upstream JSON answers 502', async () => {
  const { g, mock } = await setup();
  mock.handler = (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{"id": "c1", "choices": [');
  };
  const res = await fetch(`${g.url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${g.key}`, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'mock-1', messages: [{ role: 'user', content: 'hi' }] }) });
  assert.equal(res.status, 502);
  assert.equal(((await res.json()) as any).error.code, 'upstream_bad_response');
});

test('unreachable upstream answers 502 without the address', async () => {
  const mock = await startMockUpstream();
  const deadUrl = mock.url;
  await mock.close();
  const g = await startGateway({ providers: { mock: { type: 'openai', baseUrl: `${deadUrl}/v1` } }, routes: [{ model: 'mock-*', provider: 'mock' }] });
  cleanups.push(() => g.close());
  const res = await fetch(`${g.url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${g.key}`, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'mock-1', messages: [{ role: 'user', content: 'hi' }] }) });
  const body = await res.text();
  assert.equal(res.status, 502);
  assert.ok(!body.includes('127.0.0.1') && !body.includes('ECONNREFUSED'), body);
});

test('reset mid-stream: the client gets an error event, not a hang', async () => {
  const { mock, client } = await setup();
  mock.handler = (req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write(`data: ${JSON.stringify({ id: 'c1', object: 'chat.completion.chunk', created: 1, model: req.body.model, choices: [{ index: 0, delta: { content: 'partial ' }, finish_reason: null }] })}\n\n`);
    setTimeout(() => res.socket?.destroy(), 50);
  };
  const s = await client.chat.completions.create({ model: 'mock-1', stream: true, messages: [{ role: 'user', content: 'hi' }] });
  let text = '';
  await assert.rejects(
    (async () => {
      for await (const c of s) text += c.choices[0]?.delta?.content ?? '';
    })(),
  );
  assert.equal(text, 'partial ');
});

test('stream idle timeout ends the stream with an error event', async () => {
  const { mock, client } = await setup({ streamIdleTimeoutMs: 300 });
  mock.handler = (req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write(`data: ${JSON.stringify({ id: 'c1', object: 'chat.completion.chunk', created: 1, model: req.body.model, choices: [{ index: 0, delta: { content: 'x' }, finish_reason: null }] })}\n\n`);
  };
  const s = await client.chat.completions.create({ model: 'mock-1', stream: true, messages: [{ role: 'user', content: 'hi' }] });
  await assert.rejects(
    (async () => {
      for await (const _ of s) void _;
    })(),
    /did not respond in time|upstream_timeout/,
  );
});

test('client abort mid-stream aborts the upstream request', async () => {
  const { g, mock } = await setup();
  let ticks = 0;
  mock.handler = (req, res) =>
    new Promise<void>((resolve) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      const iv = setInterval(() => {
        ticks++;
        res.write(`data: ${JSON.stringify({ id: 'c1', object: 'chat.completion.chunk', created: 1, model: req.body.model, choices: [{ index: 0, delta: { content: 'tick ' }, finish_reason: null }] })}\n\n`);
      }, 20);
      res.once('close', () => {
        clearInterval(iv);
        resolve();
      });
    });
  const ac = new AbortController();
  const res = await fetch(`${g.url}/v1/chat/completions`, { method: 'POST', signal: ac.signal, headers: { authorization: `Bearer ${g.key}`, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'mock-1', stream: true, messages: [{ role: 'user', content: 'hi' }] }) });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('x-request-id') ?? '', /^req_/, 'a streamed response carries x-request-id too');
  assert.equal(res.headers.get('content-type'), 'text/event-stream; charset=utf-8');
  const reader = res.body!.getReader();
  await reader.read();
  ac.abort();
  const t0 = Date.now();
  while (mock.aborts === 0 && Date.now() - t0 < 3000) await new Promise((r) => setTimeout(r, 20));
  assert.equal(mock.aborts, 1, 'upstream saw the abort');
  const at = ticks;
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(ticks, at, 'upstream stopped producing');
  assert.equal(mock.inFlight, 0);
});

test('client gone before the upstream answered: the upstream request is aborted (non-stream and stream)', async () => {
  const { g, mock } = await setup();
  let started = 0;
  mock.handler = () =>
    new Promise<void>(() => {
      started++; // never answers: only the gateway's abort ends it
    });
  for (const stream of [false, true]) {
    const before = mock.aborts;
    const ac = new AbortController();
    const pending = fetch(`${g.url}/v1/chat/completions`, { method: 'POST', signal: ac.signal, headers: { authorization: `Bearer ${g.key}`, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'mock-1', stream, messages: [{ role: 'user', content: 'hi' }] }) });
    const t0 = Date.now();
    while (started === (stream ? 1 : 0) && Date.now() - t0 < 3000) await new Promise((r) => setTimeout(r, 10));
    ac.abort();
    await pending.catch(() => undefined);
    while (mock.aborts === before && Date.now() - t0 < 3000) await new Promise((r) => setTimeout(r, 10));
    assert.equal(mock.aborts, before + 1, `upstream saw the abort (stream: ${stream})`);
  }
  assert.equal(mock.inFlight, 0);
});

test('total timeout aborts a slow upstream: 504 without upstream details, upstream request closed', async () => {
  const { g, mock, client } = await setup({ totalTimeoutMs: 300 });
  mock.handler = () => new Promise(() => {}); // never answers (first-byte timeout stays at its 60 s default)
  const t0 = Date.now();
  await assert.rejects(client.chat.completions.create({ model: 'mock-1', messages: [{ role: 'user', content: 'hi' }] }), (e: any) => {
    assert.equal(e.status, 504);
    assert.equal(e.code, 'upstream_timeout');
    assert.ok(!JSON.stringify(e.error).includes('127.0.0.1'));
    return true;
  });
  assert.ok(Date.now() - t0 < 5000);
  const t1 = Date.now();
  while (mock.inFlight > 0 && Date.now() - t1 < 3000) await new Promise((r) => setTimeout(r, 10));
  assert.equal(mock.inFlight, 0, 'the upstream request was closed');
});

test('the default mock chat helper still works for non-stream through the SDK', async () => {
  const { mock, client } = await setup();
  mock.handler = (req, res) => defaultChat(req, res, 5, 'five pieces of text here');
  const r = await client.chat.completions.create({ model: 'mock-x', messages: [{ role: 'user', content: 'hi' }] });
  assert.equal(r.usage!.total_tokens, 18);
});

test('an upstream body over upstream.maxResponseBytes: 502, read no further; one under it passes', async () => {
  const { g, mock } = await setup({ maxResponseBytes: 4096 });
  const big = JSON.stringify({ id: 'x', object: 'chat.completion', choices: [{ index: 0, message: { role: 'assistant', content: 'y'.repeat(64 * 1024) }, finish_reason: 'stop' }] });
  mock.handler = (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    // In pieces, as a large body arrives: the gateway must stop at the limit, not after the whole body.
    for (let i = 0; i < big.length; i += 8192) res.write(big.slice(i, i + 8192));
    res.end();
  };
  const post = () =>
    fetch(`${g.url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${g.key}`, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'mock-1', messages: [{ role: 'user', content: 'hi' }] }) });
  const r = await post();
  assert.equal(r.status, 502);
  const body = (await r.json()) as { error: { message: string; type: string } };
  assert.ok(body.error.message && !body.error.message.includes('4096'), 'no upstream detail to the client');
  mock.handler = (req, res) => defaultChat(req, res);
  const ok = await post();
  assert.equal(ok.status, 200, 'the gateway still serves (the aborted connection was dropped, not reused)');
  assert.equal(((await ok.json()) as any).choices[0].message.content, 'Hello from the mock upstream.');
});

test('guards off: an unchanged non-stream body reaches the client byte for byte as the upstream sent it', async () => {
  const { g, mock } = await setup();
  const text = '{ "id": "chatcmpl-1",\n  "object": "chat.completion", "created": 1, "model": "mock-1",\n  "choices": [ { "index": 0, "message": { "role": "assistant", "content": "caf\\u00e9 ok" }, "finish_reason": "stop" } ],\n  "usage": { "prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5 } }';
  mock.handler = (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' }).end(text);
  };
  const r = await fetch(`${g.url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${g.key}`, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'mock-1', messages: [{ role: 'user', content: 'hi' }] }) });
  assert.equal(r.status, 200);
  assert.equal(await r.text(), text);
});

test('non-stream: time to first byte is the upstream headers, not the end of its body', async () => {
  const { g, mock } = await setup();
  mock.handler = async (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.write('{"id":"chatcmpl-2","object":"chat.completion","created":1,"model":"mock-1",');
    await new Promise((r) => setTimeout(r, 200));
    res.end('"choices":[{"index":0,"message":{"role":"assistant","content":"late"},"finish_reason":"stop"}]}');
  };
  const r = await fetch(`${g.url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${g.key}`, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'mock-1', messages: [{ role: 'user', content: 'hi' }] }) });
  assert.equal(r.status, 200);
  await r.text();
  const ev = await auditEventOf(g.gw.modules.get('audit') as AuditModule, r.headers.get('x-request-id')!);
  assert.ok(ev.ttfbMs !== undefined && ev.upstreamMs !== undefined, JSON.stringify(ev));
  assert.ok(ev.upstreamMs! >= 190, `upstream ${ev.upstreamMs} ms`);
  assert.ok(ev.ttfbMs! < ev.upstreamMs! - 150, `first byte ${ev.ttfbMs} ms of ${ev.upstreamMs}`);
});
