/**
 * `serve --workers N` without Redis: counters held by the primary (this test process) and
 * used by 3 forked worker processes over IPC stay exact.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { createIpcCounterStore, createMemoryCounterStore, startCounterHost, type CounterHost, type IpcPeer, type MemoryCounterStore } from '../../src/limits/index.js';
import { forkWorkers, killWorkers, runJob } from './fixtures/workers.js';

describe('limits over IPC across worker processes', () => {
  let kids: ChildProcess[] = [];
  let host: CounterHost;
  let store: MemoryCounterStore;
  const ipc = { kind: 'ipc' as const };

  before(async () => {
    store = createMemoryCounterStore();
    host = startCounterHost(store, { cluster: false });
    kids = await forkWorkers(3);
    for (const k of kids) host.attach(k as unknown as IpcPeer);
  });
  after(async () => {
    killWorkers(kids);
    host.close();
    await store.close();
  });

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
    assert.equal(store.budgetValue(`{t:budget}:bt:${day}:tenant:budget`, Date.now()), actual);
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
    assert.equal(store.slotCount('{t:conc}:conc:key:k1', Date.now()), 0);
  });

  test('a worker whose primary does not answer times out instead of hanging', async () => {
    const silent: IpcPeer = { send: () => true, on: () => undefined, off: () => undefined };
    const s = createIpcCounterStore({ channel: silent, timeoutMs: 50 });
    await assert.rejects(s.admit({ now: Date.now(), rates: [], slots: [], budgets: [] }), /did not answer/);
    await s.close();
  });
});
