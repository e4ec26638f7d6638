/**
 * Object endpoints through the OpenAI adapter against a local mock upstream: the upstream
 * credential (never the client's key) is sent, multipart uploads stream through unchanged,
 * only known query parameters are forwarded, ownership is recorded from upstream ids, list
 * pages are filtered and objects made upstream for a batch (output files) follow it.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI, { toFile } from 'openai';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { startMockUpstream, type MockUpstream, type Recorded } from '../helpers/mock-upstream.js';
import type { ServerResponse } from 'node:http';

const UPSTREAM_KEY = ['up', 'stream', 'secret', 'value'].join('-');

function send(res: ServerResponse, status: number, body: unknown, type = 'application/json'): void {
  res.writeHead(status, { 'content-type': type });
  res.end(typeof body === 'string' ? body : JSON.stringify(body));
}

/** The batch input file `file-up1` (one request: the gateway checks it before a batch runs it). */
const UP1 = JSON.stringify({ custom_id: 'r1', method: 'POST', url: '/v1/chat/completions', body: { model: 'gpt-4o', messages: [{ role: 'user', content: 'hello' }] } }) + '\n';

/** A scripted OpenAI: a few fixed objects plus one the gateway never saw (`file-foreign`). */
function fakeOpenAi(req: Recorded, res: ServerResponse): void {
  const [path] = req.url.split('?');
  const file = (id: string) => ({ id, object: 'file', bytes: 5, created_at: 1, filename: 'x.jsonl', purpose: 'batch', status: 'processed' });
  const batch = (status: string) => ({ id: 'batch_up1', object: 'batch', endpoint: '/v1/chat/completions', input_file_id: 'file-up1', completion_window: '24h', status, created_at: 1, output_file_id: status === 'completed' ? 'file-out1' : null, error_file_id: null });
  if (req.method === 'POST' && path === '/v1/files') return send(res, 200, file('file-up1'));
  if (req.method === 'GET' && path === '/v1/files') return send(res, 200, { object: 'list', data: [file('file-foreign'), file('file-up1'), file('file-out1')], has_more: false });
  if (req.method === 'GET' && path === '/v1/files/file-up1/content') return send(res, 200, UP1, 'application/octet-stream');
  if (req.method === 'GET' && path === '/v1/files/file-out1/content') return send(res, 200, '{"ok":true}\n', 'application/octet-stream');
  if (req.method === 'DELETE' && path === '/v1/files/file-up1') return send(res, 200, { id: 'file-up1', object: 'file', deleted: true });
  if (req.method === 'POST' && path === '/v1/batches') return send(res, 200, batch('validating'));
  if (req.method === 'GET' && path === '/v1/batches/batch_up1') return send(res, 200, batch('completed'));
  if (req.method === 'POST' && path === '/v1/batches/batch_up1/cancel') return send(res, 200, batch('cancelling'));
  if (req.method === 'GET' && path === '/v1/vector_stores/vs_gone') return send(res, 404, { error: { message: 'No such vector store', type: 'invalid_request_error' } });
  send(res, 404, { error: { message: 'unknown', type: 'invalid_request_error' } });
}

