/** The request log: one line per request with the documented fields, never a credential. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { request } from 'undici';
import { validateConfig } from '../../src/config/load.js';
import { createGateway } from '../../src/index.js';
import { parseApiKey } from '../../src/identity/keys.js';

test('one request line per call with status, route, tenant and timings; no key in any line (header or x-api-key)', async () => {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      lines.push(...String(chunk).split('\n').filter(Boolean));
      cb();
    },
  });
  // The gateway's own redaction paths, as createLogger sets them.
  const logger = pino({ level: 'info', redact: { paths: ['req.headers.authorization', 'req.headers["x-api-key"]', '*.apiKey', '*.key', '*.pepper'], censor: '[redacted]' } }, sink);
  const dir = mkdtempSync(join(tmpdir(), 'pcl-reqlog-'));
  const gw = await createGateway(validateConfig({ dataDir: dir, server: { host: '127.0.0.1', port: 0 }, log: { level: 'info' } }), { logger, env: {} });
  try {
    const { url } = await gw.listen();
    const key = gw.bootstrapKey!.key;
    const body = JSON.stringify({ model: 'demo', messages: [{ role: 'user', content: 'hello there' }] });
    const ok = await request(`${url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body });
    await ok.body.text();
    const viaHeader = await request(`${url}/v1/messages`, { method: 'POST', headers: { 'x-api-key': key, 'anthropic-version': '2023-06-01', 'content-type': 'application/json' }, body: JSON.stringify({ model: 'demo', max_tokens: 20, messages: [{ role: 'user', content: 'hi' }] }) });
    await viaHeader.body.text();
    const bad = await request(`${url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${key.slice(0, -4)}AAAA`, 'content-type': 'application/json' }, body });
    await bad.body.text();
    assert.deepEqual([ok.statusCode, viaHeader.statusCode, bad.statusCode], [200, 200, 401]);
    await new Promise((r) => setTimeout(r, 50));
    const reqLines = lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.msg === 'request');
    assert.equal(reqLines.length, 3, lines.join('\n'));
    const [a, b, c] = reqLines as Array<Record<string, any>>;
    assert.equal(a.route, '/v1/chat/completions');
    assert.equal(a.status, 200);
    assert.equal(a.model, 'demo');
    assert.ok(typeof a.tenant === 'string' && a.tenant.length > 0);
    assert.ok(typeof a.keyId === 'string' && key.includes(a.keyId));
    for (const f of ['latencyMs', 'gatewayMs', 'upstreamMs']) assert.equal(typeof a[f], 'number', f);
    assert.equal(b.route, '/v1/messages');
    assert.equal(b.status, 200);
    assert.equal(c.status, 401);
    // The 43-character secret (it may itself contain `_`: splitting on `_` gave a short tail that
    // an unrelated id could contain by chance).
    const secret = parseApiKey(key)!.secret;
    for (const l of lines) {
      assert.ok(!l.includes(secret), `a log line carries the key's secret: ${l}`);
      assert.ok(!l.includes('AAAA"'), `a log line carries the presented (wrong) secret: ${l}`);
    }
  } finally {
    await gw.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
