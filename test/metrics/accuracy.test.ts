/**
 * Metric values after known traffic against a real gateway and a scripted mock upstream: upstream
 * time vs gateway overhead on upstream errors and timeouts, stream TTFB as the first event sent,
 * label slots that junk URLs and models cannot take, cost, limiter rejections, per-key labels,
 * and token access on the separate metrics port (with its non-loopback warning).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ServerResponse } from 'node:http';
import { metricValue as value } from '../helpers/metrics.js';
import { memoryLogger } from '../helpers/log.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { defaultChat, startMockUpstream, type MockUpstream, type Recorded } from '../helpers/mock-upstream.js';
import { isLoopback, type MetricsModule } from '../../src/metrics/module.js';

const TOKEN = 'metrics-' + 'accuracy-token';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function chat(url: string, key: string, body: Record<string, unknown>): Promise<number> {
  const res = await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  await res.text();
  return res.status;
}

/** The exposition on the gateway port (token) or on the separate port. */
async function scrape(t: TestGateway): Promise<string> {
  const addr = (t.gw.modules.get('metrics') as MetricsModule).address();
  const url = addr ? `http://127.0.0.1:${addr.port}/metrics` : `${t.url}/metrics`;
  const res = await fetch(url, { headers: { authorization: `Bearer ${TOKEN}` } });
  assert.equal(res.status, 200);
  return res.text();
}

/** A gateway over `mock` (models `mock-*`) with the demo provider for everything else. */
function mockGateway(mock: MockUpstream, extra: Record<string, any> = {}) {
  return startGateway(
    {
      providers: { demo: { type: 'demo' }, mock: { type: 'openai', baseUrl: mock.url + '/v1' } },
      routes: [{ model: 'mock-*', provider: 'mock' }, { model: 'demo*', provider: 'demo' }],
      ...extra,
    },
    { env: { PORTCULLIS_METRICS_TOKEN: TOKEN } },
  );
}

test('upstream errors and timeouts: the wait is upstream time, not gateway overhead', async () => {
  const mock = await startMockUpstream(async (req: Recorded, res: ServerResponse) => {
    const what = String(req.body?.messages?.[0]?.content);
    if (what === 'hang') return; // never answers: the total timeout fires
    await sleep(300);
    if (what === 'fail') res.writeHead(500, { 'content-type': 'application/json' }).end('{"error":{"message":"boom"}}');
    else defaultChat(req, res);
  });
  const t = await mockGateway(mock, { upstream: { totalTimeoutMs: 600 } });
  try {
    const route = '/v1/chat/completions';
    assert.equal(await chat(t.url, t.key, { model: 'mock-a', messages: [{ role: 'user', content: 'fail' }] }), 502);
    let text = await scrape(t);
    assert.equal(value(text, 'portcullis_upstream_duration_seconds_count', { provider: 'mock' }), 1, 'the failed call is observed');
    const up1 = value(text, 'portcullis_upstream_duration_seconds_sum', { provider: 'mock' });
    assert.ok(up1 >= 0.29 && up1 < 0.6, `upstream sum ${up1}`);
    const over1 = value(text, 'portcullis_gateway_overhead_seconds_sum', { route });
    assert.ok(over1 < 0.2, `overhead sum ${over1} after a 500 at 300 ms`);

    assert.equal(await chat(t.url, t.key, { model: 'mock-a', messages: [{ role: 'user', content: 'hang' }] }), 504);
    text = await scrape(t);
    assert.equal(value(text, 'portcullis_upstream_duration_seconds_count', { provider: 'mock' }), 2);
    const up2 = value(text, 'portcullis_upstream_duration_seconds_sum', { provider: 'mock' }) - up1;
    assert.ok(up2 >= 0.59 && up2 < 0.9, `timed-out call: upstream ${up2}`);
    const over2 = value(text, 'portcullis_gateway_overhead_seconds_sum', { route });
    assert.ok(over2 - over1 < 0.2, `overhead ${over2 - over1} of a 600 ms timeout`);

    // A successful call: count and sums add up (total ≈ upstream + overhead).
    assert.equal(await chat(t.url, t.key, { model: 'mock-a', messages: [{ role: 'user', content: 'ok' }] }), 200);
    text = await scrape(t);
    assert.equal(value(text, 'portcullis_upstream_duration_seconds_count', { provider: 'mock' }), 3);
    assert.equal(value(text, 'portcullis_gateway_overhead_seconds_count', { route }), 3);
    const total = value(text, 'portcullis_request_duration_seconds_sum', { route });
    const up = value(text, 'portcullis_upstream_duration_seconds_sum', { provider: 'mock' });
    const over = value(text, 'portcullis_gateway_overhead_seconds_sum', { route });
    assert.ok(up >= 1.18 && up < 1.8, `upstream ${up}`);
    assert.ok(Math.abs(total - up - over) < 0.01, `total ${total} = upstream ${up} + overhead ${over}`);
  } finally {
    await t.close();
    await mock.close();
  }
});

