/**
 * Concurrency leases with real time, on the memory store and on real Redis: a request in
 * flight longer than `concurrencyLeaseMs` keeps its slot (its lease is renewed), a dropped
 * lease is never brought back by a renewal, a crashed holder (a killed process: no more
 * renewals) frees its slot once the lease runs out, and a stream through the gateway that
 * outlives the lease still counts against the concurrency limit.
 */
import { deleteKeys, redisSkipReason } from '../helpers/services.js';
import assert from 'node:assert/strict';
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { after, describe, test } from 'node:test';
import type { ServerResponse } from 'node:http';
import { Redis } from 'ioredis';
import { request } from 'undici';
import {
  createLimiter,
  createMemoryCounterStore,
  createRedisCounterStore,
  parseLimitsConfig,
  startCounterHost,
  type AdmitRequest,
  type CounterStore,
  type IpcPeer,
  type Limiter,
} from '../../src/limits/index.js';
import { startGateway } from '../helpers/gateway.js';
import { defaultChat, startMockUpstream, type Recorded } from '../helpers/mock-upstream.js';

const REDIS_URL = process.env.PCL_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const PREFIX = `pcl:test-lease:${process.pid}:${Date.now()}`;
const LEASE_MS = 1000;
const HOLDER = fileURLToPath(new URL('./fixtures/lease-holder.ts', import.meta.url));

const redisSkip = await redisSkipReason(REDIS_URL, 'Redis lease tests');
const reachable = redisSkip === false;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
let tenantSeq = 0;
const reqFor = (tenantId: string): AdmitRequest => ({ tenantId, keyId: 'k1', model: 'demo', inputTokens: 1, messages: 1, limits: { key: { concurrency: 1 } } });

const kids: ChildProcess[] = [];
const closers: Array<() => Promise<void> | void> = [];
after(async () => {
  for (const k of kids) if (k.exitCode === null && k.signalCode === null) k.kill('SIGKILL');
  for (const c of closers.reverse()) await c();
  if (reachable) {
    const admin = new Redis(REDIS_URL);
    await deleteKeys(admin, `${PREFIX}:*`);
    admin.disconnect();
  }
});

