/**
 * Failed-authentication buckets shared across instances: through the limits' counter store
 * (one memory store standing for the primary of `serve --workers`, and real Redis for cluster
 * mode), N instances allow the burst about once, not N times.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { FailureBuckets, SharedFailureBuckets, type FailureLimiter } from '../../src/identity/auth-limiter.js';
import { createMemoryCounterStore, createRedisCounterStore } from '../../src/limits/index.js';
import { deleteKeys, redisSkipReason } from '../helpers/services.js';
import { serveWorkers } from '../helpers/serve.js';
import { adminApi, adminKey, chat, dropStore, newStore, startInstance, type Instance, type StoreSpec } from './util.js';

const REDIS_URL = process.env.PORTCULLIS_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const skipRedis = await redisSkipReason(REDIS_URL, 'shared failed-auth tests');

const tick = () => new Promise((r) => setImmediate(r));

/** `n` failed attempts alternating over the instances; returns how many were not refused up front (each waits for the store's answer). */
async function alternate(instances: readonly FailureLimiter[], k: string, n: number): Promise<number> {
  let verified = 0;
  for (let i = 0; i < n; i++) {
    const inst = instances[i % instances.length]!;
    if (inst.blockedFor(k) > 0) continue;
    verified++;
    inst.fail(k);
    await tick();
  }
  return verified;
}

test('two instances sharing one counter store block after the burst plus one attempt, not twice the burst', async () => {
  let t = 1_000_000;
  const now = () => t;
  const spec = { burst: 3, perMinute: 1 };
  const store = createMemoryCounterStore();
  const a = new SharedFailureBuckets(spec, store, 'f:', { now });
  const b = new SharedFailureBuckets(spec, store, 'f:', { now });
  const verified = await alternate([a, b], '1.2.3.4', 12);
  assert.equal(verified, spec.burst + 1, 'burst, then one more on the instance that had not yet seen the empty bucket');
  assert.ok(a.blockedFor('1.2.3.4') >= 1 && b.blockedFor('1.2.3.4') >= 1);
  // Local buckets alone (the old behaviour) let each instance take the whole burst.
  const local = await alternate([new FailureBuckets(spec, 100, now), new FailureBuckets(spec, 100, now)], '1.2.3.4', 12);
  assert.equal(local, 2 * spec.burst);
  // Refill: one attempt per minute (1/min), on either instance.
  t += 61_000;
  assert.equal(a.blockedFor('1.2.3.4'), 0);
  a.fail('1.2.3.4');
  await tick();
  b.fail('1.2.3.4'); // b's own answer: refused
  await tick();
  assert.ok(a.blockedFor('1.2.3.4') >= 1 && b.blockedFor('1.2.3.4') >= 1);
  // Other keys are untouched.
  assert.equal(a.blockedFor('5.6.7.8'), 0);
});

test('a failing store leaves each instance limiting on its own and reports the error', async () => {
  const errors: unknown[] = [];
  const broken = { admit: () => Promise.reject(new Error('store down')) };
  const a = new SharedFailureBuckets({ burst: 2, perMinute: 1 }, broken, 'f:', { onError: (e) => errors.push(e) });
  assert.equal(await alternate([a], 'k', 5), 2, 'the local bucket still holds');
  assert.equal(errors.length, 2);
});

let store: StoreSpec;
let gws: Instance[] = [];
let owner: string;
const prefix = `pcl:test-authfail:${process.pid}:${Date.now()}`;
before(async () => {
  if (skipRedis) return;
  store = newStore('sqlite');
  const raw = (p: string) => ({
    limits: { store: 'redis', redisUrl: REDIS_URL, keyPrefix: p },
    identity: { failedAuth: { perAddress: { burst: 1000, perMinute: 1000 }, perKey: { burst: 4, perMinute: 0.5 } } },
  });
  gws = [await startInstance(store, raw(prefix)), await startInstance(store, raw(prefix))];
  owner = await adminKey(gws[0]!.gw, 'owner');
});
after(async () => {
  for (const g of gws) await g.close();
  if (store) await dropStore(store);
  if (!skipRedis) {
    const r = new Redis(REDIS_URL);
    await deleteKeys(r, `${prefix}*`);
    r.disconnect();
  }
});

test('cluster mode (real Redis): wrong secrets for one key spread over two gateways get 401 for the burst plus one, then 429 on both', { skip: skipRedis }, async () => {
  const k = (await adminApi(gws[0]!.url, owner, 'POST', '/admin/v1/keys', { tenant: 'acme', name: 'target' })).body as { key: string };
  const wrong = k.key.slice(0, -4) + (k.key.endsWith('AAAA') ? 'BBBB' : 'AAAA');
  const statuses: number[] = [];
  for (let i = 0; i < 10; i++) {
    statuses.push((await chat(gws[i % 2]!.url, wrong)).status);
    await new Promise((r) => setTimeout(r, 100)); // let the store's answer land, as between real attempts
  }
  assert.deepEqual(statuses.slice(0, 5), [401, 401, 401, 401, 401], statuses.join(','));
  assert.ok(statuses.slice(5).every((s) => s === 429), statuses.join(','));
  for (const g of gws) assert.equal((await chat(g.url, k.key)).status, 200, 'the real key still works on every instance');
  // The shared bucket lives in Redis under the limits' key prefix.
  const r = new Redis(REDIS_URL);
  const keys = await r.keys(`${prefix}*authfail*`);
  r.disconnect();
  assert.ok(keys.length >= 1, 'bucket keys in Redis');
});

