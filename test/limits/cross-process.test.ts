/**
 * Cross-process exactness with 3 real worker processes (forked once, shared by both suites):
 * - on REAL Redis (127.0.0.1:6379): exactness, budgets never overspent, concurrency never
 *   exceeded, and both outage policies against a closed port; skipped with a printed reason
 *   when Redis is unreachable, unless CI=true;
 * - over IPC (`serve --workers N` without Redis): counters held by the primary (this test
 *   process) stay exact across the workers.
 */
import { deleteKeys, redisSkipReason } from '../helpers/services.js';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { createIpcCounterStore, type IpcPeer } from '../../src/limits/index.js';
import { Redis } from 'ioredis';
import { createLimiter, createRedisCounterStore, limitsFallbackAdmissions, parseLimitsConfig, type Limiter } from '../../src/limits/index.js';
import { forkWorkers, ipcCounterHost, killWorkers, runJob } from './fixtures/workers.js';

const URL = process.env.PCL_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const PREFIX = `pcl:test:${process.pid}:${Date.now()}`;


const skip = await redisSkipReason(URL, 'Redis limits tests');

let kids: ChildProcess[] = [];
before(async () => {
  kids = await forkWorkers(3);
});
after(() => killWorkers(kids));

describe('limits on Redis', { skip, timeout: 20_000 }, () => {
  let admin: Redis;
  const open: Limiter[] = [];
  const track = (l: Limiter) => (open.push(l), l);
  const store = { kind: 'redis' as const, url: URL, prefix: PREFIX };

  before(async () => {
    admin = new Redis(URL);
  });
  after(async () => {
    for (const l of open) await l.close();
    await deleteKeys(admin, `${PREFIX}:*`);
    admin.disconnect();
  });

  test('3 processes, 60 concurrent admissions against requestsPerMinute=25 admit exactly 25', async () => {
    const startAt = Date.now() + 400;
    const res = await Promise.all(
      kids.map((k) => runJob<{ admitted: number; codes: string[] }>(k, { kind: 'burst', store, tenantId: 'burst', limits: { key: { requestsPerMinute: 25 } }, startAt, n: 20 })),
    );
    const total = res.reduce((s, r) => s + r.admitted, 0);
    assert.equal(total, 25);
    assert.ok(res.every((r) => r.codes.every((c) => c === 'PCL_RATE_LIMITED')));
  });

  test('3 processes share a tenant tokensPerMinute limit exactly', async () => {
    // each admission reserves 10 input + 10 output = 20 tokens; 400 tokens/min → exactly 20 admissions
    const startAt = Date.now() + 300;
    const res = await Promise.all(
      kids.map((k) => runJob<{ admitted: number }>(k, { kind: 'burst', store, tenantId: 'tpm', limits: { tenant: { tokensPerMinute: 400 } }, startAt, n: 15 })),
    );
    assert.equal(res.reduce((s, r) => s + r.admitted, 0), 20);
  });

  test('a daily token budget with settlements at the end is never overspent', async () => {
    const budget = 5000;
    const startAt = Date.now() + 300;
    const res = await Promise.all(
      kids.map((k, i) =>
        runJob<{ admitted: number; actual: number; refusals: number }>(k, {
          kind: 'budget',
          store,
          tenantId: 'budget',
          limits: { key: { dailyTokens: budget } },
          startAt,
          n: 4,
          seed: i + 7,
        }),
      ),
    );
    const actual = res.reduce((s, r) => s + r.actual, 0);
    const admitted = res.reduce((s, r) => s + r.admitted, 0);
    assert.ok(actual <= budget, `spent ${actual} > budget ${budget}`);
    // settlements free unused reservation, so more than budget/200 requests get in
    assert.ok(admitted > budget / 200, `only ${admitted} admitted`);
    assert.ok(actual > budget - 200, `budget left unused: spent ${actual}`);
    // the stored counter is exactly the settled usage
    const keys = await admin.keys(`${PREFIX}:{t:budget}:bt:*`);
    assert.equal(keys.length, 1);
    assert.equal(Number(await admin.get(keys[0])), actual);
  });

  test('concurrency limit is never exceeded across 3 processes', async () => {
    const limit = 4;
    const startAt = Date.now() + 300;
    const res = await Promise.all(
      kids.map((k) =>
        runJob<{ intervals: [number, number][]; refused: number }>(k, {
          kind: 'concurrency',
          store,
          tenantId: 'conc',
          limits: { key: { concurrency: limit } },
          startAt,
          n: 25,
          holdMs: 15,
        }),
      ),
    );
    const events: [number, number][] = [];
    for (const r of res) for (const [s, e] of r.intervals) events.push([s, 1], [e, -1]);
    events.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    let cur = 0;
    let max = 0;
    for (const [, d] of events) max = Math.max(max, (cur += d));
    assert.ok(max <= limit, `max in flight ${max} > ${limit}`);
    assert.ok(max >= 2, 'test did not produce real concurrency');
    assert.ok(res.reduce((s, r) => s + r.refused, 0) > 0, 'limit was never reached');
    // every slot was given back
    const keys = await admin.keys(`${PREFIX}:{t:conc}:conc:*`);
    for (const k of keys) assert.equal(await admin.zcard(k), 0);
  });

  test('settlement replaces the reservation; release gives everything back', async () => {
    const config = parseLimitsConfig({ keyPrefix: PREFIX });
    const limiter = track(createLimiter({ config, store: createRedisCounterStore(URL, { keyPrefix: PREFIX, commandTimeoutMs: 3000 }) }));
    const limits = { key: { dailyTokens: 10_000, dailyCostUsd: 1, concurrency: 1 } };
    const req = { tenantId: 'settle', keyId: 'k', model: 'demo', inputTokens: 1000, requestedOutputTokens: 500, messages: 1, limits };
    const a = await limiter.admit(req);
    assert.ok(a.ok);
    const [tokKey] = await admin.keys(`${PREFIX}:{t:settle}:bt:*`);
    const [costKey] = await admin.keys(`${PREFIX}:{t:settle}:bc:*`);
    assert.equal(Number(await admin.get(tokKey)), 1500);
    // demo: $1/MTok in, $2/MTok out → 1000 in + 500 out = $0.002 = 2,000,000 nano
    assert.equal(Number(await admin.get(costKey)), 2_000_000);
    const second = await limiter.admit(req);
    assert.ok(!second.ok && second.error.code === 'PCL_RATE_LIMITED', 'concurrency 1 must refuse a second request');
    const { costUsd } = await limiter.settle(a.ticket, { inputTokens: 900, outputTokens: 100 });
    assert.equal(costUsd, 0.0011);
    assert.equal(Number(await admin.get(tokKey)), 1000);
    assert.equal(Number(await admin.get(costKey)), 1_100_000);
    await limiter.settle(a.ticket, { inputTokens: 900, outputTokens: 100 }); // idempotent
    assert.equal(Number(await admin.get(tokKey)), 1000);
    const b = await limiter.admit(req);
    assert.ok(b.ok, 'slot freed by settlement');
    await limiter.release(b.ticket);
    assert.equal(Number(await admin.get(tokKey)), 1000);
    assert.equal(Number(await admin.get(costKey)), 1_100_000);
    assert.equal(await admin.zcard(`${PREFIX}:{t:settle}:conc:key:k`), 0);
  });

  test('a dead Redis with failMode closed refuses with 503 quickly', async () => {
    const config = parseLimitsConfig({ failMode: 'closed' });
    const logs: object[] = [];
    const limiter = track(createLimiter({ config, store: createRedisCounterStore('redis://127.0.0.1:1', { connectTimeoutMs: 300 }), log: { warn: (o) => logs.push(o) } }));
    const t0 = Date.now();
    const a = await limiter.admit({ tenantId: 't', keyId: 'k', model: 'demo', inputTokens: 5, messages: 1, limits: { key: { requestsPerMinute: 10 } } });
    assert.ok(!a.ok);
    assert.equal(a.error.code, 'PCL_UNAVAILABLE');
    assert.equal(a.error.status, 503);
    assert.ok(Date.now() - t0 < 2000);
    assert.equal(limiter.stats().unavailableRefusals, 1);
    assert.equal(logs.length, 1);
  });

  test('a dead Redis with failMode open admits via the local limiter, counts and logs it', async () => {
    const config = parseLimitsConfig({ failMode: 'open' });
    const logs: object[] = [];
    const limiter = track(createLimiter({ config, store: createRedisCounterStore('redis://127.0.0.1:1', { connectTimeoutMs: 300 }), log: { warn: (o) => logs.push(o) } }));
    const before = limitsFallbackAdmissions();
    const req = { tenantId: 't', keyId: 'k', model: 'demo', inputTokens: 5, messages: 1, limits: { key: { requestsPerMinute: 2 } } };
    const r1 = await limiter.admit(req);
    const r2 = await limiter.admit(req);
    const r3 = await limiter.admit(req);
    assert.ok(r1.ok && r2.ok && r1.ticket.fallback);
    assert.ok(!r3.ok && r3.error.code === 'PCL_RATE_LIMITED', 'the local limiter still enforces the limit');
    assert.equal(limiter.stats().fallbackAdmissions, 3);
    assert.equal(limitsFallbackAdmissions() - before, 3);
    assert.ok(logs.length >= 1 && JSON.stringify(logs[0]).includes('limits_store_fallback'));
    await limiter.settle(r1.ticket, { inputTokens: 5, outputTokens: 5 }); // settles on the fallback store without throwing
  });
});