/** Forks a lease holder; resolves once it holds (or failed to take) the slot. */
function forkHolder(job: object, attach?: (k: ChildProcess) => void): Promise<{ kid: ChildProcess; admitted: boolean }> {
  const kid = fork(HOLDER, [JSON.stringify(job)], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  kids.push(kid);
  attach?.(kid);
  return new Promise((resolve, reject) => {
    kid.once('exit', (code) => reject(new Error(`lease holder exited early (${code})`)));
    kid.on('message', (m: unknown) => {
      const r = m as { admitted?: boolean };
      if (typeof r?.admitted === 'boolean') resolve({ kid, admitted: r.admitted });
    });
  });
}

/** Kills `kid` (no settlement, no more renewals) and measures how long until `limiter` gets the slot. */
async function crashAndWaitForSlot(kid: ChildProcess, limiter: Limiter, tenantId: string): Promise<{ refusedRightAfter: boolean; freedAfterMs: number }> {
  kid.removeAllListeners('exit');
  const exited = new Promise((r) => kid.once('exit', r));
  kid.kill('SIGKILL');
  await exited;
  const t0 = Date.now();
  const first = await limiter.admit(reqFor(tenantId));
  if (first.ok) return { refusedRightAfter: false, freedAfterMs: 0 };
  while (Date.now() - t0 < 10_000) {
    await sleep(50);
    const a = await limiter.admit(reqFor(tenantId));
    if (a.ok) {
      await limiter.release(a.ticket);
      return { refusedRightAfter: true, freedAfterMs: Date.now() - t0 };
    }
  }
  return { refusedRightAfter: true, freedAfterMs: Infinity };
}

const stores: { name: string; make: () => CounterStore; skip: string | false }[] = [
  { name: 'memory', make: () => createMemoryCounterStore({ sweepMs: 0 }), skip: false },
  { name: 'redis', make: () => createRedisCounterStore(REDIS_URL, { keyPrefix: PREFIX, commandTimeoutMs: 3000 }), skip: redisSkip },
];

for (const { name, make, skip } of stores) {
  describe(`concurrency leases on ${name}`, { skip, timeout: 30_000 }, () => {
    test('a request in flight for 3 leases keeps its slot; settling frees it', async () => {
      const limiter = createLimiter({ config: parseLimitsConfig({ concurrencyLeaseMs: LEASE_MS }), store: make() });
      closers.push(() => limiter.close());
      const tenant = `lease-${name}-${++tenantSeq}`;
      const a = await limiter.admit(reqFor(tenant));
      assert.ok(a.ok);
      await sleep(3 * LEASE_MS);
      const b = await limiter.admit(reqFor(tenant));
      assert.ok(!b.ok && /concurrent/.test(b.error.message), 'the slot must still be held after three lease periods');
      await limiter.settle(a.ticket, { inputTokens: 1, outputTokens: 1 });
      const c = await limiter.admit(reqFor(tenant));
      assert.ok(c.ok, 'settling frees the slot');
      await limiter.release(c.ticket);
    });

    test('renewal never brings back a dropped lease, nor lowers an expiry', async () => {
      const store = make();
      closers.push(() => store.close());
      const key = `{t:renew-${name}-${++tenantSeq}}:conc:key:k1`;
      const now = Date.now();
      const admit = (leaseId: string) => store.admit({ now, rates: [], budgets: [], slots: [{ key, limit: 2, leaseId, ttlMs: 60_000 }] });
      assert.ok((await admit('a')).ok);
      assert.ok((await admit('b')).ok);
      await store.settle({ now, rates: [], budgets: [], slots: [{ key, leaseId: 'a' }] });
      assert.equal(await store.renew({ now, ttlMs: 60_000, slots: [{ key, leaseId: 'a' }, { key, leaseId: 'b' }] }), 1, 'only the held lease is renewed');
      assert.ok((await admit('c')).ok, 'the dropped lease did not come back');
      assert.ok(!(await admit('d')).ok, 'b and c hold both slots');
      // a renewal with a shorter horizon does not shorten a lease
      assert.equal(await store.renew({ now, ttlMs: 10, slots: [{ key, leaseId: 'b' }] }), 1);
      assert.ok(!(await store.admit({ now: now + 1000, rates: [], budgets: [], slots: [{ key, limit: 2, leaseId: 'e', ttlMs: 60_000 }] })).ok);
    });
  });
}

/** A live holder keeps its slot past 2.5 leases; killed, its slot is free within one lease (+1.5 s). */
async function renewsThenFreesAfterCrash(kid: ChildProcess, limiter: Limiter, tenant: string): Promise<void> {
  await sleep(2.5 * LEASE_MS);
  assert.ok(!(await limiter.admit(reqFor(tenant))).ok, 'the live holder keeps renewing its lease');
  const r = await crashAndWaitForSlot(kid, limiter, tenant);
  assert.ok(r.refusedRightAfter, 'the lease outlives the process by up to one lease period');
  assert.ok(r.freedAfterMs <= LEASE_MS + 1500, `slot freed ${r.freedAfterMs} ms after the crash`);
}

describe('a crashed holder frees its slot after the lease', { timeout: 30_000 }, () => {
  test('over IPC (memory store in this process, the holder a killed worker)', async () => {
    const store = createMemoryCounterStore({ sweepMs: 0 });
    const host = startCounterHost(store, { cluster: false });
    const limiter = createLimiter({ config: parseLimitsConfig({ concurrencyLeaseMs: LEASE_MS }), store });
    closers.push(() => limiter.close(), () => host.close());
    const tenant = `crash-ipc-${++tenantSeq}`;
    const { kid, admitted } = await forkHolder({ store: { kind: 'ipc' }, tenantId: tenant, leaseMs: LEASE_MS }, (k) => host.attach(k as unknown as IpcPeer));
    assert.ok(admitted);
    await renewsThenFreesAfterCrash(kid, limiter, tenant);
  });

  test('on Redis (the holder a killed process)', { skip: redisSkip }, async () => {
    const limiter = createLimiter({ config: parseLimitsConfig({ concurrencyLeaseMs: LEASE_MS }), store: createRedisCounterStore(REDIS_URL, { keyPrefix: PREFIX, commandTimeoutMs: 3000 }) });
    closers.push(() => limiter.close());
    const tenant = `crash-redis-${++tenantSeq}`;
    const { kid, admitted } = await forkHolder({ store: { kind: 'redis', url: REDIS_URL, prefix: PREFIX }, tenantId: tenant, leaseMs: LEASE_MS });
    assert.ok(admitted);
    await renewsThenFreesAfterCrash(kid, limiter, tenant);
  });
});

/** An upstream stream of 12 chunks spaced 250 ms apart (3 s), then usage and [DONE]. */
async function slowStream(req: Recorded, res: ServerResponse): Promise<void> {
  res.writeHead(200, { 'content-type': 'text/event-stream' });
  const chunk = (delta: object, finish: string | null) => `data: ${JSON.stringify({ id: 'c1', object: 'chat.completion.chunk', created: 1, model: req.body.model, choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`;
  for (let i = 0; i < 12; i++) {
    res.write(chunk({ content: `part ${i} ` }, null));
    await sleep(250);
  }
  res.write(chunk({}, 'stop'));
  res.write(`data: ${JSON.stringify({ id: 'c1', object: 'chat.completion.chunk', created: 1, model: req.body.model, choices: [], usage: { prompt_tokens: 5, completion_tokens: 12, total_tokens: 17 } })}\n\n`);
  res.end('data: [DONE]\n\n');
}

for (const { name, skip } of stores) {
  test(`gateway (${name} store): a 3 s stream with a 1 s lease keeps its concurrency slot`, { skip, timeout: 60_000 }, async () => {
    const mock = await startMockUpstream((req, res) => (req.body?.stream ? slowStream(req, res) : defaultChat(req, res)));
    const storeCfg = name === 'redis' ? { store: 'redis', redisUrl: REDIS_URL, keyPrefix: `${PREFIX}:gw` } : {};
    const g = await startGateway({ providers: { mock: { type: 'openai', baseUrl: `${mock.url}/v1` } }, routes: [{ model: 'mock-*', provider: 'mock' }], limits: { ...storeCfg, concurrencyLeaseMs: LEASE_MS, defaults: { key: { concurrency: 1 } } } });
    closers.push(() => mock.close(), () => g.close());
    const call = async (stream: boolean) => {
      const res = await request(`${g.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${g.key}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'mock-1', stream, max_tokens: 50, messages: [{ role: 'user', content: 'hello' }] }),
      });
      return { status: res.statusCode, text: await res.body.text() };
    };
    const t0 = Date.now();
    let streamEnded = Infinity;
    const streaming = call(true).then((r) => ((streamEnded = Date.now()), r));
    await sleep(2.5 * LEASE_MS);
    const during = await call(false);
    const answered = Date.now();
    const s = await streaming;
    assert.equal(s.status, 200);
    assert.match(s.text, /\[DONE\]/);
    assert.ok(streamEnded - t0 >= 3 * LEASE_MS - 100, 'the stream lasted three lease periods');
    assert.ok(answered < streamEnded, 'the second request was answered while the stream ran');
    assert.equal(during.status, 429, `a second request over the concurrency limit must be refused while the stream runs: ${during.text}`);
    assert.match(JSON.parse(during.text).error.message, /concurrent/);
    assert.equal(mock.maxInFlight, 1);
    await sleep(100); // settlement runs after the response
    assert.equal((await call(false)).status, 200, 'the slot is free once the stream has ended');
  });
}
