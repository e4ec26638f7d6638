/**
 * Reservations and their settlement: what admission reserves (answers × output cap, no output for
 * embeddings, the policy's cap, the cap field each API honours) and when settlement keeps or gives
 * back a reservation (background Responses, a request the upstream had when the client left or the
 * gateway timed out, a client gone before its admission completed). Limiter units on the memory
 * store, the limits module on a fake context (memory and Redis), and a real gateway over HTTP.
 */
import assert from 'node:assert/strict';
import type { ServerResponse } from 'node:http';
import { after, describe, test } from 'node:test';
import type { AuditModule } from '../../src/audit/module.js';
import { GatewayError } from '../../src/errors.js';
import { createLimiter, createMemoryCounterStore, parseLimitsConfig, type AdmitRequest, type Limiter } from '../../src/limits/index.js';
import { answersOf, limitsModule, requestedOutput, type LimitsModule, type LimitsState } from '../../src/limits/module.js';
import type { RequestContext } from '../../src/server/context.js';
import type { ModuleContext } from '../../src/server/modules.js';
import { auditEventOf } from '../helpers/audit.js';
import { auditOf, gatewayOverMock } from '../helpers/mock-gateway.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { redisReachable } from '../helpers/services.js';
import { startMockUpstream, type MockUpstream, type Recorded } from '../helpers/mock-upstream.js';
import { postJson } from '../guards/response/helpers.js';

const cleanups: Array<() => Promise<void> | void> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------
// The limiter: answers, no-output APIs, an outside cap.
// ---------------------------------------------------------------------------------------------

describe('limiter reservations (memory store)', () => {
  let seq = 0;
  const mk = (cfg: object = {}): Limiter => {
    const l = createLimiter({ config: parseLimitsConfig(cfg), store: createMemoryCounterStore({ sweepMs: 0 }), clock: () => 0 });
    cleanups.push(() => l.close());
    return l;
  };
  const req = (extra: Partial<AdmitRequest> = {}): AdmitRequest => ({ tenantId: `t${++seq}`, keyId: 'k1', model: 'demo', inputTokens: 10, messages: 1, limits: {}, ...extra });

  test('outputCount: the reservation is input + cap × answers, the tokens-per-minute check uses it, the ticket keeps the per-answer cap', async () => {
    const l = mk({ defaults: { key: { tokensPerMinute: 1000 } } });
    const a = await l.admit(req({ requestedOutputTokens: 100, outputCount: 8 }));
    assert.ok(a.ok);
    assert.equal(a.ticket.reservedTokens, 10 + 800);
    assert.equal(a.ticket.maxOutputTokens, 100);
    assert.equal(a.ticket.outputCount, 8);
    const over = await l.admit(req({ requestedOutputTokens: 200, outputCount: 8 }));
    assert.equal(over.ok, false, '10 + 200 × 8 tokens cannot fit a 1 000 tokens-per-minute limit');
    if (!over.ok) assert.match(over.error.message, /1610 tokens.*× 8 answers/);
    const one = await l.admit(req({ requestedOutputTokens: 200 }));
    assert.ok(one.ok && one.ticket.reservedTokens === 210 && one.ticket.outputCount === 1);
  });

  test('outputCount: budgets reserve every answer (a daily token budget sized for one answer refuses eight)', async () => {
    const l = mk({ defaults: { key: { dailyTokens: 2000 } } });
    assert.equal((await l.admit(req({ requestedOutputTokens: 500, outputCount: 8 }))).ok, false);
    assert.equal((await l.admit(req({ requestedOutputTokens: 500, outputCount: 3 }))).ok, true);
  });

  test('noOutput: nothing is reserved for output (embeddings fit a budget their input fits)', async () => {
    const l = mk({ defaults: { key: { tokensPerMinute: 50, dailyTokens: 50 } } });
    const a = await l.admit(req({ noOutput: true }));
    assert.ok(a.ok, 'a 10-token input under a 50-token limit');
    assert.equal(a.ticket.reservedTokens, 10);
    assert.equal(a.ticket.maxOutputTokens, 0);
    assert.equal((await l.admit(req())).ok, false, 'the same input with the default output cap does not fit');
  });

  test('outputCapLimit bounds the default cap and a requested cap, and the limit sets still lower it', async () => {
    const l = mk({ defaultMaxOutputTokens: 4096 });
    const dflt = await l.admit(req({ outputCapLimit: 100 }));
    assert.ok(dflt.ok && dflt.ticket.maxOutputTokens === 100 && dflt.ticket.reservedTokens === 110);
    const asked = await l.admit(req({ requestedOutputTokens: 5000, outputCapLimit: 100 }));
    assert.ok(asked.ok && asked.ticket.maxOutputTokens === 100);
    const l2 = mk({ defaults: { key: { maxOutputTokens: 50 } } });
    const both = await l2.admit(req({ outputCapLimit: 100 }));
    assert.ok(both.ok && both.ticket.maxOutputTokens === 50);
  });
});