test('stream TTFB is the time to the first event sent to the client, not to the headers', async () => {
  const mock = await startMockUpstream(async (req: Recorded, res: ServerResponse) => {
    if (!req.body?.stream) return defaultChat(req, res);
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.flushHeaders(); // headers at once, the first token 300 ms later
    await sleep(300);
    const chunk = (delta: Record<string, unknown>, finish: string | null) => `data: ${JSON.stringify({ id: 'c', object: 'chat.completion.chunk', created: 1, model: req.body.model, choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`;
    res.write(chunk({ content: 'Hel' }, null));
    await sleep(100);
    res.write(chunk({ content: 'lo' }, null));
    res.end(chunk({}, 'stop') + 'data: [DONE]\n\n');
  });
  // Guards off: events go out as they arrive. Guards on: the stream guards may hold text back
  // (a finding can span chunks), and the TTFB is when the client got its first event.
  const plain = await mockGateway(mock, { guards: { enabled: false } });
  const guarded = await mockGateway(mock);
  try {
    for (const t of [plain, guarded]) {
      const res = await fetch(`${t.url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${t.key}`, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'mock-s', stream: true, messages: [{ role: 'user', content: 'hi' }] }) });
      assert.equal(res.status, 200);
      assert.match(await res.text(), /Hel/);
      assert.equal(await chat(t.url, t.key, { model: 'mock-s', messages: [{ role: 'user', content: 'hi' }] }), 200);
    }
    let text = await scrape(plain);
    assert.equal(value(text, 'portcullis_upstream_ttfb_seconds_count', { stream: 'true' }), 1);
    const ttfb = value(text, 'portcullis_upstream_ttfb_seconds_sum', { stream: 'true' });
    assert.ok(ttfb >= 0.29 && ttfb < 0.395, `stream TTFB ${ttfb} (first event at 300 ms, next at 400 ms)`);
    const whole = value(text, 'portcullis_upstream_duration_seconds_sum', { stream: 'true' });
    assert.ok(whole >= 0.39, `whole stream ${whole}`);
    assert.equal(value(text, 'portcullis_upstream_ttfb_seconds_count', { stream: 'false' }), 1, 'non-stream TTFB still observed');
    text = await scrape(guarded);
    const held = value(text, 'portcullis_upstream_ttfb_seconds_sum', { stream: 'true' });
    assert.ok(held >= 0.29 && held <= value(text, 'portcullis_upstream_duration_seconds_sum', { stream: 'true' }) + 0.001, `guarded stream TTFB ${held}`);
  } finally {
    await plain.close();
    await guarded.close();
    await mock.close();
  }
});

