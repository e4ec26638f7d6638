/** Limits through a real gateway: headers, 429s, budgets, concurrency, settlement and release; Redis and workers. */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'undici';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { serveWorkers } from '../helpers/serve.js';
import { defaultChat, startMockUpstream } from '../helpers/mock-upstream.js';

const cleanups: Array<() => Promise<void> | void> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

async function gw(limits: Record<string, unknown>, extra: Record<string, unknown> = {}) {
  const mock = await startMockUpstream();
  const g = await startGateway({ providers: { mock: { type: 'openai', baseUrl: `${mock.url}/v1` }, demo: { type: 'demo' } }, routes: [{ model: 'mock-*', provider: 'mock' }, { model: 'demo*', provider: 'demo' }], limits, ...extra });
  cleanups.push(() => g.close(), () => mock.close());
  return { g, mock };
}

async function chat(g: TestGateway, body: Record<string, unknown> = {}, key = g.key) {
  const res = await request(`${g.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'mock-1', messages: [{ role: 'user', content: 'hello' }], ...body }),
  });
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, json: JSON.parse(text) };
}

test('requests per minute: OpenAI-style headers on every response, 429 with Retry-After past the limit', async () => {
  const { g } = await gw({ defaults: { key: { requestsPerMinute: 3 } } });
  const results = [];
  for (let i = 0; i < 4; i++) results.push(await chat(g));
  assert.deepEqual(results.map((r) => r.status), [200, 200, 200, 429]);
  assert.equal(results[0]!.headers['x-ratelimit-limit-requests'], '3');
  assert.equal(results[0]!.headers['x-ratelimit-remaining-requests'], '2');
  assert.ok(results[0]!.headers['x-ratelimit-reset-requests']);
  const denied = results[3]!;
  assert.equal(denied.json.error.code, 'rate_limit_exceeded');
  assert.ok(Number(denied.headers['retry-after']) >= 1);
  const other = await g.newKey('other-tenant');
  assert.equal((await chat(g, {}, other)).status, 200, 'another key has its own limit');
});

test('daily token budget: insufficient_quota naming the budget, refused before the upstream is called', async () => {
  const { g, mock } = await gw({ defaults: { tenant: { dailyTokens: 300 } } });
  const first = await chat(g, { max_tokens: 100 });
  assert.equal(first.status, 200);
  const before = mock.requests.length;
  const r = await chat(g, { max_tokens: 280 });
  assert.equal(r.status, 429);
  assert.equal(r.json.error.code, 'insufficient_quota');
  assert.match(r.json.error.message, /daily token budget/i);
  assert.equal(mock.requests.length, before, 'the refused request never reached the upstream');
});

test('output cap is enforced upstream when the client sends none', async () => {
  const { g, mock } = await gw({ defaults: { key: { maxOutputTokens: 64 } } });
  await chat(g);
  assert.equal(mock.requests.at(-1)!.body.max_tokens, 64);
  const r = await chat(g, { max_tokens: 5000 });
  assert.notEqual(r.status, 200, 'asking above the cap is refused');
});

test('concurrency limit is never exceeded (the mock counts in-flight requests)', async () => {
  const { g, mock } = await gw({ defaults: { key: { concurrency: 2 } } });
  let open!: () => void;
  const gate = new Promise<void>((r) => (open = r));
  mock.handler = async (req, res) => {
    await gate; // admitted requests stay in flight until every other request has been answered
    defaultChat(req, res);
  };
  let refused = 0;
  const pending = Array.from({ length: 6 }, () =>
    chat(g).then((r) => {
      if (r.status === 429) refused++;
      return r;
    }),
  );
  const t0 = Date.now();
  while (refused < 4 && Date.now() - t0 < 60_000) await new Promise((r) => setTimeout(r, 20));
  open();
  const rs = await Promise.all(pending);
  assert.equal(rs.filter((r) => r.status === 200).length, 2);
  assert.equal(refused, 4);
  assert.ok(mock.maxInFlight <= 2);
  assert.equal((await chat(g)).status, 200, 'slots are released after completion');
});

test('streams settle on usage from the last chunk; upstream errors release the reservation', async () => {
  const { g, mock } = await gw({ defaults: { key: { tokensPerMinute: 400 } } });
  // the mock reports 18 total tokens in its last chunk
  const res = await request(`${g.url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${g.key}`, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'mock-1', stream: true, max_tokens: 300, messages: [{ role: 'user', content: 'hi' }] }) });
  await res.body.text();
  await new Promise((r) => setTimeout(r, 100));
  const next = await chat(g, { max_tokens: 300 });
  assert.equal(next.status, 200, 'after settling at 18 tokens, a 300-token reservation fits again');
  const remaining = Number(next.headers['x-ratelimit-remaining-tokens']);
  assert.ok(remaining < 400 - 18 - 300 + 20 && remaining > 0, `remaining ${remaining}`);

  mock.handler = (_req, r) => {
    r.writeHead(500);
    r.end('{}');
  };
  for (let i = 0; i < 3; i++) assert.equal((await chat(g, { max_tokens: 300 })).status, 502);
  mock.handler = (req, r) => defaultChat(req, r);
  await new Promise((r) => setTimeout(r, 100));
  assert.equal((await chat(g, { max_tokens: 300 })).status, 200, 'failed requests gave their reservations back');
});

test('input the model reads counts at admission: token ids one token per id, text in blocks of any type', async () => {
  const { g, mock } = await gw({ defaults: { key: { tokensPerMinute: 400 } } }, { guards: { enabled: false } });
  mock.handler = (req, r) => {
    r.writeHead(200, { 'content-type': 'application/json' });
    r.end(JSON.stringify(req.url.includes('embeddings') ? { object: 'list', data: [], model: 'mock-1', usage: { prompt_tokens: 1, total_tokens: 1 } } : { id: 'c', object: 'text_completion', created: 1, model: 'mock-1', choices: [{ index: 0, text: 'ok', finish_reason: 'stop' }], usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 } }));
  };
  const post = async (path: string, body: Record<string, unknown>) => {
    const res = await request(`${g.url}${path}`, { method: 'POST', headers: { authorization: `Bearer ${g.key}`, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'mock-1', ...body }) });
    const text = await res.body.text();
    return { status: res.statusCode, headers: res.headers, text };
  };
  const ids = (n: number) => Array.from({ length: n }, (_, i) => 100 + i);
  // 1000 ids cannot fit a 400-token minute, however they are nested.
  for (const [path, body] of [
    ['/v1/completions', { prompt: ids(1000), max_tokens: 1 }],
    ['/v1/completions', { prompt: [ids(10), ids(1000)], max_tokens: 1 }],
    ['/v1/embeddings', { input: ids(1000) }],
    ['/v1/embeddings', { input: [ids(500), ids(500)] }],
  ] as const) {
    const r = await post(path, body);
    assert.equal(r.status, 429, `${path} ${r.text.slice(0, 200)}`);
  }
  // Text in blocks of any type counts too: a document's text source, a server tool's fetched page.
  const page = 'The quick brown fox jumps over the lazy dog. '.repeat(60);
  const docs: Array<Record<string, unknown>> = [
    { type: 'document', source: { type: 'text', media_type: 'text/plain', data: page } },
    { type: 'search_result', source: 'https://kb.example/1', title: 'KB', content: [{ type: 'text', text: page }] },
  ];
  for (const block of docs) {
    const r = await post('/v1/chat/completions', { messages: [{ role: 'user', content: [block, { type: 'text', text: 'Summarise.' }] }], max_tokens: 1 });
    assert.equal(r.status, 429, `${block.type}: ${r.text.slice(0, 200)}`);
  }
  const ok = await post('/v1/completions', { prompt: ids(150), max_tokens: 1 });
  assert.equal(ok.status, 200, ok.text);
  assert.ok(Number(ok.headers['x-ratelimit-remaining-tokens']) <= 400 - 150, `remaining ${ok.headers['x-ratelimit-remaining-tokens']}`);
});

const redisUp = await (async () => {
  try {
    const { Redis } = await import('ioredis');
    const r = new Redis({ host: '127.0.0.1', port: 6379, lazyConnect: true, connectTimeout: 500, maxRetriesPerRequest: 0 });
    await r.connect();
    await r.ping();
    r.disconnect();
    return true;
  } catch {
    return false;
  }
})();

test('two gateway instances sharing Redis admit exactly N together', { skip: !redisUp && process.env.CI !== 'true' ? 'Redis at 127.0.0.1:6379 unreachable (set CI=true to require it)' : false }, async () => {
  const prefix = `pcl:test:${process.pid}:${Date.now()}`;
  const limits = { store: 'redis', redisUrl: 'redis://127.0.0.1:6379', keyPrefix: prefix, defaults: { tenant: { requestsPerMinute: 7 } } };
  const a = await gw(limits);
  // second instance on the same data dir so that tenant ids agree
  const b = await startGateway({ dataDir: a.g.dataDir, providers: { mock: { type: 'openai', baseUrl: `${a.mock.url}/v1` } }, routes: [{ model: 'mock-*', provider: 'mock' }], limits });
  cleanups.push(() => b.gw.close());
  const rs = await Promise.all(Array.from({ length: 20 }, (_, i) => chat(i % 2 ? a.g : ({ ...b, key: a.g.key } as TestGateway))));
  assert.equal(rs.filter((r) => r.status === 200).length, 7);
});

test('serve --workers 2 on the embedded default keeps limits exact across workers', async () => {
  const served = await serveWorkers('log: { level: warn }\nlimits:\n  defaults:\n    key: { requestsPerMinute: 5 }\n', 2);
  try {
    const statuses = [];
    for (let i = 0; i < 12; i++) {
      const res = await fetch(`${served.url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${served.key}`, 'content-type': 'application/json', connection: 'close' }, body: JSON.stringify({ model: 'demo', messages: [{ role: 'user', content: 'hi' }] }) });
      statuses.push(res.status);
      await res.text();
    }
    assert.equal(statuses.filter((s) => s === 200).length, 5, `statuses ${statuses}`);
  } finally {
    await served.stop();
  }
});
