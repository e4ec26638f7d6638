/** Parent-based sampling through a real gateway and a local OTLP/HTTP receiver. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { startGateway } from '../helpers/gateway.js';

async function receiver() {
  const traces = new Set<string>();
  let posts = 0;
  const srv = createServer((req, res) => {
    let s = '';
    req.on('data', (c) => (s += c));
    req.on('end', () => {
      posts++;
      for (const rs of JSON.parse(s).resourceSpans) for (const ss of rs.scopeSpans) for (const sp of ss.spans) traces.add(sp.traceId);
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  return { url: `http://127.0.0.1:${(srv.address() as { port: number }).port}/v1/traces`, traces, posts: () => posts, close: () => new Promise<void>((r) => srv.close(() => r())) };
}

const tp = (traceId: string, flags: '00' | '01') => `00-${traceId}-b7ad6b7169203331-${flags}`;
const ID = (c: string) => c.repeat(32);

test('tracing follows the incoming traceparent: unsampled (flags 00) is not traced even at sampleRatio 1, sampled (01) is traced at sampleRatio 0', async () => {
  const recv = await receiver();
  try {
    for (const sampleRatio of [1, 0]) {
      const t = await startGateway({ tracing: { enabled: true, endpoint: recv.url, flushIntervalMs: 20, sampleRatio } });
      try {
        const chat = async (headers: Record<string, string>) => {
          const res = await fetch(`${t.url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${t.key}`, 'content-type': 'application/json', ...headers }, body: JSON.stringify({ model: 'demo', messages: [{ role: 'user', content: 'hi' }] }) });
          await res.text();
          assert.equal(res.status, 200);
        };
        const unsampled = sampleRatio === 1 ? ID('a') : ID('c');
        const sampled = sampleRatio === 1 ? ID('b') : ID('d');
        await chat({ traceparent: tp(unsampled, '00') });
        await chat({ traceparent: tp(sampled, '01') });
        for (let i = 0; i < 200 && !recv.traces.has(sampled); i++) await new Promise((r) => setTimeout(r, 20));
        assert.ok(recv.traces.has(sampled), `sampled parent traced at sampleRatio ${sampleRatio}`);
        assert.ok(!recv.traces.has(unsampled), `unsampled parent not traced at sampleRatio ${sampleRatio}`);
        // Without a traceparent the ratio decides.
        const before = recv.traces.size;
        await chat({});
        await chat({ traceparent: tp(ID('e'), '01') }); // a marker flushed after the root request
        for (let i = 0; i < 200 && !recv.traces.has(ID('e')); i++) await new Promise((r) => setTimeout(r, 20));
        recv.traces.delete(ID('e'));
        assert.equal(recv.traces.size - before, sampleRatio === 1 ? 1 : 0, `root request at sampleRatio ${sampleRatio}`);
      } finally {
        await t.close();
      }
    }
  } finally {
    await recv.close();
  }
});
