/** Root span names and routes through a real gateway and a local OTLP/HTTP receiver. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { startGateway } from '../helpers/gateway.js';

interface Span {
  traceId: string;
  name: string;
  parentSpanId?: string;
  attributes: Array<{ key: string; value: Record<string, unknown> }>;
}

test('a matched request is named by method and route; an unmatched URL by its method alone, the path in url.path', async () => {
  const spans: Span[] = [];
  const srv = createServer((req, res) => {
    let s = '';
    req.on('data', (c) => (s += c));
    req.on('end', () => {
      for (const rs of JSON.parse(s).resourceSpans) for (const ss of rs.scopeSpans) spans.push(...ss.spans);
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const t = await startGateway({ tracing: { enabled: true, endpoint: `http://127.0.0.1:${(srv.address() as { port: number }).port}/v1/traces`, flushIntervalMs: 20, sampleRatio: 1 } });
  try {
    const chat = await fetch(`${t.url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${t.key}`, 'content-type': 'application/json', traceparent: `00-${'a'.repeat(32)}-b7ad6b7169203331-01` }, body: JSON.stringify({ model: 'demo', messages: [{ role: 'user', content: 'hi' }] }) });
    assert.equal(chat.status, 200);
    await chat.text();
    for (const path of ['/v1/nope-1f3a9c', '/probe/wp-admin/setup.php']) {
      const r = await fetch(`${t.url}${path}?x=1`, { headers: { authorization: `Bearer ${t.key}`, traceparent: `00-${'b'.repeat(32)}-b7ad6b7169203331-01` } });
      assert.equal(r.status, 404);
      await r.text();
    }
    const roots = () => spans.filter((s) => !s.parentSpanId || s.parentSpanId === 'b7ad6b7169203331');
    for (let i = 0; i < 250 && roots().length < 3; i++) await new Promise((r) => setTimeout(r, 20));
    const attr = (s: Span, k: string) => s.attributes.find((a) => a.key === k)?.value.stringValue;
    const chatRoot = roots().find((s) => s.traceId === 'a'.repeat(32));
    assert.equal(chatRoot?.name, 'POST /v1/chat/completions');
    assert.equal(attr(chatRoot!, 'http.route'), '/v1/chat/completions');
    const probes = roots().filter((s) => s.traceId === 'b'.repeat(32));
    assert.deepEqual(probes.map((s) => s.name), ['GET', 'GET'], 'no span named after a raw path');
    assert.deepEqual(probes.map((s) => attr(s, 'http.route')), [undefined, undefined]);
    assert.deepEqual(probes.map((s) => attr(s, 'url.path')).sort(), ['/probe/wp-admin/setup.php', '/v1/nope-1f3a9c']);
  } finally {
    await t.close();
    await new Promise<void>((r) => srv.close(() => r()));
  }
});
