/**
 * Analytics key actions on the object routes: a suspended key is refused on every object route
 * (files, batches, fine-tuning jobs, vector stores, stored responses) and on /v1/models,
 * /v1/guard/check and /v1/guard/shadow exactly as on chat, a
 * throttled key's object calls count against its throttled rate, and stored responses fetched
 * back get their log-probabilities rounded like live ones (analytics.perturb.roundDecimals).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { AdminModule } from '../../src/server/admin/module.js';
import { OBJECT_ROUTES } from '../../src/server/objects.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { startMockUpstream } from '../helpers/mock-upstream.js';

const jsonl = Buffer.from(JSON.stringify({ custom_id: 'r0', method: 'POST', url: '/v1/chat/completions', body: { model: 'demo', messages: [{ role: 'user', content: 'q' }] } }) + '\n');

describe('suspended and throttled keys on the object routes (demo upstream)', () => {
  let g: TestGateway;
  let key: string;
  let keyId: string;
  let admin: string;
  /** Ids of objects the key owns: one to keep, one to delete, per kind. */
  const ids: Record<string, { keep: string; del?: string }> = {};

  const call = async (method: string, path: string, body?: unknown | FormData, k = key) => {
    const isForm = body instanceof FormData;
    const res = await fetch(`${g.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${k}`, ...(body !== undefined && !isForm ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: isForm ? body : JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    let json: any;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status: res.status, json, headers: res.headers };
  };
  const upload = () => {
    const fd = new FormData();
    fd.append('purpose', 'batch');
    fd.append('file', new Blob([jsonl]), 'in.jsonl');
    return fd;
  };
  const chat = () => call('POST', '/v1/chat/completions', { model: 'demo', messages: [{ role: 'user', content: 'hello' }] });
  /** Key-authenticated routes that are neither proxied nor object routes. */
  const otherKeyRoutes = [
    { spec: { method: 'GET', url: '/v1/models' }, path: '/v1/models', body: undefined },
    { spec: { method: 'POST', url: '/v1/guard/check' }, path: '/v1/guard/check', body: { input: 'hello' } },
    { spec: { method: 'GET', url: '/v1/guard/shadow' }, path: '/v1/guard/shadow', body: undefined },
  ];
  const action = (kind: 'suspend' | 'throttle' | 'clear', body: Record<string, unknown> = {}) =>
    fetch(`${g.url}/admin/v1/analytics/keys/${keyId}/${kind}`, { method: 'POST', headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' }, body: JSON.stringify(body) }).then(async (r) => {
      await r.text();
      return r.status;
    });

  /** One request per object route, with a body and an owned id where the route needs them. */
  const requests = () =>
    OBJECT_ROUTES.map((spec) => {
      const id = spec.url.includes(':id') ? (spec.method === 'DELETE' ? ids[spec.kind]!.del ?? ids[spec.kind]!.keep : ids[spec.kind]!.keep) : undefined;
      const path = id ? spec.url.replace(':id', id) : spec.url;
      let body: unknown;
      if (spec.method === 'POST' && spec.action === 'create') {
        if (spec.kind === 'files') body = upload();
        if (spec.kind === 'batches') body = { input_file_id: ids.files!.keep, endpoint: '/v1/chat/completions', completion_window: '24h', metadata: { demo_hold: 'true' } };
        if (spec.kind === 'fine_tuning') body = { model: 'gpt-4o-mini-2024-07-18', training_file: ids.files!.keep };
        if (spec.kind === 'vector_stores') body = { name: 'kb', file_ids: [ids.files!.keep] };
      }
      return { spec, path, body };
    });

  before(async () => {
    g = await startGateway({ analytics: { response: { refreshMs: 200 } } });
    key = await g.newKey('acme', 'svc');
    keyId = key.split('_')[1]!;
    admin = (await (g.gw.modules.get('admin') as AdminModule).lifecycle.createAdminKey({ id: 'test' }, { name: 'ops', role: 'owner' })).key;
    const made = async (method: string, path: string, body?: unknown) => {
      const r = await call(method, path, body);
      assert.equal(r.status, 200, `${method} ${path}: ${JSON.stringify(r.json)}`);
      return r.json.id as string;
    };
    ids.files = { keep: await made('POST', '/v1/files', upload()), del: await made('POST', '/v1/files', upload()) };
    ids.batches = { keep: await made('POST', '/v1/batches', { input_file_id: ids.files.keep, endpoint: '/v1/chat/completions', completion_window: '24h', metadata: { demo_hold: 'true' } }) };
    ids.fine_tuning = { keep: await made('POST', '/v1/fine_tuning/jobs', { model: 'gpt-4o-mini-2024-07-18', training_file: ids.files.keep }) };
    ids.vector_stores = { keep: await made('POST', '/v1/vector_stores', { name: 'a' }), del: await made('POST', '/v1/vector_stores', { name: 'b' }) };
    ids.responses = { keep: await made('POST', '/v1/responses', { model: 'demo', input: 'hello' }), del: await made('POST', '/v1/responses', { model: 'demo', input: 'bye' }) };
  });
  after(async () => g?.close());

  test('a suspended key gets 403 on chat and on every object route, and works again once cleared', async () => {
    assert.equal((await chat()).status, 200);
    assert.equal(await action('suspend', { reason: 'test' }), 200);
    const refusedChat = await chat();
    assert.equal(refusedChat.status, 403);
    for (const { spec, path, body } of [...requests(), ...otherKeyRoutes]) {
      const r = await call(spec.method, path, body);
      assert.equal(r.status, 403, `${spec.method} ${spec.url} while suspended: ${r.status} ${JSON.stringify(r.json)}`);
      assert.deepEqual({ ...r.json.error, message: '' }, { ...refusedChat.json.error, message: '' }, `${spec.method} ${spec.url}: same error as chat`);
      assert.match(r.json.error.message, /suspended/);
    }
    assert.equal(await action('clear'), 200);
    for (const { spec, path, body } of otherKeyRoutes) {
      const r = await call(spec.method, path, body);
      assert.equal(r.status, 200, `${spec.method} ${spec.url} after clear: ${r.status} ${JSON.stringify(r.json)}`);
    }
    assert.equal((await chat()).status, 200);
    // Nothing was created while suspended: one held batch, as before.
    const batches = await call('GET', '/v1/batches');
    assert.deepEqual(batches.json.data.map((b: { id: string }) => b.id), [ids.batches!.keep]);
    for (const { spec, path, body } of requests()) {
      const r = await call(spec.method, path, body);
      assert.equal(r.status, 200, `${spec.method} ${spec.url} after clear: ${r.status} ${JSON.stringify(r.json)}`);
    }
  });

  test('object calls of a throttled key count against its throttled rate (shared with chat)', async () => {
    assert.equal(await action('throttle', { rpm: 3 }), 200);
    try {
      assert.equal((await call('GET', '/v1/files')).status, 200);
      assert.equal((await call('GET', `/v1/batches/${ids.batches!.keep}`)).status, 200);
      assert.equal((await chat()).status, 200);
      const over = await call('GET', '/v1/files');
      assert.equal(over.status, 429, 'the fourth call in a minute at 3 rpm');
      assert.equal(over.json.error.code, 'rate_limit_exceeded');
      assert.ok(Number(over.headers.get('retry-after')) >= 1);
      assert.equal((await call('POST', '/v1/batches', { input_file_id: ids.files!.keep, endpoint: '/v1/chat/completions', completion_window: '24h' })).status, 429);
      assert.equal((await chat()).status, 429);
    } finally {
      assert.equal(await action('clear'), 200);
    }
    assert.equal((await call('GET', '/v1/files')).status, 200);
  });
});

