/** Metrics, dashboard and tracing against a real gateway (demo provider and a mock upstream). */
import { test } from 'node:test';
import { metricValue } from '../helpers/metrics.js';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { startGateway } from '../helpers/gateway.js';
import { startMockUpstream } from '../helpers/mock-upstream.js';
import type { MetricsModule } from '../../src/metrics/module.js';
import { LabelCap } from '../../src/metrics/index.js';
import { createTracingModule } from '../../src/tracing/module.js';
import { InMemorySpanExporter } from '../../src/tracing/provider.js';
import { tracingConfigSchema } from '../../src/tracing/config.js';

const TOKEN = 'metrics-' + 'test-token';

async function chat(url: string, key: string, body: Record<string, unknown>, headers: Record<string, string> = {}) {
  const res = await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
  await res.text();
  return res.status;
}

const value = metricValue;

test('metrics after known traffic: names, values, token access, dashboard names exist', async () => {
  const t = await startGateway({ metrics: { maxLabelValues: 50 } }, { env: { PORTCULLIS_METRICS_TOKEN: TOKEN } });
  try {
    for (let i = 0; i < 3; i++) assert.equal(await chat(t.url, t.key, { model: 'demo', messages: [{ role: 'user', content: `hello number ${i}` }] }), 200);
    assert.equal(await chat(t.url, t.key, { model: 'demo', stream: true, messages: [{ role: 'user', content: 'stream please' }] }), 200);
    assert.equal(await chat(t.url, 'pcl_bad_key', { model: 'demo', messages: [{ role: 'user', content: 'x' }] }), 401);
    assert.equal(await chat(t.url, t.key, { model: 'no-such-model', messages: [{ role: 'user', content: 'x' }] }), 404);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal((await fetch(`${t.url}/metrics`)).status, 401);
    const res = await fetch(`${t.url}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
    assert.equal(res.status, 200);
    const text = await res.text();
    assert.equal(value(text, 'portcullis_requests_total', { route: '/v1/chat/completions', status: '200', model: 'demo', tenant: 'default' }), 4);
    assert.equal(value(text, 'portcullis_requests_total', { status: '401' }), 1);
    assert.equal(value(text, 'portcullis_requests_total', { status: '404' }), 1);
    assert.equal(value(text, 'portcullis_auth_failures_total', {}), 1);
    assert.equal(value(text, 'portcullis_request_duration_seconds_count', { route: '/v1/chat/completions' }), 6);
    assert.equal(value(text, 'portcullis_upstream_ttfb_seconds_count', { stream: 'true' }), 1);
    assert.ok(value(text, 'portcullis_tokens_total', { tenant: 'default', model: 'demo', direction: 'input' }) > 0);
    assert.ok(value(text, 'portcullis_tokens_total', { direction: 'output' }) > 0);
    assert.equal(value(text, 'portcullis_prompt_tokens_count', { model: 'demo' }), 4);
    assert.ok(value(text, 'portcullis_guard_verdicts_total', {}) >= 4, 'guard verdicts recorded');
    assert.ok(value(text, 'portcullis_guard_duration_seconds_count', {}) >= 4);
    assert.ok(!text.includes(t.key.slice(4)), 'no key material in metrics');
    assert.ok(!text.includes('key="'), 'no per-key label by default');
    // Every metric the dashboard references exists in the exposition.
    const dash = JSON.parse(readFileSync(new URL('../../dashboards/grafana-portcullis.json', import.meta.url), 'utf8'));
    const exprs: string[] = dash.panels.flatMap((p: any) => p.targets.map((x: any) => x.expr));
    const names = new Set(exprs.flatMap((e) => e.match(/portcullis_[a-z_]+/g) ?? []));
    assert.ok(names.size >= 15);
    const present = new Set(text.split('\n').filter((l) => l.startsWith('# TYPE ')).map((l) => l.split(' ')[2]!));
    for (const n of names) {
      const base = n.replace(/_(bucket|count|sum)$/, '');
      assert.ok(present.has(n) || present.has(base), `dashboard metric ${n} is not exported`);
    }
  } finally {
    await t.close();
  }
});

test('metrics: per-key labels off by default, cardinality capped, upstream errors, separate loopback port', async () => {
  const mock = await startMockUpstream((req, res) => {
    if (String(req.body?.messages?.[0]?.content).includes('fail')) {
      res.writeHead(500, { 'content-type': 'application/json' }).end('{"error":{"message":"boom"}}');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ id: 'x', object: 'chat.completion', created: 1, model: 'm', choices: [{ index: 0, message: { role: 'assistant', content: 'ok' }, finish_reason: 'stop' }], usage: { prompt_tokens: 5, completion_tokens: 2, total_tokens: 7 } }));
  });
  const t = await startGateway({ providers: { mock: { type: 'openai', baseUrl: mock.url + '/v1' } }, routes: [{ model: '*', provider: 'mock' }], metrics: { port: 0, maxLabelValues: 2, perKeyLabels: true } });
  try {
    for (const m of ['m1', 'm2', 'm3', 'm4']) assert.equal(await chat(t.url, t.key, { model: m, messages: [{ role: 'user', content: 'hi' }] }), 200);
    assert.equal(await chat(t.url, t.key, { model: 'm1', messages: [{ role: 'user', content: 'please fail' }] }), 502);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal((await fetch(`${t.url}/metrics`)).status, 404, 'not on the gateway port');
    const addr = (t.gw.modules.get('metrics') as MetricsModule).address()!;
    assert.equal(addr.host, '127.0.0.1');
    const text = await (await fetch(`http://127.0.0.1:${addr.port}/metrics`)).text();
    assert.equal(value(text, 'portcullis_requests_total', { model: 'other' }), 2);
    assert.equal(value(text, 'portcullis_requests_total', { status: '502' }), 1);
    assert.ok(text.includes('key="'), 'per-key label when enabled');
    assert.equal(value(text, 'portcullis_upstream_errors_total', { provider: 'mock', type: 'status_500' }), 1);
    const cap = new LabelCap(1);
    assert.equal(cap.value('x', 'a'), 'a');
    assert.equal(cap.value('x', 'b'), 'other');
    assert.equal(cap.value('x', 'a'), 'a');
  } finally {
    await t.close();
    await mock.close();
  }
});

test('tracing: spans for identify, authorize, admit, guards, upstream, settle; OTLP/HTTP export; off = no spans', async () => {
  const t = await startGateway({ tracing: { enabled: true, endpoint: 'http://127.0.0.1:1/v1/traces' } });
  try {
    // Swap in an in-memory exporter on a module built from the same config.
    const exporter = new InMemorySpanExporter();
    const mod = createTracingModule(tracingConfigSchema.parse({ enabled: true }), { exporter });
    const { emitRequestSpans } = await import('../../src/tracing/module.js');
    void mod;
    // Drive a real request and collect its context through a done hook.
    const real = t.gw.modules.get('tracing') as { steps: { done(ctx: any): void } };
    const orig = real.steps.done;
    const seen: any[] = [];
    real.steps.done = (ctx) => {
      seen.push(ctx);
      orig(ctx);
    };
    const parent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    assert.equal(await chat(t.url, t.key, { model: 'demo', messages: [{ role: 'user', content: 'trace me' }] }, { traceparent: parent }), 200);
    for (let i = 0; i < 50 && seen.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(seen.length, 1);
    const { createTracerProvider } = await import('../../src/tracing/provider.js');
    const p = createTracerProvider({ exporter });
    emitRequestSpans(p.tracer, seen[0], 'POST');
    await p.shutdown();
    const names = exporter.spans.map((s) => s.name);
    for (const n of ['POST /v1/chat/completions', 'identify', 'authorize', 'admit', 'request_guards', 'upstream', 'settle']) assert.ok(names.includes(n), `span ${n} in ${names.join(',')}`);
    assert.ok(names.some((n) => n.startsWith('guard ')), 'one span per guard');
    const root = exporter.spans.find((s) => s.name === 'POST /v1/chat/completions')!;
    assert.equal(root.traceId, '0af7651916cd43dd8448eb211c80319c');
    assert.equal(root.parentSpanId, 'b7ad6b7169203331');
    assert.ok(exporter.spans.filter((s) => s !== root && !s.name.startsWith('guard ')).every((s) => s.parentSpanId === root.spanId));
    assert.equal(root.attributes['http.response.status_code'], 200);
  } finally {
    await t.close();
  }
  // A local OTLP/HTTP receiver gets the spans of a real request.
  const bodies: any[] = [];
  const recv = createServer((req, res) => {
    let s = '';
    req.on('data', (c) => (s += c));
    req.on('end', () => {
      bodies.push({ url: req.url, type: req.headers['content-type'], body: JSON.parse(s) });
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((r) => recv.listen(0, '127.0.0.1', () => r()));
  const port = (recv.address() as { port: number }).port;
  const t2 = await startGateway({ tracing: { enabled: true, endpoint: `http://127.0.0.1:${port}/v1/traces`, flushIntervalMs: 20 } });
  try {
    assert.equal(await chat(t2.url, t2.key, { model: 'demo', messages: [{ role: 'user', content: 'hi' }] }), 200);
    for (let i = 0; i < 100 && bodies.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
    assert.ok(bodies.length >= 1);
    assert.equal(bodies[0].url, '/v1/traces');
    const spans = bodies.flatMap((b) => b.body.resourceSpans[0].scopeSpans[0].spans);
    assert.ok(spans.some((s: any) => s.name === 'upstream' && s.kind === 3));
    assert.ok(spans.every((s: any) => /^[0-9a-f]{32}$/.test(s.traceId) && BigInt(s.endTimeUnixNano) >= BigInt(s.startTimeUnixNano)));
  } finally {
    await t2.close();
    recv.close();
  }
  // Disabled: the proxy records no timings.
  const t3 = await startGateway({});
  try {
    const seen: any[] = [];
    const m = t3.gw.modules.get('metrics') as { steps: { done(ctx: any): void } };
    const orig = m.steps.done;
    m.steps.done = (ctx) => {
      seen.push(ctx);
      orig(ctx);
    };
    assert.equal(await chat(t3.url, t3.key, { model: 'demo', messages: [{ role: 'user', content: 'hi' }] }), 200);
    for (let i = 0; i < 50 && seen.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(seen[0].state.timings, undefined);
  } finally {
    await t3.close();
  }
});