describe('object endpoints through the OpenAI adapter', () => {
  let mock: MockUpstream;
  let g: TestGateway;
  let a: OpenAI;
  let b: OpenAI;

  before(async () => {
    mock = await startMockUpstream(fakeOpenAi);
    g = await startGateway(
      { providers: { up: { type: 'openai', baseUrl: `${mock.url}/v1`, apiKeyEnv: 'UP_KEY' } }, routes: [{ model: 'gpt-*', provider: 'up' }] },
      { env: { UP_KEY: UPSTREAM_KEY } },
    );
    a = new OpenAI({ apiKey: g.key, baseURL: `${g.url}/v1`, maxRetries: 0 });
    b = new OpenAI({ apiKey: await g.newKey('tenant-b'), baseURL: `${g.url}/v1`, maxRetries: 0 });
  });
  after(async () => {
    await g.close();
    await mock.close();
  });

  test('upload streams the multipart body through with the upstream credential', async () => {
    const f = await a.files.create({ file: await toFile(Buffer.from('{"a":1}\n'), 'in.jsonl'), purpose: 'batch' });
    assert.equal(f.id, 'file-up1');
    const up = mock.requests.at(-1)!;
    assert.equal(up.method, 'POST');
    assert.equal(up.url, '/v1/files');
    assert.equal(up.headers.authorization, `Bearer ${UPSTREAM_KEY}`);
    assert.match(String(up.headers['content-type']), /^multipart\/form-data; boundary=/);
    assert.match(String(up.body), /name="purpose"\r\n\r\nbatch/);
    assert.match(String(up.body), /filename="in.jsonl"/);
    assert.ok(String(up.body).includes('{"a":1}'));
    assert.ok(up.headers['x-request-id']);
    for (const r of mock.requests) assert.ok(!JSON.stringify(r.headers).includes(g.key), 'the client key never goes upstream');
  });

  test('lists are filtered to owned ids; only known query parameters are forwarded', async () => {
    const res = await fetch(`${g.url}/v1/files?limit=5&order=asc&purpose=batch&foo=bar&url=http://evil`, { headers: { authorization: `Bearer ${g.key}` } });
    const page = (await res.json()) as { data: Array<{ id: string }>; has_more: boolean };
    assert.deepEqual(page.data.map((f) => f.id), ['file-up1']);
    const q = new URL(mock.requests.at(-1)!.url, 'http://x').searchParams;
    assert.equal(q.get('order'), 'asc');
    assert.equal(q.get('purpose'), 'batch');
    assert.equal(q.get('foo'), null);
    assert.equal(q.get('url'), null);
    assert.deepEqual((await b.files.list()).data, []);
  });

  test('batches: create/get/cancel pass through; the output file is adopted by the batch owner', async () => {
    const bt = await a.batches.create({ input_file_id: 'file-up1', endpoint: '/v1/chat/completions', completion_window: '24h' });
    assert.equal(bt.id, 'batch_up1');
    assert.deepEqual(mock.requests.at(-1)!.body, { input_file_id: 'file-up1', endpoint: '/v1/chat/completions', completion_window: '24h' });
    await assert.rejects(b.batches.retrieve('batch_up1'), (e: { status?: number }) => e.status === 404);
    const n = mock.requests.length;
    await assert.rejects(b.batches.cancel('batch_up1'), (e: { status?: number }) => e.status === 404);
    assert.equal(mock.requests.length, n, 'a refused call never reaches the upstream');
    assert.equal((await a.batches.retrieve('batch_up1')).output_file_id, 'file-out1');
    assert.equal(await (await a.files.content('file-out1')).text(), '{"ok":true}\n');
    await assert.rejects(b.files.content('file-out1'), (e: { status?: number }) => e.status === 404);
    assert.equal((await a.batches.cancel('batch_up1')).status, 'cancelling');
    assert.equal(mock.requests.at(-1)!.url, '/v1/batches/batch_up1/cancel');
  });

  test('objects the gateway never saw are 404 without asking the upstream; deletes forget ownership', async () => {
    const n = mock.requests.length;
    await assert.rejects(a.files.retrieve('file-foreign'), (e: { status?: number }) => e.status === 404);
    await assert.rejects(a.files.retrieve('../../admin'), (e: { status?: number }) => e.status === 404);
    for (const id of ['%2E%2E', '.', '%2E%2E%2Fbatches', 'x%2F..%2F..']) {
      const r = await fetch(`${g.url}/v1/files/${id}/content`, { headers: { authorization: `Bearer ${g.key}` } });
      assert.equal(r.status, 404, id);
    }
    assert.equal(mock.requests.length, n);
    assert.equal(await (await a.files.content('file-up1')).text(), UP1);
    assert.equal((await a.files.delete('file-up1')).deleted, true);
    const n2 = mock.requests.length;
    await assert.rejects(a.files.retrieve('file-up1'), (e: { status?: number }) => e.status === 404);
    assert.equal(mock.requests.length, n2);
  });
});
