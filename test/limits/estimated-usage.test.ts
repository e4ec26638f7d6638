/**
 * Settlement when the upstream reports no final usage: a server that ignores
 * `stream_options.include_usage`, a body without `usage`, a client that goes away before the usage
 * chunk. Such a request reached the upstream and got (part of) an answer, so it is charged on an
 * estimate (the admission's input estimate + the output the upstream sent, counted) instead of
 * being released as if it had failed. Real gateway, real HTTP, a scripted mock upstream.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import type { AuditModule } from '../../src/audit/module.js';
import { approxTokens } from '../../src/limits/tokens.js';
import { auditEventOf } from '../helpers/audit.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { startMockUpstream, type MockUpstream } from '../helpers/mock-upstream.js';
import { chatText, postJson, postSse, scriptedChat } from '../guards/response/helpers.js';

const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

async function gateway(limits: Record<string, unknown>): Promise<{ g: TestGateway; mock: MockUpstream }> {
  const mock = await startMockUpstream();
  const g = await startGateway({ providers: { mock: { type: 'openai', baseUrl: `${mock.url}/v1` } }, routes: [{ model: 'mock-*', provider: 'mock' }], limits });
  cleanups.push(() => g.close(), () => mock.close());
  return { g, mock };
}

const ask = (stream: boolean, extra: Record<string, unknown> = {}) => ({ model: 'mock-1', stream, messages: [{ role: 'user', content: 'Write the report.' }], ...extra });
/** ~300 tokens of ASCII by the estimate. */
const PIECE = 'The quarterly figures are in line with the plan and the team met most of its goals. '.repeat(12);
const audit = (g: TestGateway) => g.gw.modules.get('audit') as AuditModule;

test('a stream from an upstream that ignores include_usage is charged on an estimate, not released', async () => {
  const { g, mock } = await gateway({ defaults: { key: { dailyRequests: 2 } } });
  mock.handler = (req, res) => {
    delete req.body.stream_options; // a server without stream usage
    scriptedChat(req, res, [PIECE, PIECE]);
  };
  const first = await postSse(`${g.url}/v1/chat/completions`, g.key, ask(true));
  assert.equal(first.status, 200);
  assert.equal(chatText(first.events).text, PIECE + PIECE);
  const ev = await auditEventOf(audit(g), first.headers.get('x-request-id')!);
  assert.equal(ev.limits?.settled, 'estimated', JSON.stringify(ev.limits));
  assert.equal(ev.limits?.estimatedOutputTokens, approxTokens(PIECE + PIECE));
  assert.equal(ev.tokensOut, undefined, 'the event keeps the reported usage (none), the estimate is in limits');
  assert.equal((await postSse(`${g.url}/v1/chat/completions`, g.key, ask(true))).status, 200);
  const third = await postJson(`${g.url}/v1/chat/completions`, g.key, ask(false));
  assert.equal(third.status, 429, 'both streams counted against the daily request budget of 2');
  assert.equal(third.body.error.code, 'insufficient_quota');
});

test('a body without usage is charged its input estimate + the counted output against a token budget', async () => {
  const { g, mock } = await gateway({ defaults: { key: { dailyTokens: 1000 } } });
  const text = PIECE.repeat(4); // ~1 200 tokens: more than the budget
  mock.handler = (req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ id: 'c1', object: 'chat.completion', created: 1, model: req.body.model, choices: [{ index: 0, message: { role: 'assistant', content: text }, finish_reason: 'stop' }] }));
  };
  const first = await postJson(`${g.url}/v1/chat/completions`, g.key, ask(false, { max_tokens: 50 }));
  assert.equal(first.status, 200);
  const ev = await auditEventOf(audit(g), first.headers.get('x-request-id')!);
  assert.equal(ev.limits?.settled, 'estimated');
  assert.equal(ev.limits?.estimatedOutputTokens, approxTokens(text));
  const second = await postJson(`${g.url}/v1/chat/completions`, g.key, ask(false, { max_tokens: 50 }));
  assert.equal(second.status, 429, 'the budget was charged the ~1 200 estimated tokens');
  assert.equal(second.body.error.code, 'insufficient_quota');
  assert.match(second.body.error.message, /token budget/);
});

test('a client that goes away before the usage chunk is charged the output it was sent', { timeout: 20_000 }, async () => {
  const { g, mock } = await gateway({ defaults: { key: { dailyTokens: 100_000 } } });
  let closed!: () => void;
  const upstreamGone = new Promise<void>((r) => (closed = r));
  mock.handler = async (req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    const base = { id: 'c1', object: 'chat.completion.chunk', created: 1, model: req.body.model };
    // Both content events in one write: the gateway reads them together, before the client can leave.
    res.write(`data: ${JSON.stringify({ ...base, choices: [{ index: 0, delta: { role: 'assistant', content: PIECE }, finish_reason: null }] })}\n\ndata: ${JSON.stringify({ ...base, choices: [{ index: 0, delta: { content: PIECE }, finish_reason: null }] })}\n\n`);
    res.once('close', closed);
    // The usage would come much later; the client leaves first.
    await new Promise((r) => setTimeout(r, 5000).unref());
    if (!res.destroyed) res.end(`data: ${JSON.stringify({ ...base, choices: [], usage: { prompt_tokens: 5, completion_tokens: 9999, total_tokens: 10004 } })}\n\ndata: [DONE]\n\n`);
  };
  const ac = new AbortController();
  const r = await fetch(`${g.url}/v1/chat/completions`, { method: 'POST', signal: ac.signal, headers: { authorization: `Bearer ${g.key}`, 'content-type': 'application/json' }, body: JSON.stringify(ask(true)) });
  const id = r.headers.get('x-request-id')!;
  const reader = r.body!.getReader();
  // Leave once some content arrived (the response guards hold a tail back until more comes).
  const decoder = new TextDecoder();
  let got = '';
  while (!got.includes('quarterly figures')) {
    const { value, done } = await reader.read();
    assert.ok(!done, `the stream ended early: ${got}`);
    got += decoder.decode(value, { stream: true });
  }
  ac.abort();
  await upstreamGone;
  const ev = await auditEventOf(audit(g), id);
  assert.equal(ev.aborted, true);
  assert.equal(ev.limits?.settled, 'estimated', JSON.stringify(ev.limits));
  assert.equal(ev.limits?.estimatedOutputTokens, approxTokens(PIECE + PIECE), 'the output sent before the client left');
});

test('a stream whose usage arrived is settled on it, not on the estimate', async () => {
  const { g, mock } = await gateway({ defaults: { key: { dailyTokens: 100_000 } } });
  mock.handler = (req, res) => scriptedChat(req, res, [PIECE, PIECE]); // usage 5 + 5
  const r = await postSse(`${g.url}/v1/chat/completions`, g.key, ask(true));
  assert.equal(r.status, 200);
  const ev = await auditEventOf(audit(g), r.headers.get('x-request-id')!);
  assert.equal(ev.limits?.settled, 'settled');
  assert.equal(ev.limits?.estimatedOutputTokens, undefined);
  assert.equal(ev.tokensOut, 5);
});
