/** Export sinks against local receivers: signed webhook with retries, syslog over UDP and TCP, JSON-lines file; and a gateway feeding them. */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer as createHttpServer } from 'node:http';
import { createSocket } from 'node:dgram';
import { createServer as createTcpServer } from 'node:net';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileSink, SyslogSink, WebhookSink, signWebhook, verifyWebhook } from '../../src/audit/sinks.js';
import { newEventId, type AuditEvent } from '../../src/audit/event.js';
import { startGateway } from '../helpers/gateway.js';
import { waitFor } from '../identity/util.js';

const cleanups: Array<() => Promise<void> | void> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

const SECRET = 'whsec-' + 'test'.repeat(8);
const ev = (i: number): AuditEvent => ({ id: newEventId(), ts: Date.now(), kind: 'request', requestId: `r${i}`, tenantId: 't', status: i % 5 === 0 ? 403 : 200 });

/** A webhook receiver that verifies signatures and fails the first `failFirst` deliveries. */
async function receiver(failFirst = 0) {
  const got: { events: AuditEvent[]; verified: boolean }[] = [];
  let attempts = 0;
  const server = createHttpServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    attempts++;
    if (attempts <= failFirst) {
      res.writeHead(503).end();
      return;
    }
    const verified = verifyWebhook(SECRET, body, String(req.headers['x-portcullis-signature'] ?? ''));
    got.push({ events: JSON.parse(body).events, verified });
    res.writeHead(verified ? 204 : 401).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}/hook`, got, attempts: () => attempts };
}

test('webhook: HMAC-SHA256 signature verifies at the receiver, a tampered body does not; retries with backoff', async () => {
  const body = '{"events":[]}';
  const sig = signWebhook(SECRET, body);
  assert.ok(verifyWebhook(SECRET, body, sig));
  assert.ok(!verifyWebhook(SECRET, body + ' ', sig), 'tampered body');
  assert.ok(!verifyWebhook('other-secret', body, sig), 'wrong secret');
  assert.ok(!verifyWebhook(SECRET, body, signWebhook(SECRET, body, Math.floor(Date.now() / 1000) - 3600)), 'stale timestamp');

  const r = await receiver(2);
  const sink = new WebhookSink({ url: r.url, secretEnv: 'HOOK_SECRET', batchSize: 10, maxAttempts: 5, backoffMs: 20, timeoutMs: 2000, queueSize: 100 }, { HOOK_SECRET: SECRET });
  const sent = Array.from({ length: 25 }, (_, i) => ev(i));
  for (const e of sent) sink.push(e);
  await waitFor(async () => sink.stats().delivered === 25, 5000);
  await sink.close();
  assert.ok(r.attempts() >= 5, 'two failed attempts were retried');
  assert.ok(r.got.every((x) => x.verified));
  assert.deepEqual(r.got.flatMap((x) => x.events.map((e) => e.id)).sort(), sent.map((e) => e.id).sort());
});

test('webhook: a dead receiver never blocks push; the queue is bounded and drops are counted', async () => {
  const sink = new WebhookSink({ url: 'http://127.0.0.1:1/nothing', secretEnv: 'S', batchSize: 5, maxAttempts: 2, backoffMs: 10, timeoutMs: 500, queueSize: 20 }, { S: SECRET });
  const t0 = performance.now();
  for (let i = 0; i < 1000; i++) sink.push(ev(i));
  assert.ok(performance.now() - t0 < 200, 'push is non-blocking');
  assert.ok(sink.stats().queued <= 20);
  await sink.close(1000);
  const s = sink.stats();
  assert.equal(s.delivered, 0);
  assert.ok(s.dropped >= 980);
  assert.throws(() => new WebhookSink({ url: 'http://127.0.0.1:1/', secretEnv: 'MISSING', batchSize: 1, maxAttempts: 1, backoffMs: 1, timeoutMs: 100, queueSize: 1 }, {}), /signing secret/);
});

test('syslog over UDP and TCP: RFC 5424 lines with the event JSON, received by local listeners', async () => {
  const udp = createSocket('udp4');
  const udpLines: string[] = [];
  udp.on('message', (m) => udpLines.push(m.toString('utf8')));
  await new Promise<void>((r) => udp.bind(0, '127.0.0.1', () => r()));
  cleanups.push(() => new Promise<void>((r) => udp.close(() => r())));
  let tcpData = '';
  const tcp = createTcpServer((s) => s.on('data', (d) => (tcpData += d.toString('utf8'))));
  await new Promise<void>((r) => tcp.listen(0, '127.0.0.1', () => r()));
  cleanups.push(() => new Promise<void>((r) => tcp.close(() => r())));

  const u = new SyslogSink({ host: '127.0.0.1', port: udp.address().port, protocol: 'udp', format: 'syslog', facility: 16, queueSize: 100 });
  const t = new SyslogSink({ host: '127.0.0.1', port: (tcp.address() as { port: number }).port, protocol: 'tcp', format: 'json', facility: 16, queueSize: 100 });
  const sent = Array.from({ length: 10 }, (_, i) => ev(i));
  for (const e of sent) {
    u.push(e);
    t.push(e);
  }
  await waitFor(async () => udpLines.length === 10 && tcpData.split('\n').filter(Boolean).length === 10, 5000);
  await u.close();
  await t.close();
  const first = udpLines.find((l) => l.includes(sent[0]!.id))!;
  assert.match(first, /^<13[0-9]>1 \d{4}-\d\d-\d\dT[\d:.]+Z \S+ portcullis \d+ request - \{/);
  assert.equal(JSON.parse(first.slice(first.indexOf('{'))).id, sent[0]!.id);
  assert.ok(udpLines.some((l) => l.startsWith('<133>')), 'a 403 is logged with severity notice (facility local0)');
  assert.deepEqual(tcpData.trim().split('\n').map((l) => JSON.parse(l).id), sent.map((e) => e.id));
});

test('gateway: request and admin events reach a JSON-lines file sink', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pcl-audit-sink-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'audit.jsonl');
  const g = await startGateway({ audit: { adminPollMs: 50, sinks: { file: [{ path: file }] } } });
  const res = await fetch(`${g.url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${g.key}`, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'demo', messages: [{ role: 'user', content: 'hello' }] }) });
  assert.equal(res.status, 200);
  await res.text();
  const id = res.headers.get('x-request-id');
  await waitFor(async () => {
    try {
      return readFileSync(file, 'utf8').includes(String(id));
    } catch {
      return false;
    }
  }, 5000);
  await g.close();
  const lines = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as AuditEvent);
  assert.ok(lines.some((e) => e.kind === 'request' && e.requestId === id && e.status === 200));
  assert.ok(lines.some((e) => e.kind === 'admin' && e.action === 'key.create'), 'the bootstrap key creation is bridged');
});