test('GET /v1/responses/:id rounds stored log-probabilities when analytics.perturb.roundDecimals is set', async () => {
  const stored = {
    id: 'resp_stored0001',
    object: 'response',
    status: 'completed',
    model: 'gpt-x',
    output: [
      {
        type: 'message',
        id: 'msg_1',
        role: 'assistant',
        status: 'completed',
        content: [{ type: 'output_text', text: 'Hi', annotations: [], logprobs: [{ token: 'Hi', logprob: -0.123456789, bytes: [72, 105], top_logprobs: [{ token: 'Hi', logprob: -0.123456789, bytes: [72, 105] }, { token: 'Hey', logprob: -2.987654321, bytes: [72, 101, 121] }] }] }],
      },
    ],
    usage: { input_tokens: 3, output_tokens: 1, total_tokens: 4 },
  };
  const mock = await startMockUpstream((req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    if (req.method === 'POST' && req.url === '/v1/responses') res.end(JSON.stringify(stored));
    else if (req.method === 'GET' && req.url === `/v1/responses/${stored.id}`) res.end(JSON.stringify(stored));
    else res.writeHead(404).end('{}');
  });
  const base = { providers: { mock: { type: 'openai', baseUrl: mock.url + '/v1' } }, routes: [{ model: 'gpt-x', provider: 'mock' }] };
  const rounded = await startGateway({ ...base, analytics: { perturb: { roundDecimals: 2 } } });
  const plain = await startGateway(base);
  try {
    for (const [t, want] of [
      [rounded, [-0.12, -0.12, -2.99]],
      [plain, [-0.123456789, -0.123456789, -2.987654321]],
    ] as const) {
      const created = await fetch(`${t.url}/v1/responses`, { method: 'POST', headers: { authorization: `Bearer ${t.key}`, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'gpt-x', input: 'hi', include: ['message.output_text.logprobs'] }) });
      assert.equal(created.status, 200);
      await created.text();
      const got = await fetch(`${t.url}/v1/responses/${stored.id}`, { headers: { authorization: `Bearer ${t.key}` } });
      assert.equal(got.status, 200);
      const lp = ((await got.json()) as typeof stored).output[0]!.content[0]!.logprobs[0]!;
      assert.deepEqual([lp.logprob, lp.top_logprobs[0]!.logprob, lp.top_logprobs[1]!.logprob], want);
    }
  } finally {
    await rounded.close();
    await plain.close();
    await mock.close();
  }
});