// ---------------------------------------------------------------------------------------------
// The module's reading of a request: the cap field each API honours, the answers it asks for.
// ---------------------------------------------------------------------------------------------

test('requestedOutput reads the field the API honours (chat: the larger of its two); other fields are no cap', () => {
  assert.equal(requestedOutput('responses', { max_tokens: 1, max_output_tokens: 900 }), 900);
  assert.equal(requestedOutput('responses', { max_tokens: 1 }), undefined);
  assert.equal(requestedOutput('completions', { max_completion_tokens: 1, max_tokens: 900 }), 900);
  assert.equal(requestedOutput('messages', { max_completion_tokens: 1, max_tokens: 900 }), 900);
  assert.equal(requestedOutput('messages', { max_output_tokens: 1 }), undefined);
  assert.equal(requestedOutput('chat', { max_completion_tokens: 1, max_tokens: 900 }), 900);
  assert.equal(requestedOutput('chat', { max_completion_tokens: 900, max_tokens: 1 }), 900);
  assert.equal(requestedOutput('chat', { max_output_tokens: 1 }), undefined);
  assert.equal(requestedOutput('embeddings', { max_tokens: 5 }), undefined);
});

test('answersOf: chat n, completions max(n, best_of); anything but an integer 1..128 is a 400 naming the parameter', () => {
  assert.equal(answersOf('chat', {}), 1);
  assert.equal(answersOf('chat', { n: 8 }), 8);
  assert.equal(answersOf('chat', { n: null }), 1);
  assert.equal(answersOf('completions', { n: 2, best_of: 8 }), 8);
  assert.equal(answersOf('completions', { n: 3 }), 3);
  assert.equal(answersOf('responses', { n: 8 }), 1);
  for (const [api, body, param] of [['chat', { n: 0 }, 'n'], ['chat', { n: 1.5 }, 'n'], ['chat', { n: 129 }, 'n'], ['completions', { best_of: 0 }, 'best_of'], ['completions', { best_of: 1e9 }, 'best_of'], ['completions', { n: -1 }, 'n']] as const) {
    assert.throws(() => answersOf(api, body), (e: unknown) => e instanceof GatewayError && e.status === 400 && e.param === param, `${api} ${JSON.stringify(body)}`);
  }
});

// ---------------------------------------------------------------------------------------------
// The module on a fake context: a client gone before its admission completed.
// ---------------------------------------------------------------------------------------------