test('junk URLs and junk model names do not take label slots: real traffic keeps its labels', async () => {
  // The mock knows one model; others answer 404 like a real provider.
  const mock = await startMockUpstream((req, res) => {
    if (req.body?.model !== 'mock-real') res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":{"message":"model not found","type":"invalid_request_error","code":"model_not_found"}}');
    else defaultChat(req, res);
  });
  const t = await mockGateway(mock, { metrics: { maxLabelValues: 5 } });
  try {
    // Unauthenticated scanners: junk paths, and chat with junk models.
    for (let i = 0; i < 8; i++) assert.equal((await fetch(`${t.url}/scan/${i}?x=${i}`)).status, 404);
    for (let i = 0; i < 6; i++) assert.equal(await chat(t.url, 'pcl_not_a_key', { model: `junk-anon-${i}`, messages: [{ role: 'user', content: 'x' }] }), 401);
    // An authenticated client: models no route knows, and names a glob route matches but the upstream refuses.
    for (let i = 0; i < 6; i++) assert.equal(await chat(t.url, t.key, { model: `junk-${i}`, messages: [{ role: 'user', content: 'x' }] }), 404);
    for (let i = 0; i < 6; i++) assert.ok((await chat(t.url, t.key, { model: `mock-junk-${i}`, messages: [{ role: 'user', content: 'x' }] })) >= 400);
    // Real traffic afterwards.
    assert.equal(await chat(t.url, t.key, { model: 'demo', messages: [{ role: 'user', content: 'hello' }] }), 200);
    assert.equal(await chat(t.url, t.key, { model: 'mock-real', messages: [{ role: 'user', content: 'hello' }] }), 200);
    const files = await fetch(`${t.url}/v1/files`, { headers: { authorization: `Bearer ${t.key}` } });
    assert.equal(files.status, 200);
    await files.text();
    const text = await scrape(t);
    assert.equal(value(text, 'portcullis_requests_total', { route: '/v1/chat/completions', status: '200', model: 'demo', tenant: 'default' }), 1);
    assert.equal(value(text, 'portcullis_requests_total', { route: '/v1/chat/completions', status: '200', model: 'mock-real', tenant: 'default' }), 1);
    assert.equal(value(text, 'portcullis_requests_total', { route: '/v1/files', status: '200' }), 1);
    assert.equal(value(text, 'portcullis_requests_total', { route: 'unmatched', status: '404' }), 8);
    assert.equal(value(text, 'portcullis_requests_total', { model: 'unknown' }), 12, 'unknown and refused models');
    assert.equal(value(text, 'portcullis_requests_total', { status: '401', model: 'none', tenant: 'none' }), 6);
    assert.ok(!/="other"/.test(text), 'nothing overflowed into `other`');
    assert.ok(!text.includes('/scan/') && !text.includes('junk'), 'no client-chosen path or model in the labels');
    // Once a glob-routed model holds a slot, its errors keep the label.
    mock.handler = (_req, res) => void res.writeHead(500, { 'content-type': 'application/json' }).end('{"error":{"message":"boom"}}');
    assert.equal(await chat(t.url, t.key, { model: 'mock-real', messages: [{ role: 'user', content: 'hello' }] }), 502);
    assert.equal(value(await scrape(t), 'portcullis_requests_total', { status: '502', model: 'mock-real' }), 1);
  } finally {
    await t.close();
    await mock.close();
  }
});

