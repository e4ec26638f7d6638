/**
 * Post-response work (request log line, audit, metrics, analytics) waits off the path between a
 * response and the next request: the queue's own triggers, and what the gateway does with them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setImmediate as nextTurn, setTimeout as sleep } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { createAfterResponse } from '../../src/server/after-response.js';
import type { AuditModule } from '../../src/audit/module.js';
import { startGateway } from '../helpers/gateway.js';
import { metricValue } from '../helpers/metrics.js';
import { memoryLogger } from '../helpers/log.js';

const errors: unknown[] = [];
const onError = (e: unknown) => errors.push(e);

test('queued items wait for a trigger, then run once each, in order (the timer when nothing else comes)', async () => {
  const ran: string[] = [];
  const q = createAfterResponse({ maxDelayMs: 40, onError });
  q.push(() => void ran.push('a'));
  q.push(() => void ran.push('b'));
  assert.deepEqual(ran, []);
  await nextTurn();
  await nextTurn();
  assert.deepEqual(ran, [], 'not on the next turn of the loop without a kick');
  assert.equal(q.size, 2);
  await sleep(120);
  assert.deepEqual(ran, ['a', 'b']);
  await sleep(60);
  assert.deepEqual(ran, ['a', 'b'], 'each item once');
});

test('kick (an upstream request went out) runs them on the next turn; with nothing queued it schedules nothing', async () => {
  const ran: number[] = [];
  const q = createAfterResponse({ maxDelayMs: 60_000, onError });
  q.kick();
  q.push(() => void ran.push(1));
  q.kick();
  q.kick();
  assert.deepEqual(ran, []);
  await nextTurn();
  assert.deepEqual(ran, [1]);
  assert.equal(q.size, 0);
});

test('drain runs them now and resolves when the asynchronous ones finished, or after maxWaitMs', async () => {
  const q = createAfterResponse({ maxDelayMs: 60_000, onError });
  assert.equal(q.drain(), undefined, 'nothing queued, nothing to wait for');
  let started = false;
  let finished = false;
  q.push(async () => {
    started = true;
    await sleep(30);
    finished = true;
  });
  const p = q.drain();
  assert.ok(started, 'run synchronously by drain');
  assert.ok(p);
  await p;
  assert.ok(finished);
  // An item stuck on a store that does not answer holds a drain up for maxWaitMs only.
  q.push(() => new Promise(() => {}));
  const t0 = performance.now();
  await q.drain(30);
  const waited = performance.now() - t0;
  assert.ok(waited >= 25 && waited < 1000, `waited ${waited} ms`);
});

test('an item that throws or rejects goes to onError; the items after it still run', async () => {
  const seen: unknown[] = [];
  const ran: string[] = [];
  const q = createAfterResponse({ maxDelayMs: 60_000, onError: (e) => seen.push((e as Error).message) });
  q.push(() => {
    throw new Error('sync');
  });
  q.push(() => Promise.reject(new Error('async')));
  q.push(() => void ran.push('last'));
  await q.drain();
  assert.deepEqual(ran, ['last']);
  assert.deepEqual(seen.sort(), ['async', 'sync']);
});

test('maxQueued items waiting trigger a run on the next turn (a flood rejected before any upstream call)', async () => {
  let n = 0;
  const q = createAfterResponse({ maxDelayMs: 60_000, maxQueued: 3, onError });
  q.push(() => void n++);
  q.push(() => void n++);
  await nextTurn();
  assert.equal(n, 0);
  q.push(() => void n++);
  await nextTurn();
  assert.equal(n, 3);
});

test('settle (shutdown) runs items queued by other items and waits for every asynchronous one', async () => {
  const q = createAfterResponse({ maxDelayMs: 60_000, onError });
  const done: string[] = [];
  q.push(async () => {
    await sleep(10);
    q.push(async () => {
      await sleep(10);
      done.push('second');
    });
    done.push('first');
  });
  await q.settle();
  assert.deepEqual(done, ['first', 'second']);
  assert.equal(q.size, 0);
  assert.deepEqual(errors, []);
});

const chatBody = (content: string) => JSON.stringify({ model: 'demo', messages: [{ role: 'user', content }] });

async function chat(url: string, key: string, content: string): Promise<string> {
  const r = await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: chatBody(content) });
  assert.equal(r.status, 200);
  await r.text();
  return r.headers.get('x-request-id')!;
}

test('gateway: a response\'s log line waits until the next request goes upstream (or a reader, or the timer)', async () => {
  const { logger, lines } = memoryLogger();
  const t = await startGateway({}, { gateway: { afterResponseMaxDelayMs: 60_000, logger } });
  try {
    const first = await chat(t.url, t.key, 'one');
    await nextTurn();
    assert.ok(!lines.some((l) => l.reqId === first && l.msg === 'request'), 'not written between the response and the next request');
    await chat(t.url, t.key, 'two');
    await nextTurn();
    const line = lines.find((l) => l.reqId === first && l.msg === 'request');
    assert.ok(line, 'written while the second request waited on its upstream');
    assert.equal(line.status, 200);
    assert.equal(line.model, 'demo');
  } finally {
    await t.close();
  }
});

test("gateway: a stream's first event runs what earlier responses left (not its upstream call, which would hold up the first byte)", async () => {
  const { logger, lines } = memoryLogger();
  const t = await startGateway({}, { gateway: { afterResponseMaxDelayMs: 60_000, logger } });
  try {
    const first = await chat(t.url, t.key, 'one');
    await nextTurn();
    assert.ok(!lines.some((l) => l.reqId === first && l.msg === 'request'));
    const r = await fetch(`${t.url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${t.key}`, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'demo', stream: true, messages: [{ role: 'user', content: 'stream' }] }) });
    assert.equal(r.status, 200);
    assert.match(await r.text(), /data: \[DONE\]/);
    assert.ok(lines.some((l) => l.reqId === first && l.msg === 'request'), 'written once the stream had sent its first event');
  } finally {
    await t.close();
  }
});

test('gateway: a /metrics scrape right after a response counts it; audit flush includes it', async () => {
  const TOKEN = 'scrape-token-0123456789';
  const t = await startGateway({ metrics: { maxLabelValues: 50 } }, { env: { PORTCULLIS_METRICS_TOKEN: TOKEN }, gateway: { afterResponseMaxDelayMs: 60_000 } });
  try {
    const id = await chat(t.url, t.key, 'count me');
    const text = await (await fetch(`${t.url}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })).text();
    assert.equal(metricValue(text, 'portcullis_requests_total', { route: '/v1/chat/completions', status: '200' }), 1);
    const id2 = await chat(t.url, t.key, 'audit me');
    const audit = t.gw.modules.get('audit') as AuditModule;
    await audit.flush();
    const found = (await audit.store.search({ limit: 10 })).data.map((e) => e.requestId);
    assert.ok(found.includes(id) && found.includes(id2), found.join(','));
  } finally {
    await t.close();
  }
});

test('gateway: shutdown records what the last responses left (audit events, log lines)', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'pcl-after-'));
  const { logger, lines } = memoryLogger();
  const t = await startGateway({ dataDir }, { gateway: { afterResponseMaxDelayMs: 60_000, logger } });
  const ids: string[] = [];
  try {
    ids.push(...(await Promise.all([chat(t.url, t.key, 'a'), chat(t.url, t.key, 'b'), chat(t.url, t.key, 'c')])));
  } finally {
    await t.close();
  }
  try {
    const db = new Database(join(dataDir, 'portcullis.db'), { readonly: true });
    const rows = db.prepare("SELECT request_id FROM audit_events WHERE kind = 'request'").all() as Array<{ request_id: string }>;
    db.close();
    assert.deepEqual(rows.map((r) => r.request_id).sort(), [...ids].sort());
    for (const id of ids) assert.ok(lines.some((l) => l.reqId === id && l.msg === 'request'), `log line of ${id}`);
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
});