for (const store of ['memory', 'redis'] as const) {
  test(`limits module (${store}): a client that left before its admission completed is released at once, never settled, and the upstream call is stopped`, async (t) => {
    if (store === 'redis' && !(await redisReachable(process.env.PCL_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379'))) return t.skip('Redis unreachable');
    const limits = parseLimitsConfig({ store, keyPrefix: `pcl:test-resv:${process.pid}:${Date.now()}`, concurrencyLeaseMs: 60_000, defaults: { key: { concurrency: 1, dailyRequests: 10 } } });
    const mod = (await limitsModule({ config: { limits } } as unknown as ModuleContext)) as LimitsModule;
    cleanups.push(() => mod.close?.());
    const ctx = (): RequestContext => ({
      requestId: 'r',
      api: 'chat',
      route: '/v1/chat/completions',
      startedAt: 0,
      clientIp: '127.0.0.1',
      principal: { tenantId: `acme-${store}`, tenantName: 'acme', keyId: 'k1', subject: 's', scopes: null, authMethod: 'api_key' },
      model: 'mock-1',
      stream: false,
      body: { model: 'mock-1', max_tokens: 5, messages: [{ role: 'user', content: 'hi' }] },
      responseHeaders: {},
      state: {},
    });
    const admit = (c: RequestContext) => Promise.resolve().then(() => mod.steps!.admit!(c));

    // The close came first (its settlement found no ticket), then the admission resolved.
    const gone = ctx();
    const pending = admit(gone);
    gone.aborted = true;
    await mod.steps!.settle!(gone);
    await assert.rejects(pending, (e: unknown) => e instanceof GatewayError && e.code === 'PCL_CLIENT_CLOSED');
    const st = gone.state.limits as LimitsState;
    assert.equal(st.settled, 'released');
    assert.ok(st.ticket?.plan.done, 'the ticket is done (its lease dropped, its renewals stopped)');
    // A settlement after that changes nothing (never both released and settled).
    gone.ttfbMs = 1;
    gone.upstreamSent = true;
    gone.status = 200;
    gone.usage = { inputTokens: 10, outputTokens: 5 };
    await mod.steps!.settle!(gone);
    assert.equal(st.settled, 'released');
    assert.equal(st.costUsd, 0);

    // The slot is free: the next request of the key is admitted (concurrency 1), and holds it.
    const next = ctx();
    await admit(next);
    assert.equal((next.state.limits as LimitsState).decision, 'admitted');
    const third = ctx();
    await assert.rejects(admit(third), (e: unknown) => e instanceof GatewayError && e.status === 429, 'the second one holds the only slot');
    next.ttfbMs = 1;
    next.upstreamSent = true;
    next.status = 200;
    next.usage = { inputTokens: 10, outputTokens: 5 };
    await mod.steps!.settle!(next);
    assert.equal((next.state.limits as LimitsState).settled, 'settled');
  });
}

// ---------------------------------------------------------------------------------------------
// A real gateway.
// ---------------------------------------------------------------------------------------------

const gateway = (raw: Record<string, any>) => gatewayOverMock(raw, cleanups);
const audit = auditOf;

function chatAnswer(req: Recorded, res: ServerResponse, out = 5): void {
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ id: 'c1', object: 'chat.completion', created: 1, model: req.body.model, choices: [{ index: 0, message: { role: 'assistant', content: 'ok' }, finish_reason: 'stop' }], usage: { prompt_tokens: 10, completion_tokens: out, total_tokens: 10 + out } }));
}

test('gateway: n and best_of outside 1..128 are a 400 naming the parameter, before the upstream', async () => {
  const { g, mock } = await gateway({ limits: {} });
  mock.handler = (req, res) => chatAnswer(req, res);
  const cases: Array<[string, Record<string, unknown>, string]> = [
    ['/v1/chat/completions', { model: 'mock-1', n: 0, messages: [{ role: 'user', content: 'hi' }] }, 'n'],
    ['/v1/chat/completions', { model: 'mock-1', n: 2.5, messages: [{ role: 'user', content: 'hi' }] }, 'n'],
    ['/v1/completions', { model: 'mock-1', best_of: 500, prompt: 'hi' }, 'best_of'],
  ];
  for (const [path, body, param] of cases) {
    const r = await postJson(`${g.url}${path}`, g.key, body);
    assert.equal(r.status, 400, `${path} ${JSON.stringify(body)}`);
    assert.equal(r.body.error.param, param);
  }
  assert.equal(mock.requests.length, 0);
});

