/**
 * Graceful shutdown of `serve --workers 2`: the primary waits for its workers' own shutdown (each
 * flushes the audit trail and its sinks within their deadlines) instead of exiting after a fixed
 * 2 s, which killed the workers while a sink was still retrying.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { serveWorkers } from '../helpers/serve.js';
import { freePort } from '../helpers/services.js';

test('SIGTERM: a webhook sink that comes back 3.5 s into the shutdown still gets the events (the primary waits for the workers)', async () => {
  const hookPort = await freePort();
  process.env.PCL_TEST_SHUTDOWN_HOOK_SECRET = 'shutdown-test-secret';
  const served = await serveWorkers(
    `audit:\n  sinks:\n    webhook:\n      - url: http://127.0.0.1:${hookPort}/hook\n        secretEnv: PCL_TEST_SHUTDOWN_HOOK_SECRET\n        batchSize: 100\n        maxAttempts: 20\n        backoffMs: 100\n`,
    2,
  );
  let hook: Server | undefined;
  const received: string[] = [];
  try {
    // Requests while the webhook receiver is down: every worker's sink holds its events and retries.
    for (let i = 0; i < 6; i++) {
      const res = await fetch(`${served.url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${served.key}`, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'demo', messages: [{ role: 'user', content: `hello ${i}` }] }) });
      assert.equal(res.status, 200);
      await res.text();
    }
    const t0 = Date.now();
    const stopped = served.stop();
    // The receiver comes up 3.5 s into the shutdown: after the old fixed 2 s exit, before the
    // sinks' 5 s close deadline.
    await new Promise((r) => setTimeout(r, 3500));
    hook = createServer((req, res) => {
      let body = '';
      req.on('data', (d) => (body += d));
      req.on('end', () => {
        for (const e of (JSON.parse(body) as { events: Array<{ id: string; kind: string }> }).events) if (e.kind === 'request') received.push(e.id);
        res.writeHead(200).end('{}');
      });
    });
    await new Promise<void>((r) => hook!.listen(hookPort, '127.0.0.1', () => r()));
    await stopped;
    const took = Date.now() - t0;
    assert.ok(took < 15_000, `shutdown took ${took} ms`);
    assert.equal(new Set(received).size, 6, `request events delivered during the shutdown: ${received.length} (output: ${served.output().slice(-2000)})`);
  } finally {
    await new Promise<void>((r) => (hook ? hook.close(() => r()) : r()));
    delete process.env.PCL_TEST_SHUTDOWN_HOOK_SECRET;
  }
});
