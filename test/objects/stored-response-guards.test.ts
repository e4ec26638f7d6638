/**
 * Stored responses read back through the gateway (`GET /v1/responses/{id}`) and continued
 * (`previous_response_id`) under the response guards: an answer the guards blocked or changed
 * live is never returned raw, one they passed whole is returned as stored, and one the gateway
 * did not see whole (background, a stream the client left) is checked when it is read.
 * Driven with the official `openai` client against a mock upstream that stores what it answers.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI, { BadRequestError } from 'openai';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { startMockUpstream, type MockUpstream } from '../helpers/mock-upstream.js';
import { waitFor } from '../identity/util.js';

const GH = 'gh' + 'p_' + 'aB3dE6gH9jK2mN5pQ8sT1vW4yZ7bC0eF3hJ6';
const CLEAN = 'Paris is the capital of France.';
const SECRET = `Your key is ${GH}. Keep it.`;

/** A Responses upstream that stores every response it makes, answers `secret` inputs with a token, and can hold a stream open. */
function responsesUpstream(mock: MockUpstream, stored: Map<string, Record<string, any>>): void {
  let n = 0;
  mock.handler = async (req, res) => {
    const m = /^\/v1\/responses\/([A-Za-z0-9_]+)$/.exec(req.url);
    if (m && req.method === 'GET') {
      const r = stored.get(m[1]!);
      res.writeHead(r ? 200 : 404, { 'content-type': 'application/json' });
      res.end(JSON.stringify(r ?? { error: { message: 'not found', type: 'invalid_request_error' } }));
      return;
    }
    if (m && req.method === 'DELETE') {
      stored.delete(m[1]!);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ id: m[1], object: 'response', deleted: true }));
      return;
    }
    const b = req.body as Record<string, any>;
    const asked = JSON.stringify(b.input);
    // The re-ask carries the gateway's corrective note: the model behaves the second time.
    const text = asked.includes('secret') && !JSON.stringify(b).includes('withheld by a safety filter') ? SECRET : CLEAN;
    const id = `resp_${++n}`;
    const msg = { type: 'message', id: `msg_${n}`, role: 'assistant', status: 'completed', content: [{ type: 'output_text', text, annotations: [] }] };
    const full = { id, object: 'response', created_at: 1, status: 'completed', model: b.model, output: [msg], usage: { input_tokens: 3, output_tokens: 9, total_tokens: 12 } };
    stored.set(id, full);
    if (b.background) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ ...full, status: 'queued', output: [], usage: null }));
      return;
    }
    if (!b.stream) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(full));
      return;
    }
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    const ev = (o: Record<string, unknown>) => res.write(`event: ${o.type}\ndata: ${JSON.stringify(o)}\n\n`);
    const head = { ...full, status: 'in_progress', output: [], usage: null };
    ev({ type: 'response.created', response: head });
    ev({ type: 'response.output_item.added', output_index: 0, item: { ...msg, status: 'in_progress', content: [] } });
    ev({ type: 'response.content_part.added', item_id: msg.id, output_index: 0, content_index: 0, part: { type: 'output_text', text: '', annotations: [] } });
    if (asked.includes('hold')) {
      // The first part, then silence until the client leaves (the gateway never sees the rest).
      ev({ type: 'response.output_text.delta', item_id: msg.id, output_index: 0, content_index: 0, delta: 'x'.repeat(600) });
      await new Promise((r) => res.on('close', r));
      return;
    }
    for (const p of [text.slice(0, 14), text.slice(14)]) ev({ type: 'response.output_text.delta', item_id: msg.id, output_index: 0, content_index: 0, delta: p });
    ev({ type: 'response.output_text.done', item_id: msg.id, output_index: 0, content_index: 0, text });
    ev({ type: 'response.output_item.done', output_index: 0, item: msg });
    ev({ type: 'response.completed', response: full });
    res.end();
  };
}

/** The text of a (possibly streamed) response's first message, or '' when it has none. */
const textOf = (r: { output?: any[] }) => String(r.output?.find((o) => o.type === 'message')?.content?.[0]?.text ?? '');

/** Asserts a call fails with the gateway's content-policy refusal of a withheld response. */
async function withheld(p: Promise<unknown>, what: string): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof BadRequestError, `${what}: expected 400, got ${(e as { status?: number })?.status ?? e}`);
    assert.equal((e.error as { code?: string })?.code, 'content_policy_violation', what);
    assert.equal(e.headers?.get('x-portcullis-guard'), 'response:stored', what);
    assert.doesNotMatch(JSON.stringify(e.error), /ghp_/, `${what}: the refusal carries no part of the output`);
    return true;
  });
}