test('gateway: n answers are reserved as n × the cap, and the per-answer cap is what goes upstream', async () => {
  const { g, mock } = await gateway({ limits: { defaults: { key: { dailyTokens: 1000 } } } });
  mock.handler = (req, res) => chatAnswer(req, res, 5);
  const over = await postJson(`${g.url}/v1/chat/completions`, g.key, { model: 'mock-1', n: 4, max_tokens: 300, messages: [{ role: 'user', content: 'hi' }] });
  assert.equal(over.status, 429, '4 × 300 output tokens do not fit a 1 000-token budget');
  const fits = await postJson(`${g.url}/v1/chat/completions`, g.key, { model: 'mock-1', n: 3, max_tokens: 300, messages: [{ role: 'user', content: 'hi' }] });
  assert.equal(fits.status, 200);
  assert.equal(mock.requests.at(-1)!.body.max_tokens, 300);
  assert.equal(mock.requests.at(-1)!.body.n, 3);
});

test('gateway: every cap field above the reserved cap is lowered to it; a cap in a field the API ignores does not replace the one it reads', async () => {
  const { g, mock } = await gateway({ tiers: { small: { maxOutputTokens: 100 } }, policy: { defaultTier: 'small' }, limits: {} });
  mock.handler = (req, res) => {
    if (!req.url.includes('/responses')) return chatAnswer(req, res);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ id: 'resp_1', object: 'response', status: 'completed', model: req.body.model, output: [], usage: { input_tokens: 5, output_tokens: 5, total_tokens: 10 } }));
  };
  // Chat with both fields: the policy reads max_completion_tokens (50, allowed); an upstream may read max_tokens.
  const chat = await postJson(`${g.url}/v1/chat/completions`, g.key, { model: 'mock-1', max_completion_tokens: 50, max_tokens: 5000, messages: [{ role: 'user', content: 'hi' }] });
  assert.equal(chat.status, 200, JSON.stringify(chat.body));
  const sent = mock.requests.at(-1)!.body;
  assert.equal(sent.max_completion_tokens, 50);
  assert.equal(sent.max_tokens, 100, 'lowered to the policy cap the reservation assumes');
  // Responses reads max_output_tokens only: a max_tokens of 5 is no cap, the reserved one is sent.
  const resp = await postJson(`${g.url}/v1/responses`, g.key, { model: 'mock-1', max_tokens: 5, input: 'hi' });
  assert.equal(resp.status, 200, JSON.stringify(resp.body));
  assert.equal(mock.requests.at(-1)!.body.max_output_tokens, 100);
  assert.equal(mock.requests.at(-1)!.body.max_tokens, 5);
});

test('gateway: a background Responses job without usage keeps its full reservation (audit: estimated, the cap); a foreground answer without usage is charged what it sent', async () => {
  const { g, mock } = await gateway({ limits: { defaults: { key: { dailyTokens: 100_000 } } } });
  mock.handler = (req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    if (req.body.background) res.end(JSON.stringify({ id: 'resp_bg', object: 'response', status: 'in_progress', background: true, model: req.body.model, output: [], usage: null }));
    else res.end(JSON.stringify({ id: 'resp_fg', object: 'response', status: 'completed', model: req.body.model, output: [{ type: 'message', id: 'm1', role: 'assistant', status: 'completed', content: [{ type: 'output_text', text: 'short answer', annotations: [] }] }] }));
  };
  const bg = await postJson(`${g.url}/v1/responses`, g.key, { model: 'mock-1', background: true, max_output_tokens: 3000, input: 'Write an essay.' });
  assert.equal(bg.status, 200);
  const bgEv = await auditEventOf(audit(g), bg.headers.get('x-request-id')!);
  assert.equal(bgEv.limits?.settled, 'estimated');
  assert.equal(bgEv.limits?.estimatedOutputTokens, 3000);
  const fg = await postJson(`${g.url}/v1/responses`, g.key, { model: 'mock-1', max_output_tokens: 3000, input: 'Write an essay.' });
  assert.equal(fg.status, 200);
  const fgEv = await auditEventOf(audit(g), fg.headers.get('x-request-id')!);
  assert.equal(fgEv.limits?.settled, 'estimated');
  assert.ok((fgEv.limits?.estimatedOutputTokens ?? 0) < 100, `the counted output, not the cap: ${JSON.stringify(fgEv.limits)}`);
});

