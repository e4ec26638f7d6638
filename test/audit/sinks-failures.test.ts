/**
 * Export sinks when things go wrong: oversized syslog messages, a full disk, rename rotation, a
 * collector that stops reading or restarts, a dead sink with a full queue, webhook redirects,
 * Retry-After and the backoff cap.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer as createHttpServer } from 'node:http';
import { createSocket } from 'node:dgram';
import { createServer as createTcpServer, type Server, type Socket } from 'node:net';
import { existsSync, readFileSync, renameSync, rmSync, symlinkSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { FileSink, SyslogSink, WebhookSink, verifyWebhook } from '../../src/audit/sinks.js';
import { auditConfigSchema } from '../../src/audit/config.js';
import { newEventId, type AuditEvent } from '../../src/audit/event.js';
import { waitFor } from '../identity/util.js';
import { fileCleanups } from './util.js';

const { cleanups, tmp: tmpDir } = fileCleanups();

const ev = (i: number, extra: Partial<AuditEvent> = {}): AuditEvent => ({ id: newEventId(), ts: Date.now(), kind: 'request', requestId: `r${i}`, tenantId: 't', keyId: 'k', status: 200, ...extra });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A TCP collector's connection: each newline-terminated line received goes to `lines`. */
function collectLines(c: Socket, lines: string[]): void {
  let buf = '';
  c.on('data', (d) => {
    buf += d;
    const parts = buf.split('\n');
    buf = parts.pop()!;
    lines.push(...parts);
  });
}

/** A logger that keeps what it is given. */
function logs() {
  const warn: Array<[string, Record<string, unknown>]> = [];
  const info: Array<[string, Record<string, unknown>]> = [];
  return { warn, info, log: { warn: (o: object, m: string) => warn.push([m, o as Record<string, unknown>]), info: (o: object, m: string) => info.push([m, o as Record<string, unknown>]) } };
}

const tmp = () => tmpDir('pcl-sinkfail-');

test('syslog: an event over maxMessageBytes goes as a valid JSON stub (truncated, counted, warned once), never cut mid-character', async () => {
  const udp = createSocket('udp4');
  const got: Buffer[] = [];
  udp.on('message', (m) => got.push(m));
  await new Promise<void>((r) => udp.bind(0, '127.0.0.1', () => r()));
  cleanups.push(() => new Promise<void>((r) => udp.close(() => r())));
  const L = logs();
  const s = new SyslogSink({ host: '127.0.0.1', port: udp.address().port, protocol: 'udp', format: 'syslog', facility: 16, queueSize: 100 }, L.log);
  // 'é' is two UTF-8 bytes: the old 65 000-byte cut could split one; both are over the 8192 default.
  const big1 = ev(1, { model: 'é'.repeat(40_000) });
  const big2 = ev(2, { model: 'x'.repeat(70_000) });
  const small = ev(3);
  for (const e of [big1, small, big2]) s.push(e);
  await waitFor(async () => got.length === 3, 3000);
  await s.close();
  const parsed = got.map((d) => {
    const t = d.toString('utf8');
    assert.ok(d.length <= 8192, `datagram of ${d.length} bytes`);
    assert.match(t, /^<134>1 \S+ \S+ portcullis \d+ request - \{/);
    return JSON.parse(t.slice(t.indexOf('{'))) as Record<string, unknown>;
  });
  assert.deepEqual(parsed[0], { id: big1.id, ts: big1.ts, kind: 'request', tenantId: 't', keyId: 'k', requestId: 'r1', status: 200, truncated: true, bytes: parsed[0]!.bytes });
  assert.ok((parsed[0]!.bytes as number) > 80_000);
  assert.equal(parsed[1]!.id, small.id);
  assert.equal(parsed[1]!.truncated, undefined);
  assert.equal(parsed[2]!.id, big2.id);
  assert.equal(parsed[2]!.truncated, true);
  assert.deepEqual(s.stats(), { delivered: 1, dropped: 0, truncated: 2, queued: 0, queuedBytes: 0 });
  assert.equal(L.warn.filter(([m]) => m.includes('maxMessageBytes')).length, 1, 'one warning per interval');

  // TCP: a larger limit by default (1 MiB), configurable; the stub keeps the line framing.
  const lines: string[] = [];
  const srv = createTcpServer((c) => collectLines(c, lines));
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  cleanups.push(() => new Promise<void>((r) => srv.close(() => r())));
  const port = (srv.address() as { port: number }).port;
  const t1 = new SyslogSink({ host: '127.0.0.1', port, protocol: 'tcp', format: 'json', facility: 16, queueSize: 100 });
  const t2 = new SyslogSink({ host: '127.0.0.1', port, protocol: 'tcp', format: 'json', facility: 16, queueSize: 100, maxMessageBytes: 1024 });
  t1.push(big2);
  t2.push(big2);
  t2.push(small);
  await waitFor(async () => lines.length === 3, 3000);
  await t1.close();
  await t2.close();
  const objs = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.equal(objs.filter((o) => o.id === big2.id && o.model === big2.model).length, 1, 'whole over TCP under 1 MiB');
  assert.equal(objs.filter((o) => o.id === big2.id && o.truncated === true).length, 1, 'stub over maxMessageBytes: 1024');
  assert.equal(t2.stats().truncated, 1);

  assert.throws(() => auditConfigSchema.parse({ sinks: { syslog: [{ protocol: 'udp', maxMessageBytes: 70_000 }] } }), /maxMessageBytes[\s\S]*65507/);
  assert.equal(auditConfigSchema.parse({ sinks: { syslog: [{ protocol: 'tcp', maxMessageBytes: 70_000 }] } }).sinks.syslog[0]!.maxMessageBytes, 70_000);
});

test('file: a failed write (disk full) drops that batch, counted, and the sink reopens the path for later events', async () => {
  const dir = tmp();
  const p = join(dir, 'audit.jsonl');
  symlinkSync('/dev/full', p); // every write fails with ENOSPC
  const L = logs();
  const s = new FileSink({ path: p, queueSize: 100 }, L.log);
  for (let i = 0; i < 5; i++) s.push(ev(i));
  await waitFor(async () => s.stats().dropped === 5, 3000);
  assert.ok(L.warn.some(([, o]) => String(o.err).includes('ENOSPC')));
  unlinkSync(p); // space again: the path now names a regular file
  const later = Array.from({ length: 5 }, (_, i) => ev(10 + i));
  for (const e of later) s.push(e);
  await waitFor(async () => s.stats().delivered === 5, 3000);
  await s.close();
  assert.deepEqual(
    readFileSync(p, 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as AuditEvent).id),
    later.map((e) => e.id),
  );
  assert.deepEqual(s.stats(), { delivered: 5, dropped: 5, truncated: 0, queued: 0, queuedBytes: 0 });
});

