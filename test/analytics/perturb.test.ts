/** Logprobs perturbation through a real gateway: the upstream sees capped/stripped requests; clients get rounded logprobs (JSON and SSE). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway } from '../helpers/gateway.js';
import { startMockUpstream } from '../helpers/mock-upstream.js';

const LP = { content: [{ token: 'Hi', logprob: -0.123456, bytes: [72, 105], top_logprobs: [{ token: 'Hi', logprob: -0.123456, bytes: [72, 105] }, { token: 'Hey', logprob: -2.987654, bytes: [72, 101, 121] }] }] };

test('perturbation: cap top_logprobs upstream, round returned logprobs in bodies and streams; strip mode', async () => {
  const mock = await startMockUpstream((req, res) => {
    if (req.body?.stream) {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(`data: ${JSON.stringify({ id: 'c', object: 'chat.completion.chunk', created: 1, model: 'm', choices: [{ index: 0, delta: { content: 'Hi' }, logprobs: LP, finish_reason: null }] })}\n\n`);
      res.write(`data: ${JSON.stringify({ id: 'c', object: 'chat.completion.chunk', created: 1, model: 'm', choices: [{ index: 0, delta: {}, logprobs: null, finish_reason: 'stop' }] })}\n\n`);
      res.write(`data: ${JSON.stringify({ id: 'c', object: 'chat.completion.chunk', created: 1, model: 'm', choices: [], usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 } })}\n\n`);
      res.end('data: [DONE]\n\n');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ id: 'c', object: 'chat.completion', created: 1, model: 'm', choices: [{ index: 0, message: { role: 'assistant', content: 'Hi' }, logprobs: LP, finish_reason: 'stop' }], usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 } }));
  });
  const base = { providers: { mock: { type: 'openai', baseUrl: mock.url + '/v1' } }, routes: [{ model: '*', provider: 'mock' }] };
  const t = await startGateway({ ...base, analytics: { perturb: { logprobs: 'cap', maxTopLogprobs: 3, roundDecimals: 1 } } });
  const post = (url: string, key: string, body: object) => fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  try {
    const res = await post(t.url, t.key, { model: 'm', messages: [{ role: 'user', content: 'hi' }], logprobs: true, top_logprobs: 20 });
    assert.equal(res.status, 200);
    const j = (await res.json()) as any;
    assert.equal(mock.requests.at(-1)!.body.top_logprobs, 3, 'capped upstream');
    assert.equal(j.choices[0].logprobs.content[0].logprob, -0.1);
    assert.equal(j.choices[0].logprobs.content[0].top_logprobs[1].logprob, -3);
    const s = await post(t.url, t.key, { model: 'm', stream: true, messages: [{ role: 'user', content: 'hi' }], logprobs: true, top_logprobs: 2 });
    const text = await s.text();
    assert.equal(mock.requests.at(-1)!.body.top_logprobs, 2, 'under the cap: unchanged');
    // The streaming response guards re-emit text chunks (logprobs: null); whatever reaches the client is rounded.
    assert.ok(!text.includes('-0.123456') && !text.includes('-2.987654'), text);
    if (text.includes('"logprob"')) assert.ok(text.includes('"logprob":-0.1'));
  } finally {
    await t.close();
  }
  const t2 = await startGateway({ ...base, analytics: { perturb: { logprobs: 'strip' } } });
  try {
    const res = await post(t2.url, t2.key, { model: 'm', messages: [{ role: 'user', content: 'hi' }], logprobs: true, top_logprobs: 5 });
    assert.equal(res.status, 200);
    await res.text();
    const sent = mock.requests.at(-1)!.body;
    assert.equal(sent.logprobs, undefined);
    assert.equal(sent.top_logprobs, undefined);
  } finally {
    await t2.close();
    await mock.close();
  }
});

test('perturbation: the stream transform rounds logprobs in chunks', async () => {
  const { roundLogprobs } = await import('../../src/analytics/perturb.js');
  const chunk = { id: 'c', choices: [{ index: 0, delta: { content: 'Hi' }, logprobs: LP, finish_reason: null }] };
  const out = roundLogprobs(chunk, 1) as any;
  assert.equal(out.choices[0].logprobs.content[0].logprob, -0.1);
  assert.deepEqual(out.choices[0].logprobs.content[0].bytes, [72, 105]);
  const legacy = roundLogprobs({ choices: [{ text: 'a', logprobs: { tokens: ['a'], token_logprobs: [-1.23456], top_logprobs: [{ a: -1.23456, b: -4.5678 }] } }] }, 2) as any;
  assert.deepEqual(legacy.choices[0].logprobs.token_logprobs, [-1.23]);
  assert.deepEqual(legacy.choices[0].logprobs.top_logprobs[0], { a: -1.23, b: -4.57 });
});

test('with guards off, rounding still reaches the client (the upstream text is forwarded as it came only when nothing changed)', async () => {
  const upstreamText = JSON.stringify({ id: 'c', object: 'chat.completion', created: 1, model: 'm', choices: [{ index: 0, message: { role: 'assistant', content: 'Hi' }, logprobs: LP, finish_reason: 'stop' }], usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 } }, null, 1);
  const mock = await startMockUpstream((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' }).end(upstreamText);
  });
  const t = await startGateway({ providers: { mock: { type: 'openai', baseUrl: mock.url + '/v1' } }, routes: [{ model: '*', provider: 'mock' }], guards: { enabled: false }, analytics: { perturb: { roundDecimals: 1 } } });
  try {
    const post = (body: object) => fetch(`${t.url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${t.key}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const rounded = await (await post({ model: 'm', messages: [{ role: 'user', content: 'hi' }], logprobs: true })).text();
    assert.ok(!rounded.includes('-0.123456') && rounded.includes('"logprob":-0.1'), rounded);
  } finally {
    await t.close();
    await mock.close();
  }
});

/** Responses API log-probabilities (output_text content parts carry them, with their alternatives). */
const RLP = [{ token: 'Hi', logprob: -0.123456, bytes: [72, 105], top_logprobs: [{ token: 'Hi', logprob: -0.123456, bytes: [72, 105] }, { token: 'Hey', logprob: -2.987654, bytes: [72, 101, 121] }] }];