test('createRedisCounterStore as a failure store: real round trip, same arithmetic as memory', { skip: skipRedis }, async () => {
  const redis = createRedisCounterStore(REDIS_URL, { keyPrefix: `${prefix}:unit` });
  try {
    const a = new SharedFailureBuckets({ burst: 2, perMinute: 1 }, redis, 'x:');
    const b = new SharedFailureBuckets({ burst: 2, perMinute: 1 }, redis, 'x:');
    const until = async (cond: () => boolean, what: string) => {
      for (const t0 = Date.now(); !cond(); await new Promise((r) => setTimeout(r, 10))) if (Date.now() - t0 > 5000) assert.fail(what);
    };
    // One connection answers in order: once b's answer is in, a's (sent first) is in too.
    a.fail('ip');
    b.fail('ip');
    await until(() => b.blockedFor('ip') >= 1, 'b took the last token and knows the bucket is empty');
    assert.equal(a.blockedFor('ip'), 0, 'a has not been told yet');
    a.fail('ip');
    await until(() => a.blockedFor('ip') >= 1, 'a learns it from its own (refused) take');
  } finally {
    await redis.close();
  }
});

test('two IPC counter stores on one channel (limits and failed-auth in one worker) each get their own answers', async () => {
  const { EventEmitter } = await import('node:events');
  const { createIpcCounterStore, startCounterHost } = await import('../../src/limits/index.js');
  // An in-process channel pair standing for a worker's `process` and the primary's Worker handle.
  const workerSide = new EventEmitter();
  const primarySide = new EventEmitter();
  const peer = (from: InstanceType<typeof EventEmitter>, to: InstanceType<typeof EventEmitter>) =>
    Object.assign(from, {
      send(m: unknown, cb?: (e: Error | null) => void) {
        setImmediate(() => {
          to.emit('message', structuredClone(m));
          cb?.(null);
        });
        return true;
      },
    });
  const host = startCounterHost(createMemoryCounterStore(), { cluster: false });
  host.attach(peer(primarySide, workerSide) as never);
  const limits = createIpcCounterStore({ channel: peer(workerSide, primarySide) as never });
  const failures = createIpcCounterStore({ channel: workerSide as never });
  try {
    const plan = (key: string, limit: number) => ({ now: Date.now(), rates: [{ key, limit, periodMs: 60_000, cost: 1 }], slots: [] as never[], budgets: [] as never[] });
    // Interleaved calls: a reply delivered to the wrong store would resolve it with the other key's state.
    const [l1, f1, l2, f2] = await Promise.all([limits.admit(plan('limits', 2)), failures.admit(plan('fail', 1)), limits.admit(plan('limits', 2)), failures.admit(plan('fail', 1))]);
    assert.deepEqual([l1.ok, l2.ok], [true, true]);
    assert.deepEqual([f1.ok, f2.ok], [true, false], 'the failure bucket (limit 1) refuses its second take');
  } finally {
    await limits.close();
    await failures.close();
    host.close();
  }
});

test('serve --workers 2: wrong secrets spread over both workers share one bucket through the primary', async () => {
  const served = await serveWorkers('log: { level: warn }\nidentity:\n  failedAuth:\n    perKey: { burst: 3, perMinute: 0.5 }\n', 2);
  try {
    const k = served.key;
    const wrong = k.slice(0, -4) + (k.endsWith('AAAA') ? 'BBBB' : 'AAAA');
    const post = (key: string) =>
      // A new connection each time: the cluster spreads connections over the workers.
      fetch(`${served.url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', connection: 'close' }, body: JSON.stringify({ model: 'demo', messages: [{ role: 'user', content: 'hi' }] }) });
    const statuses: number[] = [];
    for (let i = 0; i < 10; i++) {
      const res = await post(wrong);
      statuses.push(res.status);
      await res.text();
      await new Promise((r) => setTimeout(r, 100));
    }
    const unauthorized = statuses.filter((s) => s === 401).length;
    // Burst 3 once, plus at most one attempt on the worker that had not yet seen the empty bucket (local buckets: up to 6).
    assert.ok(unauthorized >= 3 && unauthorized <= 4, `statuses ${statuses}`);
    assert.ok(statuses.slice(unauthorized).every((s) => s === 429), `statuses ${statuses}`);
    const ok = await post(k);
    assert.equal(ok.status, 200, 'the real key still works');
    await ok.text();
  } finally {
    await served.stop();
  }
});