test('gateway: a gateway timeout after the request was sent is charged the input estimate (audit: estimated, 0 output tokens)', { timeout: 20_000 }, async () => {
  const { g, mock } = await gateway({ upstream: { totalTimeoutMs: 300 }, limits: { defaults: { key: { dailyTokens: 100_000 } } } });
  mock.handler = async (req, res) => {
    await sleep(1000);
    if (!res.destroyed) chatAnswer(req, res);
  };
  const r = await postJson(`${g.url}/v1/chat/completions`, g.key, { model: 'mock-1', max_tokens: 2000, messages: [{ role: 'user', content: 'Write a long essay.' }] });
  assert.equal(r.status, 504);
  const ev = await auditEventOf(audit(g), r.headers.get('x-request-id')!);
  assert.equal(ev.limits?.settled, 'estimated', JSON.stringify(ev.limits));
  assert.equal(ev.limits?.estimatedOutputTokens, 0);
});

test('gateway: an upstream error status (a 504 included) and an unreachable upstream still release the reservation', { timeout: 20_000 }, async () => {
  const { g, mock } = await gateway({ limits: { defaults: { key: { dailyRequests: 1 } } } });
  mock.handler = (_req, res) => {
    res.writeHead(504, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: { message: 'gateway timeout', type: 'server_error' } }));
  };
  const failed = await postJson(`${g.url}/v1/chat/completions`, g.key, { model: 'mock-1', max_tokens: 5, messages: [{ role: 'user', content: 'hi' }] });
  assert.ok(failed.status >= 500, `upstream 504 → ${failed.status}`);
  const ev = await auditEventOf(audit(g), failed.headers.get('x-request-id')!);
  assert.equal(ev.limits?.settled, 'released');
  mock.handler = (req, res) => chatAnswer(req, res);
  const ok = await postJson(`${g.url}/v1/chat/completions`, g.key, { model: 'mock-1', max_tokens: 5, messages: [{ role: 'user', content: 'hi' }] });
  assert.equal(ok.status, 200, 'dailyRequests 1: the released request gave its request back');

  // A provider nobody listens on: the request never reached it.
  const dead = await startMockUpstream();
  const deadUrl = dead.url;
  await dead.close();
  const g2 = await startGateway({ providers: { mock: { type: 'openai', baseUrl: `${deadUrl}/v1` } }, routes: [{ model: '*', provider: 'mock' }], guards: { enabled: false }, audit: { flushIntervalMs: 20 }, limits: { defaults: { key: { dailyRequests: 1 } } } });
  cleanups.push(() => g2.close());
  const a = await postJson(`${g2.url}/v1/chat/completions`, g2.key, { model: 'mock-1', max_tokens: 5, messages: [{ role: 'user', content: 'hi' }] });
  assert.equal(a.status, 502);
  const b = await postJson(`${g2.url}/v1/chat/completions`, g2.key, { model: 'mock-1', max_tokens: 5, messages: [{ role: 'user', content: 'hi' }] });
  assert.equal(b.status, 502, 'not 429: the unreachable attempt was released');
  assert.equal((await auditEventOf(audit(g2), a.headers.get('x-request-id')!)).limits?.settled, 'released');
});