describe('limits over IPC across worker processes', { timeout: 20_000 }, () => {
  const served = ipcCounterHost(() => kids);
  const ipc = { kind: 'ipc' as const };

  test('60 concurrent admissions from 3 workers against requestsPerMinute=25 admit exactly 25', async () => {
    const startAt = Date.now() + 300;
    const res = await Promise.all(
      kids.map((k) => runJob<{ admitted: number }>(k, { kind: 'burst', store: ipc, tenantId: 'burst', limits: { key: { requestsPerMinute: 25 } }, startAt, n: 20 })),
    );
    assert.equal(res.reduce((s, r) => s + r.admitted, 0), 25);
  });

  test('a token budget shared by 3 workers is never overspent and equals the settled usage', async () => {
    const budget = 4000;
    const startAt = Date.now() + 200;
    const res = await Promise.all(
      kids.map((k, i) =>
        runJob<{ actual: number; admitted: number }>(k, { kind: 'budget', store: ipc, tenantId: 'budget', limits: { tenant: { dailyTokens: budget } }, startAt, n: 3, seed: i + 1 }),
      ),
    );
    const actual = res.reduce((s, r) => s + r.actual, 0);
    assert.ok(actual <= budget, `spent ${actual} > ${budget}`);
    assert.ok(actual > budget - 200);
    const day = new Date().toISOString().slice(0, 10);
    assert.equal(served.store.budgetValue(`{t:budget}:bt:${day}:tenant:budget`, Date.now()), actual);
  });

  test('concurrency limit holds across workers and every slot comes back', async () => {
    const startAt = Date.now() + 200;
    const res = await Promise.all(
      kids.map((k) =>
        runJob<{ intervals: [number, number][]; refused: number }>(k, { kind: 'concurrency', store: ipc, tenantId: 'conc', limits: { key: { concurrency: 3 } }, startAt, n: 20, holdMs: 15 }),
      ),
    );
    const events: [number, number][] = [];
    for (const r of res) for (const [s, e] of r.intervals) events.push([s, 1], [e, -1]);
    events.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    let cur = 0;
    let max = 0;
    for (const [, d] of events) max = Math.max(max, (cur += d));
    assert.ok(max <= 3 && max >= 2, `max in flight ${max}`);
    assert.equal(served.store.slotCount('{t:conc}:conc:key:k1', Date.now()), 0);
  });

  test('a worker whose primary does not answer times out instead of hanging', async () => {
    const silent: IpcPeer = { send: () => true, on: () => undefined, off: () => undefined };
    const s = createIpcCounterStore({ channel: silent, timeoutMs: 50 });
    await assert.rejects(s.admit({ now: Date.now(), rates: [], slots: [], budgets: [] }), /did not answer/);
    await s.close();
  });
});