function responsesMock() {
  return startMockUpstream((req, res) => {
    const item = { id: 'msg_1', type: 'message', status: 'completed', role: 'assistant', content: [{ type: 'output_text', text: 'Hi', annotations: [], logprobs: RLP }] };
    const full = { id: 'resp_1', object: 'response', created_at: 1, status: 'completed', model: 'm', output: [item], usage: { input_tokens: 3, output_tokens: 1, total_tokens: 4 } };
    if (!req.body?.stream) {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(full));
      return;
    }
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    let seq = 0;
    const ev = (type: string, data: object) => res.write(`event: ${type}\ndata: ${JSON.stringify({ type, sequence_number: seq++, ...data })}\n\n`);
    ev('response.created', { response: { ...full, status: 'in_progress', output: [], usage: null } });
    ev('response.output_item.added', { output_index: 0, item: { ...item, status: 'in_progress', content: [] } });
    ev('response.content_part.added', { item_id: 'msg_1', output_index: 0, content_index: 0, part: { type: 'output_text', text: '', annotations: [], logprobs: [] } });
    ev('response.output_text.delta', { item_id: 'msg_1', output_index: 0, content_index: 0, delta: 'Hi', logprobs: RLP });
    ev('response.output_text.done', { item_id: 'msg_1', output_index: 0, content_index: 0, text: 'Hi', logprobs: RLP });
    ev('response.content_part.done', { item_id: 'msg_1', output_index: 0, content_index: 0, part: item.content[0] });
    ev('response.output_item.done', { output_index: 0, item });
    ev('response.completed', { response: full });
    res.end();
  });
}

test('perturbation covers the Responses API: include/top_logprobs capped or stripped upstream, output logprobs rounded in bodies and stream events', async () => {
  const mock = await responsesMock();
  const base = { providers: { mock: { type: 'openai', baseUrl: mock.url + '/v1' } }, routes: [{ model: '*', provider: 'mock' }] };
  const post = (url: string, key: string, body: object) => fetch(`${url}/v1/responses`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const ask = { model: 'm', input: 'hi', include: ['message.output_text.logprobs'], top_logprobs: 20 };
  try {
    for (const guards of [true, false]) {
      const t = await startGateway({ ...base, guards: { enabled: guards }, analytics: { perturb: { logprobs: 'cap', maxTopLogprobs: 3, roundDecimals: 1 } } });
      try {
        const res = await post(t.url, t.key, ask);
        assert.equal(res.status, 200);
        const j = (await res.json()) as any;
        const sent = mock.requests.at(-1)!.body;
        assert.equal(sent.top_logprobs, 3, 'capped upstream');
        assert.deepEqual(sent.include, ['message.output_text.logprobs']);
        const lp = j.output[0].content[0].logprobs[0];
        assert.equal(lp.logprob, -0.1, `guards ${guards}`);
        assert.deepEqual(lp.top_logprobs.map((x: { logprob: number }) => x.logprob), [-0.1, -3]);
        assert.deepEqual(lp.bytes, [72, 105]);
        // Streamed: every event that carries logprobs (delta, done, content part, item, completed) is rounded.
        const s = await post(t.url, t.key, { ...ask, stream: true });
        assert.equal(s.status, 200);
        const text = await s.text();
        assert.ok(!text.includes('-0.123456') && !text.includes('-2.987654'), text);
        const events = text.split('\n').filter((l) => l.startsWith('data: ')).map((l) => JSON.parse(l.slice(6)));
        const delta = events.find((e) => e.type === 'response.output_text.delta');
        assert.equal(delta.logprobs[0].logprob, -0.1, `guards ${guards}: ${text}`);
        assert.equal(delta.logprobs[0].top_logprobs[1].logprob, -3);
        const done = events.find((e) => e.type === 'response.completed');
        assert.equal(done.response.output[0].content[0].logprobs[0].logprob, -0.1);
        // Asking only through `include` (no top_logprobs) still counts as asking for logprobs: the stream is rounded.
        const s2 = await post(t.url, t.key, { model: 'm', input: 'hi', include: ['message.output_text.logprobs'], stream: true });
        const text2 = await s2.text();
        assert.ok(text2.includes('"logprob":-0.1') && !text2.includes('-0.123456'), text2);
      } finally {
        await t.close();
      }
    }
    const t2 = await startGateway({ ...base, analytics: { perturb: { logprobs: 'strip' } } });
    try {
      const res = await post(t2.url, t2.key, { ...ask, include: ['reasoning.encrypted_content', 'message.output_text.logprobs'] });
      assert.equal(res.status, 200);
      await res.text();
      const sent = mock.requests.at(-1)!.body;
      assert.equal(sent.top_logprobs, undefined);
      assert.deepEqual(sent.include, ['reasoning.encrypted_content'], 'the logprobs include is removed, others kept');
    } finally {
      await t2.close();
    }
  } finally {
    await mock.close();
  }
});
