/**
 * A batch output file streamed through the response guards' read-time check, when things go
 * wrong: the upstream body fails mid-download, a single line is over `upstream.maxResponseBytes`,
 * the client leaves while the upstream stalls. The download ends, the upstream request is
 * released, nothing is left unhandled, and the gateway keeps serving.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ServerResponse } from 'node:http';
import { request } from 'undici';
import { gatewayOverMock } from '../helpers/mock-gateway.js';
import type { MockUpstream, Recorded } from '../helpers/mock-upstream.js';
import type { TestGateway } from '../helpers/gateway.js';
import { waitFor } from '../identity/util.js';

const cleanups: Array<() => void | Promise<void>> = [];
const problems: string[] = [];
const onUncaught = (e: unknown) => problems.push(`uncaught: ${(e as Error)?.stack ?? e}`);
const onUnhandled = (e: unknown) => problems.push(`unhandled: ${(e as Error)?.stack ?? e}`);
process.on('uncaughtException', onUncaught);
process.on('unhandledRejection', onUnhandled);
after(async () => {
  process.off('uncaughtException', onUncaught);
  process.off('unhandledRejection', onUnhandled);
  for (const c of cleanups.reverse()) await c();
});

const MAX = 65_536;
const IN = JSON.stringify({ custom_id: 'r1', method: 'POST', url: '/v1/chat/completions', body: { model: 'gpt-4o', messages: [{ role: 'user', content: 'hello' }] } }) + '\n';
const outLine = (i: number, text = `Answer ${i}`) => JSON.stringify({ id: `b${i}`, custom_id: `r${i}`, response: { status_code: 200, body: { id: `c${i}`, object: 'chat.completion', created: 1, model: 'gpt-4o', choices: [{ index: 0, message: { role: 'assistant', content: text }, finish_reason: 'stop' }] } } }) + '\n';
let mode: 'ok' | 'error' | 'huge' | 'stall' = 'ok';
let mock: MockUpstream;
let g: TestGateway;

/** An OpenAI upstream with one batch whose output file misbehaves as `mode` says. */
function upstream(req: Recorded, res: ServerResponse): void | Promise<void> {
  const send = (b: unknown, type = 'application/json') => {
    res.writeHead(200, { 'content-type': type });
    res.end(typeof b === 'string' ? b : JSON.stringify(b));
  };
  const [path] = req.url.split('?');
  const batch = { id: 'batch_1', object: 'batch', endpoint: '/v1/chat/completions', input_file_id: 'file-in', completion_window: '24h', status: 'completed', created_at: 1, output_file_id: 'file-out1', error_file_id: null };
  if (req.method === 'POST' && path === '/v1/files') return send({ id: 'file-in', object: 'file', bytes: IN.length, created_at: 1, filename: 'in.jsonl', purpose: 'batch', status: 'processed' });
  if (req.method === 'GET' && path === '/v1/files/file-in/content') return send(IN, 'application/octet-stream');
  if (req.method === 'POST' && path === '/v1/batches') return send(batch);
  if (req.method === 'GET' && path === '/v1/batches/batch_1') return send(batch);
  if (req.method === 'GET' && path === '/v1/files/file-out1/content') {
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    if (mode === 'ok') return void res.end(outLine(1, 'Write to jane.roe@example.org') + outLine(2));
    res.write(outLine(1));
    if (mode === 'error') return void setTimeout(() => res.destroy(), 20); // the connection drops mid-body
    if (mode === 'huge') {
      const big = 'x'.repeat(16_384);
      let n = 0;
      const t = setInterval(() => {
        if (n++ > 10 || res.destroyed) {
          clearInterval(t);
          res.end();
          return;
        }
        res.write(big); // one line, never ended, over MAX
      }, 5);
      return;
    }
    return new Promise<void>((r) => res.once('close', () => r())); // stall until the gateway lets go
  }
  res.writeHead(404);
  res.end('{}');
}

before(async () => {
  ({ g, mock } = await gatewayOverMock({ guards: { response: { pii: { action: 'redact' } } }, upstream: { maxResponseBytes: MAX, streamIdleTimeoutMs: 60_000 } }, cleanups));
  mock.handler = upstream;
  const h = { authorization: `Bearer ${g.key}` };
  const fd = new FormData();
  fd.append('purpose', 'batch');
  fd.append('file', new Blob([IN]), 'in.jsonl');
  assert.equal((await fetch(`${g.url}/v1/files`, { method: 'POST', headers: h, body: fd })).status, 200);
  const b = await fetch(`${g.url}/v1/batches`, { method: 'POST', headers: { ...h, 'content-type': 'application/json' }, body: JSON.stringify({ input_file_id: 'file-in', endpoint: '/v1/chat/completions', completion_window: '24h' }) });
  assert.equal(b.status, 200, await b.text());
  assert.equal((await fetch(`${g.url}/v1/batches/batch_1`, { headers: h })).status, 200); // adopts the output file
});

const download = (signal?: AbortSignal) => request(`${g.url}/v1/files/file-out1/content`, { headers: { authorization: `Bearer ${g.key}` }, ...(signal ? { signal } : {}) });

async function stillServing(): Promise<void> {
  await waitFor(async () => mock.inFlight === 0, 5000); // the upstream download was released
  const r = await request(`${g.url}/healthz`);
  await r.body.text();
  assert.equal(r.statusCode, 200);
  assert.deepEqual(problems, []);
}

test('a clean download is redacted line by line', async () => {
  mode = 'ok';
  const r = await download();
  const text = await r.body.text();
  assert.equal(r.statusCode, 200);
  assert.equal(text.trim().split('\n').length, 2);
  assert.doesNotMatch(text, /jane\.roe/);
});

test('the upstream body failing mid-download ends the download; the gateway lives', async () => {
  mode = 'error';
  const r = await download();
  await assert.rejects(r.body.text());
  await stillServing();
});

test('a line over upstream.maxResponseBytes ends the download and releases the upstream', async () => {
  mode = 'huge';
  const r = await download();
  await assert.rejects(r.body.text());
  await stillServing();
});

test('a client that leaves while the upstream stalls releases the upstream download at once', async () => {
  mode = 'stall';
  const ac = new AbortController();
  const r = await download(ac.signal);
  for await (const _ of r.body) break; // the first line arrived
  ac.abort();
  await stillServing();
});