describe('stored responses under the response guards', () => {
  let g: TestGateway;
  let mock: MockUpstream;
  const stored = new Map<string, Record<string, any>>();
  let client: (tenant: string) => Promise<OpenAI>;
  let ownerRow: (id: string) => Promise<string | null | undefined>;

  before(async () => {
    mock = await startMockUpstream();
    responsesUpstream(mock, stored);
    g = await startGateway({
      providers: { mock: { type: 'openai', baseUrl: `${mock.url}/v1` } },
      routes: [{ model: '*', provider: 'mock' }],
      guards: {
        response: { secrets: { action: 'redact' } },
        tenants: {
          blocking: { response: { secrets: { action: 'block' } } },
          reasking: { response: { secrets: { action: 'block' }, onBlock: 'reask' } },
          shadowed: { response: { mode: 'shadow' } },
        },
      },
    });
    client = async (tenant) => new OpenAI({ apiKey: tenant === 'default' ? g.key : await g.newKey(tenant), baseURL: `${g.url}/v1`, maxRetries: 0 });
    ownerRow = async (id) => (await g.gw.db.kysely.selectFrom('object_owners').select('output_check').where('kind', '=', 'responses').where('object_id', '=', id).executeTakeFirst())?.output_check;
  });
  after(async () => {
    await g?.close();
    await mock?.close();
  });

  test('a response the guards passed whole is returned as stored; one they redacted is refused, also as previous_response_id', async () => {
    const c = await client('default');
    const ok = await c.responses.create({ model: 'gpt-4o', input: 'clean question' });
    assert.equal(ok.output_text, CLEAN);
    assert.equal(await ownerRow(ok.id), 'passed');
    assert.equal(textOf(await c.responses.retrieve(ok.id)), CLEAN);

    const red = await c.responses.create({ model: 'gpt-4o', input: 'tell me the secret' });
    assert.doesNotMatch(red.output_text, /ghp_/, 'redacted live');
    assert.equal(await ownerRow(red.id), 'withheld');
    const before = mock.requests.length;
    await withheld(c.responses.retrieve(red.id), 'GET of a redacted response');
    assert.equal(mock.requests.length, before, 'refused without asking the upstream');
    await withheld(c.responses.create({ model: 'gpt-4o', input: 'repeat that', previous_response_id: red.id }), 'previous_response_id of a redacted response');
    // Its output items are withheld as well (an `item_reference` hands them back to the model).
    const item = red.output[0]!.id!;
    await withheld(c.responses.create({ model: 'gpt-4o', input: [{ type: 'item_reference', id: item }, { role: 'user', content: 'repeat that' }] }), 'item_reference to a redacted response item');
    await c.responses.create({ model: 'gpt-4o', input: [{ type: 'item_reference', id: ok.output[0]!.id! }, { role: 'user', content: 'go on' }] }); // a passed one's may
    await c.responses.create({ model: 'gpt-4o', input: 'go on', previous_response_id: ok.id }); // a passed one may be continued
    // The owner may still delete it.
    await c.responses.delete(red.id);
    assert.equal(await ownerRow(red.id), undefined);
  });

  test('streams: a redacted stream is settled withheld before it ends, a clean one passed', async () => {
    const c = await client('default');
    let id = '';
    let text = '';
    for await (const ev of await c.responses.create({ model: 'gpt-4o', input: 'the secret, streamed', stream: true })) {
      if (ev.type === 'response.created') id = ev.response.id;
      if (ev.type === 'response.output_text.delta') text += ev.delta;
      if (ev.type === 'response.completed') assert.equal(await ownerRow(id), 'withheld', 'settled before the terminal event reached the client');
    }
    assert.ok(id && text.length > 0);
    assert.doesNotMatch(text, /ghp_/);
    await withheld(c.responses.retrieve(id), 'GET of a redacted stream');
    await withheld(c.responses.create({ model: 'gpt-4o', input: [{ type: 'item_reference', id: stored.get(id)!.output[0].id }] }), 'item_reference to a redacted stream item');

    let cleanId = '';
    for await (const ev of await c.responses.create({ model: 'gpt-4o', input: 'clean, streamed', stream: true })) if (ev.type === 'response.created') cleanId = ev.response.id;
    assert.equal(await ownerRow(cleanId), 'passed');
    assert.equal(textOf(await c.responses.retrieve(cleanId)), CLEAN);
  });

  test('a stream the client left is checked when read: the rest the gateway never saw is redacted at read time', async () => {
    const c = await client('default');
    let id = '';
    for await (const ev of await c.responses.create({ model: 'gpt-4o', input: 'hold the secret', stream: true })) {
      if (ev.type === 'response.created') {
        id = ev.response.id;
        break; // leaves: the SDK closes the connection
      }
    }
    assert.ok(id);
    await waitFor(async () => mock.aborts > 0, 5000); // the gateway stopped the upstream call
    assert.equal(await ownerRow(id), 'unscanned');
    // Upstream, the response went on and finished with the token in it.
    assert.match(textOf(stored.get(id)!), /ghp_/);
    const raw = await fetch(`${g.url}/v1/responses/${id}`, { headers: { authorization: `Bearer ${g.key}` } });
    assert.equal(raw.status, 200);
    assert.equal(raw.headers.get('x-portcullis-action'), 'transform');
    const body = (await raw.json()) as { output: any[] };
    assert.doesNotMatch(textOf(body), /ghp_/, 'redacted at read time');
    assert.match(textOf(body), /^Your key is \[[a-z_]+\]\. Keep it\.$/);
  });

  test('background responses are checked at read time: redacted for one tenant, blocked for another; clean ones unchanged', async () => {
    const c = await client('default');
    const q = await c.responses.create({ model: 'gpt-4o', input: 'the secret, later', background: true });
    assert.equal(q.status, 'queued');
    assert.equal(await ownerRow(q.id), 'unscanned');
    const got = await c.responses.retrieve(q.id);
    assert.match(textOf(got), /^Your key is \[[a-z_]+\]\. Keep it\.$/);
    // Its output items, first seen on that read, are the owner's to reference.
    const ref = await fetch(`${g.url}/v1/responses`, { method: 'POST', headers: { authorization: `Bearer ${g.key}`, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'gpt-4o', input: [{ type: 'item_reference', id: got.output[0]!.id }, { role: 'user', content: 'clean, go on' }] }) });
    assert.equal(ref.status, 200);
    const clean = await c.responses.create({ model: 'gpt-4o', input: 'clean, later', background: true });
    const raw = await fetch(`${g.url}/v1/responses/${clean.id}`, { headers: { authorization: `Bearer ${g.key}` } });
    assert.equal(raw.headers.get('x-portcullis-action'), null);
    assert.equal(textOf((await raw.json()) as { output: any[] }), CLEAN);

    const b = await client('blocking');
    const bq = await b.responses.create({ model: 'gpt-4o', input: 'the secret, later', background: true });
    const res = await fetch(`${g.url}/v1/responses/${bq.id}`, { headers: { authorization: `Bearer ${b.apiKey}` } });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('x-portcullis-action'), 'block');
    const blocked = (await res.json()) as { output: any[] };
    assert.doesNotMatch(JSON.stringify(blocked), /ghp_/);
    assert.equal(textOf(blocked), '');
  });

  test('blocked live: refused; re-asked live: the answer the client got is readable, the blocked first one is not anyone’s', async () => {
    const b = await client('blocking');
    const r = await b.responses.create({ model: 'gpt-4o', input: 'the secret' });
    assert.equal(r.output_text, '');
    await withheld(b.responses.retrieve(r.id), 'GET of a blocked response');

    const ra = await client('reasking');
    const before = stored.size;
    const second = await ra.responses.create({ model: 'gpt-4o', input: 'the secret' });
    assert.equal(second.output_text, CLEAN);
    assert.equal(stored.size, before + 2, 'two upstream responses: the blocked one and the re-ask');
    assert.equal(await ownerRow(second.id), 'passed');
    assert.equal(textOf(await ra.responses.retrieve(second.id)), CLEAN);
    const first = [...stored.keys()].at(-2)!;
    const res = await fetch(`${g.url}/v1/responses/${first}`, { headers: { authorization: `Bearer ${ra.apiKey}` } });
    assert.equal(res.status, 404, 'the blocked first answer was never recorded as the caller’s');
  });

  test('shadow mode changes nothing, live or read back', async () => {
    const s = await client('shadowed');
    const r = await s.responses.create({ model: 'gpt-4o', input: 'the secret' });
    assert.match(r.output_text, /ghp_/);
    assert.equal(await ownerRow(r.id), 'unscanned');
    assert.match(textOf(await s.responses.retrieve(r.id)), /ghp_/);
  });
});