test('cost, limiter rejections and per-key labels after known traffic', async () => {
  const mock = await startMockUpstream(); // usage: 11 prompt + 7 completion tokens per call
  // $1000 / $2000 per million tokens: 11 × 0.001 + 7 × 0.002 = $0.025 per call.
  const limits = { pricing: { 'mock-*': { inputPerMTok: 1000, outputPerMTok: 2000 } }, defaults: { key: { requestsPerMinute: 3 } } };
  const t = await mockGateway(mock, { limits });
  const k = await mockGateway(mock, { limits, metrics: { perKeyLabels: true } });
  try {
    const other = await t.newKey('acme', 'svc');
    for (let i = 0; i < 3; i++) assert.equal(await chat(t.url, t.key, { model: 'mock-p', messages: [{ role: 'user', content: `q${i}` }] }), 200);
    assert.equal(await chat(t.url, t.key, { model: 'mock-p', messages: [{ role: 'user', content: 'over' }] }), 429);
    assert.equal(await chat(t.url, t.key, { model: 'mock-p', messages: [{ role: 'user', content: 'over' }] }), 429);
    assert.equal(await chat(t.url, other, { model: 'mock-p', messages: [{ role: 'user', content: 'acme' }] }), 200);
    const text = await scrape(t);
    const cost = value(text, 'portcullis_cost_usd_total', { tenant: 'default', model: 'mock-p' });
    assert.ok(Math.abs(cost - 0.075) < 1e-6, `cost ${cost} for 3 calls at $0.025`);
    assert.ok(Math.abs(value(text, 'portcullis_cost_usd_total', { tenant: 'acme', model: 'mock-p' }) - 0.025) < 1e-6);
    assert.equal(value(text, 'portcullis_limit_rejections_total', { reason: 'rate_limit_exceeded', tenant: 'default' }), 2);
    assert.equal(value(text, 'portcullis_limit_rejections_total', { tenant: 'acme' }), 0);
    assert.equal(value(text, 'portcullis_tokens_total', { tenant: 'default', model: 'mock-p', direction: 'input' }), 33);
    assert.ok(!/\bkey="/.test(text), 'no key label by default');

    assert.equal(await chat(k.url, k.key, { model: 'mock-p', messages: [{ role: 'user', content: 'q' }] }), 200);
    const keyText = await scrape(k);
    const keyId = k.key.split('_')[1]!;
    assert.equal(value(keyText, 'portcullis_requests_total', { status: '200', key: keyId }), 1, 'per-key label when enabled');
    assert.equal(value(keyText, 'portcullis_tokens_total', { direction: 'output', key: keyId }), 7);
    assert.ok(!keyText.includes(k.key.slice(4)), 'the key id only, never the secret');
  } finally {
    await t.close();
    await k.close();
    await mock.close();
  }
});

test('separate metrics port: the token is required when set; a non-loopback bind without one logs a warning', async () => {
  const t = await startGateway({ metrics: { port: 0 } }, { env: { PORTCULLIS_METRICS_TOKEN: TOKEN } });
  try {
    assert.equal(await chat(t.url, t.key, { model: 'demo', messages: [{ role: 'user', content: 'hi' }] }), 200);
    const port = (t.gw.modules.get('metrics') as MetricsModule).address()!.port;
    const url = `http://127.0.0.1:${port}/metrics`;
    const none = await fetch(url);
    assert.equal(none.status, 401);
    assert.equal(none.headers.get('www-authenticate'), 'Bearer');
    assert.equal((await fetch(url, { headers: { authorization: 'Bearer wrong-token' } })).status, 401);
    const ok = await fetch(url, { headers: { authorization: `Bearer ${TOKEN}` } });
    assert.equal(ok.status, 200);
    assert.equal(value(await ok.text(), 'portcullis_requests_total', { route: '/v1/chat/completions', status: '200' }), 1);
  } finally {
    await t.close();
  }

  for (const [host, warned] of [
    ['0.0.0.0', true],
    ['127.0.0.1', false],
  ] as const) {
    const { logger, lines } = memoryLogger('warn');
    const g = await startGateway({ metrics: { port: 0, host } }, { gateway: { logger } });
    try {
      const port = (g.gw.modules.get('metrics') as MetricsModule).address()!.port;
      assert.equal((await fetch(`http://127.0.0.1:${port}/metrics`)).status, 200, 'served without a token (not refused)');
      const warning = lines.find((l) => l.level === 40 && /non-loopback/.test(String(l.msg)));
      assert.equal(!!warning, warned, `${host}: ${JSON.stringify(lines.map((l) => l.msg))}`);
      if (warning) assert.equal(warning.host, '0.0.0.0');
    } finally {
      await g.close();
    }
  }
  assert.deepEqual(['127.0.0.1', '127.1.2.3', '::1', '[::1]', 'localhost', '0.0.0.0', '::', '10.0.0.5'].map(isLoopback), [true, true, true, true, true, false, false, false]);
});
