/**
 * Object ownership (BOLA) through the gateway with the official `openai` client and the demo
 * upstream: tenant B cannot read, list, download, cancel or delete tenant A's files, batches,
 * fine-tuning jobs, vector stores or stored responses (404, like an unknown id), nor name them
 * inside its own requests; lists show only the caller's objects and paginate over them.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI, { NotFoundError, toFile } from 'openai';
import { startGateway, type TestGateway } from '../helpers/gateway.js';

const batchLine = (i: number) => JSON.stringify({ custom_id: `r${i}`, method: 'POST', url: '/v1/chat/completions', body: { model: 'demo', messages: [{ role: 'user', content: `question ${i}` }] } });
const jsonl = (n: number) => Buffer.from(Array.from({ length: n }, (_, i) => batchLine(i)).join('\n') + '\n');

/** Asserts that a call fails with 404 (the SDK's NotFoundError). */
async function notFound(p: Promise<unknown>, what: string): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof NotFoundError, `${what}: expected 404, got ${(e as { status?: number })?.status ?? e}`);
    return true;
  });
}

describe('object ownership (BOLA) with the demo upstream', () => {
  let g: TestGateway;
  let a: OpenAI; // tenant default
  let a2: OpenAI; // another key of the same tenant
  let b: OpenAI; // tenant-b
  let raw: (method: string, path: string, key: string, body?: unknown) => Promise<Response>;
  let keyB: string;

  before(async () => {
    g = await startGateway();
    const mk = (key: string) => new OpenAI({ apiKey: key, baseURL: `${g.url}/v1`, maxRetries: 0 });
    a = mk(g.key);
    a2 = mk(await g.newKey('default', 'second'));
    keyB = await g.newKey('tenant-b');
    b = mk(keyB);
    raw = (method, path, key, body) =>
      fetch(`${g.url}${path}`, { method, headers: { authorization: `Bearer ${key}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) }, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
  });
  after(async () => g.close());

  test('files: upload, list, retrieve, download and delete are tenant-bound', async () => {
    const fa1 = await a.files.create({ file: await toFile(jsonl(2), 'a1.jsonl'), purpose: 'batch' });
    const fa2 = await a.files.create({ file: new File([jsonl(1)], 'a2.jsonl'), purpose: 'batch' });
    const fb = await b.files.create({ file: await toFile(Buffer.from('b only'), 'b.txt'), purpose: 'assistants' });
    assert.equal(fa1.bytes, jsonl(2).length);

    const listA = (await a.files.list()).data.map((f) => f.id).sort();
    assert.deepEqual(listA, [fa1.id, fa2.id].sort());
    assert.deepEqual((await b.files.list()).data.map((f) => f.id), [fb.id]);
    assert.deepEqual((await a2.files.list()).data.map((f) => f.id).sort(), listA, 'same tenant, other key');

    await notFound(b.files.retrieve(fa1.id), 'retrieve');
    await notFound(b.files.content(fa1.id), 'content');
    await notFound(b.files.delete(fa1.id), 'delete');
    await notFound(a.files.retrieve(fb.id), 'A reads B');

    // The 404 for someone else's object looks like the 404 for an object that never existed.
    const foreign = await raw('GET', `/v1/files/${fa1.id}`, keyB);
    const missing = await raw('GET', `/v1/files/file-doesnotexist000000000000`, keyB);
    const ej = (await foreign.json()) as { error: Record<string, unknown> };
    const mj = (await missing.json()) as { error: Record<string, unknown> };
    assert.equal(foreign.status, 404);
    assert.equal(missing.status, 404);
    assert.deepEqual({ ...ej.error, message: '' }, { ...mj.error, message: '' });
    assert.equal(String(ej.error.message).replace(fa1.id, 'ID').replace(/request id: \S+/, ''), String(mj.error.message).replace('file-doesnotexist000000000000', 'ID').replace(/request id: \S+/, ''));

    // The owner still has everything.
    assert.equal((await a2.files.retrieve(fa1.id)).id, fa1.id);
    assert.equal(Buffer.from(await (await a.files.content(fa1.id)).arrayBuffer()).toString(), jsonl(2).toString());
    assert.equal((await a.files.delete(fa2.id)).deleted, true);
    await notFound(a.files.retrieve(fa2.id), 'deleted file');
  });

  test('batches: create needs an owned input file; get, cancel and list are tenant-bound; output files follow the batch', async () => {
    const fa = await a.files.create({ file: await toFile(jsonl(3), 'in.jsonl'), purpose: 'batch' });
    await notFound(b.batches.create({ input_file_id: fa.id, endpoint: '/v1/chat/completions', completion_window: '24h' }), 'B batches A file');

    const held = await a.batches.create({ input_file_id: fa.id, endpoint: '/v1/chat/completions', completion_window: '24h', metadata: { demo_hold: 'true' } });
    const done = await a.batches.create({ input_file_id: fa.id, endpoint: '/v1/chat/completions', completion_window: '24h' });
    const fb = await b.files.create({ file: await toFile(jsonl(1), 'b.jsonl'), purpose: 'batch' });
    const bb = await b.batches.create({ input_file_id: fb.id, endpoint: '/v1/chat/completions', completion_window: '24h', metadata: { demo_hold: 'true' } });

    await notFound(b.batches.retrieve(held.id), 'retrieve');
    await notFound(b.batches.cancel(held.id), 'cancel');
    assert.equal((await a.batches.retrieve(held.id)).status, 'in_progress', 'B’s cancel changed nothing');
    assert.deepEqual((await a.batches.list()).data.map((x) => x.id).sort(), [held.id, done.id].sort());
    assert.deepEqual((await b.batches.list()).data.map((x) => x.id), [bb.id]);
    assert.equal((await a.batches.cancel(held.id)).status, 'cancelled');

    // The output file the upstream wrote for A's batch is A's, not B's.
    const got = await a.batches.retrieve(done.id);
    assert.equal(got.status, 'completed');
    assert.ok(got.output_file_id);
    const out = await (await a.files.content(got.output_file_id!)).text();
    assert.equal(out.trim().split('\n').length, 3);
    await notFound(b.files.content(got.output_file_id!), 'B downloads A output');
  });

  test('fine-tuning jobs: training file must be owned; get, cancel and list are tenant-bound', async () => {
    const fa = await a.files.create({ file: await toFile(jsonl(2), 'train.jsonl'), purpose: 'fine-tune' });
    await notFound(b.fineTuning.jobs.create({ model: 'demo', training_file: fa.id }), 'B trains on A file');
    const job = await a.fineTuning.jobs.create({ model: 'demo', training_file: fa.id });
    const fb = await b.files.create({ file: await toFile(jsonl(2), 'train.jsonl'), purpose: 'fine-tune' });
    const jobB = await b.fineTuning.jobs.create({ model: 'demo', training_file: fb.id });
    await notFound(b.fineTuning.jobs.retrieve(job.id), 'retrieve');
    await notFound(b.fineTuning.jobs.cancel(job.id), 'cancel');
    assert.equal((await a.fineTuning.jobs.retrieve(job.id)).status, 'queued');
    assert.deepEqual((await a.fineTuning.jobs.list()).data.map((j) => j.id), [job.id]);
    assert.deepEqual((await b.fineTuning.jobs.list()).data.map((j) => j.id), [jobB.id]);
    assert.equal((await a.fineTuning.jobs.cancel(job.id)).status, 'cancelled');
  });

  test('vector stores: file ids must be owned; get, delete and list are tenant-bound; pagination over own objects', async () => {
    const fa = await a.files.create({ file: await toFile(Buffer.from('doc'), 'doc.txt'), purpose: 'assistants' });
    await notFound(b.vectorStores.create({ name: 'steal', file_ids: [fa.id] }), 'B indexes A file');
    const mine: string[] = [];
    for (let i = 0; i < 3; i++) {
      mine.push((await a.vectorStores.create({ name: `a${i}`, ...(i === 0 ? { file_ids: [fa.id] } : {}) })).id);
      await b.vectorStores.create({ name: `b${i}` }); // interleaved with A's
    }
    const vb = (await b.vectorStores.list()).data;
    assert.equal(vb.length, 3);
    await notFound(b.vectorStores.retrieve(mine[0]!), 'retrieve');
    await notFound(b.vectorStores.delete(mine[0]!), 'delete');

    const p1 = await a.vectorStores.list({ limit: 2 });
    assert.equal(p1.data.length, 2);
    assert.equal(p1.has_more, true);
    const p2 = await a.vectorStores.list({ limit: 2, after: p1.data[1]!.id });
    assert.equal(p2.data.length, 1);
    assert.deepEqual([...p1.data, ...p2.data].map((v) => v.id).sort(), [...mine].sort());
    const all: string[] = [];
    for await (const v of a.vectorStores.list({ limit: 1 })) all.push(v.id);
    assert.deepEqual(all.sort(), [...mine].sort(), 'SDK auto-pagination sees exactly A’s stores');
    // Another tenant's id is not a usable cursor.
    const cursor = await raw('GET', `/v1/vector_stores?limit=2&after=${vb[0]!.id}`, g.key);
    assert.equal(cursor.status, 404);

    assert.equal((await a.vectorStores.delete(mine[2]!)).deleted, true);
    await notFound(a.vectorStores.retrieve(mine[2]!), 'deleted store');
  });

  test('stored responses: retrieve/delete/previous_response_id are tenant-bound, streamed ones too', async () => {
    const r = await a.responses.create({ model: 'demo', input: 'Hello there' });
    const chunks = await a.responses.create({ model: 'demo', input: 'Stream please', stream: true });
    let streamedId = '';
    for await (const ev of chunks) if (ev.type === 'response.created') streamedId = ev.response.id;
    assert.ok(streamedId);

    for (const id of [r.id, streamedId]) {
      await notFound(b.responses.retrieve(id), 'retrieve');
      await notFound(b.responses.delete(id), 'delete');
      assert.equal((await a.responses.retrieve(id)).id, id);
    }
    await notFound(b.responses.create({ model: 'demo', input: 'What is the capital of France?', previous_response_id: r.id }), 'B continues A conversation');
    const cont = await a.responses.create({ model: 'demo', input: 'What is the capital of France?', previous_response_id: r.id });
    assert.ok(cont.id);
    await a.responses.delete(r.id);
    await notFound(a.responses.retrieve(r.id), 'deleted response');

    // file_id inside chat content is an object reference too.
    const fa = await a.files.create({ file: await toFile(Buffer.from('%PDF-1.4'), 'x.pdf'), purpose: 'user_data' });
    const chat = await raw('POST', '/v1/chat/completions', keyB, { model: 'demo', messages: [{ role: 'user', content: [{ type: 'file', file: { file_id: fa.id } }] }] });
    assert.equal(chat.status, 404);
    // … and inside a prompt template's variables.
    const vars = await raw('POST', '/v1/responses', keyB, { model: 'demo', input: 'Summarise the document.', prompt: { id: 'pmpt_1', variables: { doc: { type: 'input_file', file_id: fa.id } } } });
    assert.equal(vars.status, 404);
    // An output item of a stored response (what `item_reference` names) is its owner's alone.
    const withItem = await a.responses.create({ model: 'demo', input: 'Tell me a fact.' });
    const itemId = withItem.output[0]!.id!;
    assert.ok(itemId);
    const refBody = { model: 'demo', input: [{ type: 'item_reference', id: itemId }, { role: 'user', content: 'And another?' }] };
    assert.equal((await raw('POST', '/v1/responses', keyB, refBody)).status, 404, 'B references A item');
    assert.equal((await raw('POST', '/v1/responses', keyB, { ...refBody, input: [{ type: 'item_reference', id: 'msg_never_seen' }] })).status, 404, 'an item the gateway never saw');
    assert.equal((await raw('POST', '/v1/responses', g.key, refBody)).status, 200, 'the owner may');
    // The item reference's `type` is optional in the API: without it (or null) it is checked all the same.
    for (const ref of [{ id: itemId }, { type: null, id: itemId }]) assert.equal((await raw('POST', '/v1/responses', keyB, { ...refBody, input: [ref, { role: 'user', content: 'And another?' }] })).status, 404, JSON.stringify(ref));
    // A body with more parts than the reference walk checks is refused, not half-checked.
    const padded = await raw('POST', '/v1/responses', keyB, { model: 'demo', input: [{ role: 'user', content: Array.from({ length: 200_001 }, () => ({})) }], tools: [{ type: 'file_search', vector_store_ids: ['vs_x'] }] });
    assert.equal(padded.status, 400);
    // Conversations are not routed, so their owners are unknown: refused.
    const conv = await raw('POST', '/v1/responses', g.key, { model: 'demo', input: 'hi', conversation: 'conv_abc' });
    assert.equal(conv.status, 400);
    assert.match(((await conv.json()) as { error: { message: string } }).error.message, /conversation/);
    const vs = await a.vectorStores.create({ name: 'kb' });
    await notFound(b.responses.create({ model: 'demo', input: 'What is the capital of France?', tools: [{ type: 'file_search', vector_store_ids: [vs.id] }] }), 'B searches A store');
  });

  test('the policy guards object operations (403), and unknown routes stay 404', async () => {
    const tenantKey = await g.newKey('tenant-c');
    await g.gw.db.kysely.updateTable('api_keys').set({ scopes: JSON.stringify({ operations: ['chat'] }) }).where('id', '=', tenantKey.split('_')[1]!).execute();
    g.gw.identity.invalidate();
    const limited = new OpenAI({ apiKey: tenantKey, baseURL: `${g.url}/v1`, maxRetries: 0 });
    await assert.rejects(limited.files.list(), (e: { status?: number }) => e.status === 403);
    await assert.rejects(limited.batches.list(), (e: { status?: number }) => e.status === 403);
    assert.equal((await raw('GET', '/v1/files', 'pcl_nope')).status, 401);
    assert.equal((await raw('GET', '/v1/assistants', g.key)).status, 404);
  });

  test('uploads must be multipart; JSON bodies to /v1/files are refused', async () => {
    const r = await raw('POST', '/v1/files', g.key, { purpose: 'batch' });
    assert.equal(r.status, 415);
  });
});

describe('multipart uploads respect the body limit', () => {
  let g: TestGateway;
  before(async () => {
    g = await startGateway({ server: { bodyLimit: '64kb' } });
  });
  after(async () => g.close());

  test('an oversized upload is refused with 413 and records nothing; a small one passes', async () => {
    const a = new OpenAI({ apiKey: g.key, baseURL: `${g.url}/v1`, maxRetries: 0 });
    await assert.rejects(a.files.create({ file: await toFile(Buffer.alloc(200 * 1024, 97), 'big.txt'), purpose: 'assistants' }), (e: { status?: number }) => e.status === 413);
    // Chunked upload without a content-length: the streaming counter stops it.
    const form = new FormData();
    form.set('purpose', 'assistants');
    form.set('file', new File([Buffer.alloc(200 * 1024, 98)], 'big2.txt'));
    const body = new Response(form);
    const stream = body.body!;
    const res = await fetch(`${g.url}/v1/files`, { method: 'POST', headers: { authorization: `Bearer ${g.key}`, 'content-type': body.headers.get('content-type')! }, body: stream, duplex: 'half' } as RequestInit);
    assert.equal(res.status, 413);
    const rows = await g.gw.db.kysely.selectFrom('object_owners').selectAll().execute();
    assert.equal(rows.length, 0);
    const ok = await a.files.create({ file: await toFile(Buffer.alloc(10 * 1024, 99), 'small.txt'), purpose: 'assistants' });
    assert.equal(ok.bytes, 10 * 1024);
  });
});