test('file: after a rename rotation (logrotate default) the next events go to a new file at the path', async () => {
  const dir = tmp();
  const p = join(dir, 'audit.jsonl');
  const s = new FileSink({ path: p, queueSize: 100 });
  const first = ev(1);
  s.push(first);
  await waitFor(async () => s.stats().delivered === 1, 3000);
  renameSync(p, p + '.1');
  const second = [ev(2), ev(3)];
  for (const e of second) s.push(e);
  await waitFor(async () => s.stats().delivered === 3, 3000);
  assert.ok(existsSync(p), 'the path is recreated');
  assert.deepEqual(readFileSync(p + '.1', 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as AuditEvent).id), [first.id]);
  assert.deepEqual(readFileSync(p, 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as AuditEvent).id), second.map((e) => e.id));
  // Deleted outright: recreated too (the directory as well).
  rmSync(dir, { recursive: true, force: true });
  const third = ev(4);
  s.push(third);
  await waitFor(async () => s.stats().delivered === 4, 3000);
  await s.close();
  assert.equal((JSON.parse(readFileSync(p, 'utf8').trim()) as AuditEvent).id, third.id);
});

test('syslog TCP: close() returns within its deadline when the collector accepts but stops reading; stalled writes drop the connection', { timeout: 15_000 }, async () => {
  const conns: Socket[] = [];
  const srv = createTcpServer({ pauseOnConnect: true }, (c) => {
    conns.push(c);
    c.on('error', () => {});
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  cleanups.push(() => {
    for (const c of conns) c.destroy();
    return new Promise<void>((r) => srv.close(() => r()));
  });
  const s = new SyslogSink({ host: '127.0.0.1', port: (srv.address() as { port: number }).port, protocol: 'tcp', format: 'json', facility: 16, queueSize: 10_000, timeoutMs: 300 });
  const big = 'y'.repeat(200_000);
  for (let i = 0; i < 400; i++) s.push(ev(i, { model: big })); // 80 MB: far more than the socket buffers
  // A write made no progress for 300 ms: the connection is dropped and the batch retried on a new one.
  await waitFor(async () => conns.length >= 2, 5000);
  assert.ok(s.stats().queued > 0);
  const t0 = Date.now();
  await s.close(1000);
  const took = Date.now() - t0;
  assert.ok(took < 1500, `close took ${took} ms`);
  const st = s.stats();
  assert.equal(st.queued, 0);
  assert.ok(st.dropped > 0, 'what was left is counted as dropped');
  assert.ok(st.queuedBytes === 0);

  // A write deadline longer than the close deadline: close() still returns on time.
  const slow = new SyslogSink({ host: '127.0.0.1', port: (srv.address() as { port: number }).port, protocol: 'tcp', format: 'json', facility: 16, queueSize: 10_000, timeoutMs: 60_000 });
  for (let i = 0; i < 400; i++) slow.push(ev(i, { model: big }));
  await sleep(300); // the socket buffers fill up, a write is stuck
  const t1 = Date.now();
  await slow.close(500);
  assert.ok(Date.now() - t1 < 1000, `close took ${Date.now() - t1} ms`);
  assert.equal(slow.stats().delivered + slow.stats().dropped, 400);
});

test('syslog TCP: events survive a collector restart (held and retried with backoff), one warning per outage', { timeout: 15_000 }, async () => {
  const lines: string[] = [];
  const conns = new Set<Socket>();
  const listen = (port = 0) =>
    new Promise<Server>((r) => {
      const srv = createTcpServer((c) => {
        conns.add(c);
        collectLines(c, lines);
        c.on('error', () => {});
      });
      srv.listen(port, '127.0.0.1', () => r(srv));
    });
  let srv = await listen();
  const port = (srv.address() as { port: number }).port;
  const L = logs();
  const s = new SyslogSink({ host: '127.0.0.1', port, protocol: 'tcp', format: 'syslog', facility: 16, queueSize: 1000 }, L.log);
  const sent: AuditEvent[] = [];
  const send = (n: number) => {
    for (let i = 0; i < n; i++) {
      const e = ev(sent.length);
      sent.push(e);
      s.push(e);
    }
  };
  send(10);
  await waitFor(async () => lines.length === 10, 3000);
  // The collector goes away for ~500 ms.
  for (const c of conns) c.destroy();
  conns.clear();
  await new Promise((r) => srv.close(r));
  await sleep(50);
  for (let i = 0; i < 10; i++) {
    send(1);
    await sleep(20);
  }
  await sleep(300);
  assert.equal(s.stats().dropped, 0);
  srv = await listen(port);
  cleanups.push(() => {
    for (const c of conns) c.destroy();
    return new Promise<void>((r) => srv.close(() => r()));
  });
  send(10);
  await waitFor(async () => lines.length === 30, 5000);
  await s.close();
  const ids = lines.map((l) => (JSON.parse(l.slice(l.indexOf('{'))) as AuditEvent).id);
  assert.deepEqual(new Set(ids), new Set(sent.map((e) => e.id)), 'every event arrived');
  assert.deepEqual(s.stats(), { delivered: 30, dropped: 0, truncated: 0, queued: 0, queuedBytes: 0 });
  assert.equal(L.warn.length, 1, `one warning for the outage: ${JSON.stringify(L.warn)}`);
  assert.match(L.warn[0]![0], /unavailable/);
  assert.equal(L.info.filter(([m]) => /available again/.test(m)).length, 1, 'one line when it recovers');
});

test('queue: a full queue costs O(1) per push even at queueSize 1M; queueBytes bounds it by serialized size', { timeout: 30_000 }, async () => {
  const s = new WebhookSink({ url: 'http://127.0.0.1:1/dead', secretEnv: 'S', batchSize: 100, maxAttempts: 20, backoffMs: 600_000, timeoutMs: 1000, queueSize: 1_000_000 }, { S: 'k' });
  const e = ev(0);
  for (let i = 0; i < 1_000_100; i++) s.push(e);
  const t0 = performance.now();
  for (let i = 0; i < 20_000; i++) s.push(e);
  const us = ((performance.now() - t0) / 20_000) * 1000;
  assert.ok(us < 20, `${us.toFixed(2)} µs per push on a full queue`);
  assert.ok(s.stats().queued <= 1_000_000);
  assert.ok(s.stats().dropped >= 20_000);
  await s.close(50);
  assert.equal(s.stats().queued, 0);
  assert.equal(s.stats().dropped, 1_020_100, 'every event is accounted for');

  const b = new WebhookSink({ url: 'http://127.0.0.1:1/dead', secretEnv: 'S', batchSize: 1, maxAttempts: 20, backoffMs: 600_000, timeoutMs: 1000, queueSize: 1000, queueBytes: 10_000 }, { S: 'k' });
  const one = JSON.stringify(ev(0, { model: 'z'.repeat(1000) })).length;
  for (let i = 0; i < 100; i++) b.push(ev(i, { model: 'z'.repeat(1000) }));
  const st = b.stats();
  assert.ok(st.queuedBytes <= 10_000, `queuedBytes ${st.queuedBytes}`);
  assert.ok(st.queued <= Math.floor(10_000 / one) && st.queued >= Math.floor(10_000 / one) - 1, `queued ${st.queued}`);
  assert.ok(st.dropped >= 100 - Math.floor(10_000 / one) - 1);
  await b.close(50);
  assert.equal(b.stats().dropped, 100);
});

test('webhook: a redirect is not followed (the signed body never reaches the new location), not retried, counted as dropped', async () => {
  let bHits = 0;
  const b = createHttpServer((req, res) => {
    bHits++;
    req.resume();
    res.end();
  });
  await new Promise<void>((r) => b.listen(0, '127.0.0.1', () => r()));
  let aHits = 0;
  const a = createHttpServer((req, res) => {
    aHits++;
    req.resume();
    res.writeHead(307, { location: `http://localhost:${(b.address() as { port: number }).port}/steal` }).end();
  });
  await new Promise<void>((r) => a.listen(0, '127.0.0.1', () => r()));
  cleanups.push(() => new Promise<void>((r) => a.close(() => r())));
  cleanups.push(() => new Promise<void>((r) => b.close(() => r())));
  const L = logs();
  const s = new WebhookSink({ url: `http://127.0.0.1:${(a.address() as { port: number }).port}/h`, secretEnv: 'S', batchSize: 10, maxAttempts: 3, backoffMs: 10, timeoutMs: 2000, queueSize: 10 }, { S: 'k' }, L.log);
  s.push(ev(1));
  await waitFor(async () => s.stats().dropped === 1, 3000);
  await s.close();
  assert.equal(bHits, 0, 'the redirect target got nothing');
  assert.equal(aHits, 1, 'no retry');
  assert.match(String(L.warn[0]?.[1].err), /redirect/);
  // The receiver helper rejects a missing or malformed header instead of throwing.
  assert.equal(verifyWebhook('k', '{}', undefined), false);
  assert.equal(verifyWebhook('k', '{}', 't=1,v1=zz'), false);
});

test('webhook: Retry-After on 429/503 is honoured', async () => {
  const at: number[] = [];
  const srv = createHttpServer((req, res) => {
    req.resume();
    at.push(Date.now());
    if (at.length === 1) res.writeHead(429, { 'retry-after': '1' }).end();
    else res.writeHead(204).end();
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  cleanups.push(() => new Promise<void>((r) => srv.close(() => r())));
  const s = new WebhookSink({ url: `http://127.0.0.1:${(srv.address() as { port: number }).port}/h`, secretEnv: 'S', batchSize: 10, maxAttempts: 3, backoffMs: 10, timeoutMs: 2000, queueSize: 10 }, { S: 'k' });
  s.push(ev(1));
  await waitFor(async () => s.stats().delivered === 1, 4000);
  await s.close();
  assert.equal(at.length, 2);
  assert.ok(at[1]! - at[0]! >= 950, `waited ${at[1]! - at[0]!} ms, asked for 1 s`);
});

test('webhook: backoff and Retry-After are capped at 5 minutes (no setTimeout overflow at high attempt counts)', { timeout: 15_000 }, async () => {
  let hits = 0;
  const srv = createHttpServer((req, res) => {
    req.resume();
    hits++;
    if (hits === 1) res.writeHead(429, { 'retry-after': '86400' }).end();
    else res.writeHead(503).end();
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  cleanups.push(() => new Promise<void>((r) => srv.close(() => r())));
  // Long timers are recorded and fired at once (shorter ones, e.g. the HTTP client's, run as usual).
  const real = globalThis.setTimeout;
  const asked: number[] = [];
  globalThis.setTimeout = ((fn: (...a: unknown[]) => void, ms?: number, ...args: unknown[]) => {
    if ((ms ?? 0) >= 60_000) {
      asked.push(ms!);
      return real(fn, 1, ...args);
    }
    return real(fn, ms, ...args);
  }) as typeof setTimeout;
  try {
    const s = new WebhookSink({ url: `http://127.0.0.1:${(srv.address() as { port: number }).port}/h`, secretEnv: 'S', batchSize: 10, maxAttempts: 20, backoffMs: 600_000, timeoutMs: 2000, queueSize: 10 }, { S: 'k' });
    s.push(ev(1));
    await waitFor(async () => s.stats().dropped === 1, 10_000);
    await s.close(100);
  } finally {
    globalThis.setTimeout = real;
  }
  assert.equal(hits, 20, 'maxAttempts: 20 is 20 attempts');
  assert.equal(asked.length, 19);
  assert.equal(asked[0], 300_000, 'Retry-After: 86400 capped');
  assert.ok(asked.every((ms) => ms <= 300_000), `waits: ${asked.join(', ')}`);
});
