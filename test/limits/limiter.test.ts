/**
 * Limiter semantics with an injected clock, run against the memory store and (when
 * reachable) the Redis store: GCRA smoothness, calendar budgets in a time zone,
 * reservations, settlement, release, size limits, leases, headers and errors.
 */
import { redisReachable as redisReachableAt, deleteKeys } from '../helpers/services.js';
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import {
  createLimiter,
  createMemoryCounterStore,
  createRedisCounterStore,
  parseLimitsConfig,
  type AdmitRequest,
  type CounterStore,
  type Limiter,
  type LimitSet,
} from '../../src/limits/index.js';

const URL = process.env.PCL_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const PREFIX = `pcl:test-unit:${process.pid}:${Date.now()}`;

const redisReachable = (): Promise<boolean> => redisReachableAt(URL);
const reachable = await redisReachable();
if (!reachable && process.env.CI === 'true') throw new Error(`Redis at ${URL} is unreachable and CI=true`);
if (!reachable) console.log(`# skipping the Redis run of the limiter suite: Redis at ${URL} unreachable`);

const stores: { name: string; make: () => CounterStore; skip: string | false }[] = [
  { name: 'memory', make: () => createMemoryCounterStore({ sweepMs: 0 }), skip: false },
  { name: 'redis', make: () => createRedisCounterStore(URL, { keyPrefix: PREFIX, commandTimeoutMs: 3000 }), skip: reachable ? false : 'Redis unreachable' },
];

after(async () => {
  if (!reachable) return;
  const admin = new Redis(URL);
  await deleteKeys(admin, `${PREFIX}:*`);
  admin.disconnect();
});

let tenantSeq = 0;

for (const { name, make, skip } of stores) {
  describe(`limiter on ${name}`, { skip }, () => {
    let now = 0;
    const limiters: Limiter[] = [];
    const mk = (cfg: object = {}) => {
      const l = createLimiter({ config: parseLimitsConfig(cfg), store: make(), clock: () => now });
      limiters.push(l);
      return l;
    };
    after(async () => {
      for (const l of limiters) await l.close();
    });
    const req = (key: LimitSet, extra: Partial<AdmitRequest> = {}): AdmitRequest => ({
      tenantId: `t${++tenantSeq}`,
      keyId: 'k1',
      model: 'demo',
      inputTokens: 10,
      requestedOutputTokens: 10,
      messages: 1,
      limits: { key },
      ...extra,
    });

    test('GCRA: no second burst right after a minute boundary', async () => {
      const l = mk();
      const r = req({ requestsPerMinute: 60 });
      now = Date.UTC(2026, 0, 1, 12, 0, 59, 900); // just before a minute boundary
      let ok = 0;
      for (let i = 0; i < 80; i++) if ((await l.admit(r)).ok) ok++;
      assert.equal(ok, 60, 'a full burst is allowed once');
      now = Date.UTC(2026, 0, 1, 12, 1, 0, 100); // 200 ms later, in the next minute
      let after = 0;
      for (let i = 0; i < 80; i++) if ((await l.admit(r)).ok) after++;
      assert.equal(after, 0, 'a fixed window would admit another 60 here');
      // then admissions are spaced evenly: one per second
      let spaced = 0;
      for (let s = 1; s <= 30; s++) {
        now = Date.UTC(2026, 0, 1, 12, 1, 0, 100) + s * 1000;
        if ((await l.admit(r)).ok) spaced++;
        if ((await l.admit(r)).ok) spaced++;
      }
      assert.ok(spaced >= 29 && spaced <= 31, `spaced ${spaced}`);
    });

    test('429 carries Retry-After and x-ratelimit headers; admitted responses carry headers', async () => {
      const l = mk();
      const r = req({ requestsPerMinute: 2, tokensPerMinute: 1000 });
      now = 1_700_000_000_000;
      const a = await l.admit(r);
      assert.ok(a.ok);
      assert.equal(a.headers['x-ratelimit-limit-requests'], '2');
      assert.equal(a.headers['x-ratelimit-remaining-requests'], '1');
      assert.equal(a.headers['x-ratelimit-reset-requests'], '30s');
      assert.equal(a.headers['x-ratelimit-limit-tokens'], '1000');
      assert.equal(a.headers['x-ratelimit-remaining-tokens'], '980');
      assert.equal(a.headers['x-ratelimit-reset-tokens'], '1.2s'); // 20 tokens at 1000/min
      assert.ok((await l.admit(r)).ok);
      const c = await l.admit(r);
      assert.ok(!c.ok);
      assert.equal(c.error.status, 429);
      assert.equal(c.error.code, 'PCL_RATE_LIMITED');
      assert.equal(c.error.headers['Retry-After'], '30');
      assert.equal(c.error.headers['x-ratelimit-remaining-requests'], '0');
      assert.equal(c.error.headers['x-ratelimit-reset-requests'], '1m0s');
      now += 30_000;
      assert.ok((await l.admit(r)).ok, 'admitted again after Retry-After');
    });

    test('daily budget rolls over at local midnight in a non-UTC zone, not at UTC midnight', async () => {
      const l = mk({ timeZone: 'America/New_York' });
      const r = req({ dailyTokens: 100 }); // each request reserves 20
      now = Date.UTC(2026, 10, 27, 23, 30); // 18:30 in New York
      for (let i = 0; i < 5; i++) assert.ok((await l.admit(r)).ok);
      const refused = await l.admit(r);
      assert.ok(!refused.ok);
      assert.equal(refused.error.code, 'PCL_QUOTA_EXCEEDED');
      assert.equal(refused.error.publicCode, 'insufficient_quota');
      assert.equal(refused.error.status, 429);
      assert.equal(refused.error.message, 'The daily token budget of this key is exhausted.');
      assert.equal(refused.error.headers['Retry-After'], String(5.5 * 3600)); // until 05:00 UTC
      now = Date.UTC(2026, 10, 28, 0, 30); // UTC midnight passed, still the 27th in New York
      assert.ok(!(await l.admit(r)).ok);
      now = Date.UTC(2026, 10, 28, 4, 59, 59); // 23:59:59 local
      assert.ok(!(await l.admit(r)).ok);
      now = Date.UTC(2026, 10, 28, 5, 0, 1); // 00:00:01 local on the 28th
      assert.ok((await l.admit(r)).ok);
    });

    test('monthly money budget rolls over at the local month boundary', async () => {
      const l = mk({ timeZone: 'Asia/Tokyo', pricing: { 'priced-*': { inputPerMTok: 1000, outputPerMTok: 1000 } } });
      // 20 tokens × $1000/MTok = $0.02 per request; $0.05/month → 2 requests
      const r = req({ monthlyCostUsd: 0.05 }, { model: 'priced-x' });
      now = Date.UTC(2026, 10, 30, 14, 0); // Nov 30 23:00 JST
      assert.ok((await l.admit(r)).ok);
      assert.ok((await l.admit(r)).ok);
      const refused = await l.admit(r);
      assert.ok(!refused.ok);
      assert.match(refused.error.message, /monthly spending budget of this key/);
      now = Date.UTC(2026, 10, 30, 15, 0, 1); // Dec 1 00:00:01 JST
      assert.ok((await l.admit(r)).ok);
    });

    test('release gives back tokens/min and budget reservations and the slot', async () => {
      const l = mk();
      const r = req({ tokensPerMinute: 1000, dailyTokens: 1000, concurrency: 1 }, { inputTokens: 400, requestedOutputTokens: 400 });
      now = 1_800_000_000_000;
      const a = await l.admit(r);
      assert.ok(a.ok);
      const b = await l.admit(r);
      assert.ok(!b.ok, 'slot and tokens are held');
      await l.release(a.ticket);
      await l.release(a.ticket); // idempotent: must not refund twice
      const c = await l.admit(r);
      assert.ok(c.ok, 'everything came back');
      const d = await l.admit({ ...r, inputTokens: 100, requestedOutputTokens: 100 });
      assert.ok(!d.ok && d.error.code === 'PCL_RATE_LIMITED');
    });

    test('settlement replaces the reservation by actual usage, lower or higher', async () => {
      const l = mk();
      const r = req({ dailyTokens: 1000 }, { inputTokens: 100, requestedOutputTokens: 400 }); // reserves 500
      now = 1_800_000_000_000;
      const a = await l.admit(r);
      assert.ok(a.ok);
      assert.equal(a.ticket.reservedTokens, 500);
      const { costUsd } = await l.settle(a.ticket, { inputTokens: 100, outputTokens: 50 }); // 150 used
      assert.equal(costUsd, (100 * 1 + 50 * 2) / 1e6);
      const b = await l.admit(r); // 150 + 500 = 650 ≤ 1000
      assert.ok(b.ok);
      await l.settle(b.ticket, { inputTokens: 100, outputTokens: 700 }); // more than reserved: 150 + 800 = 950
      const c = await l.admit({ ...r, inputTokens: 40, requestedOutputTokens: 10 }); // 950 + 50 = 1000 fits exactly
      assert.ok(c.ok);
      await l.settle(c.ticket, { inputTokens: 40, outputTokens: 10 });
      const d = await l.admit({ ...r, inputTokens: 1, requestedOutputTokens: 0 });
      assert.ok(!d.ok && /daily token budget of this key is exhausted/.test(d.error.message));
    });

    test('a refused admission changes nothing (all-or-nothing across scopes)', async () => {
      const l = mk();
      const tenantId = `t${++tenantSeq}`;
      now = 1_800_000_000_000;
      const ok = await l.admit({ tenantId, keyId: 'a', model: 'demo', inputTokens: 10, requestedOutputTokens: 10, messages: 1, limits: { key: { requestsPerMinute: 5 }, tenant: { dailyTokens: 30 } } });
      assert.ok(ok.ok);
      for (let i = 0; i < 3; i++) {
        const no = await l.admit({ tenantId, keyId: 'a', model: 'demo', inputTokens: 10, requestedOutputTokens: 10, messages: 1, limits: { key: { requestsPerMinute: 5 }, tenant: { dailyTokens: 30 } } });
        assert.ok(!no.ok && no.error.code === 'PCL_QUOTA_EXCEEDED');
      }
      // the refused requests did not consume the key's request rate
      await l.release(ok.ticket);
      let admitted = 0;
      for (let i = 0; i < 6; i++) {
        const a = await l.admit({ tenantId, keyId: 'a', model: 'demo', inputTokens: 0, requestedOutputTokens: 0, messages: 1, limits: { key: { requestsPerMinute: 5 }, tenant: { dailyTokens: 30 } } });
        if (a.ok) admitted++;
      }
      assert.equal(admitted, 4, '5/min minus the one admitted earlier');
    });

    test('tenant limits are shared by its keys; user limits by the user', async () => {
      const l = mk();
      const tenantId = `t${++tenantSeq}`;
      now = 1_800_000_000_000;
      const base = { tenantId, model: 'demo', inputTokens: 1, requestedOutputTokens: 1, messages: 1 };
      const limits = { tenant: { requestsPerMinute: 3 }, user: { requestsPerMinute: 1 } };
      assert.ok((await l.admit({ ...base, keyId: 'a', userId: 'u1', limits })).ok);
      const u1again = await l.admit({ ...base, keyId: 'b', userId: 'u1', limits });
      assert.ok(!u1again.ok && /this user/.test(u1again.error.message));
      assert.ok((await l.admit({ ...base, keyId: 'b', userId: 'u2', limits })).ok);
      assert.ok((await l.admit({ ...base, keyId: 'c', userId: 'u3', limits })).ok);
      const t = await l.admit({ ...base, keyId: 'd', userId: 'u4', limits });
      assert.ok(!t.ok && /this tenant/.test(t.error.message));
    });

    test('a concurrency lease of a crashed instance expires after the lease TTL', async () => {
      // The holder is a second limiter on the same counters (memory: the same store object;
      // Redis: another connection, same prefix) that "crashes": closed without settling, so
      // it stops renewing its lease.
      const shared = make();
      const holder = createLimiter({ config: parseLimitsConfig({ concurrencyLeaseMs: 10_000 }), store: name === 'memory' ? shared : make(), clock: () => now });
      const l = createLimiter({ config: parseLimitsConfig({ concurrencyLeaseMs: 10_000 }), store: shared, clock: () => now });
      limiters.push(l);
      const r = req({ concurrency: 1 });
      now = 1_800_000_000_000;
      assert.ok((await holder.admit(r)).ok);
      await holder.close(); // never settled
      const busy = await l.admit(r);
      assert.ok(!busy.ok && /concurrent/.test(busy.error.message));
      assert.equal(busy.error.headers['Retry-After'], '1');
      now += 10_001;
      assert.ok((await l.admit(r)).ok);
    });

    test('size limits: input tokens and messages → 413, output cap → 400; default cap lowered by policy', async () => {
      const l = mk();
      now = 1_800_000_000_000;
      const big = await l.admit(req({ maxInputTokens: 100 }, { inputTokens: 101 }));
      assert.ok(!big.ok && big.error.status === 413 && big.error.code === 'PCL_INVALID_REQUEST');
      const many = await l.admit(req({ maxMessages: 2 }, { messages: 3 }));
      assert.ok(!many.ok && many.error.status === 413 && many.error.param === 'messages');
      const out = await l.admit(req({ maxOutputTokens: 256 }, { requestedOutputTokens: 1000 }));
      assert.ok(!out.ok && out.error.status === 400 && out.error.param === 'max_tokens');
      const dflt = await l.admit(req({ maxOutputTokens: 256 }, { requestedOutputTokens: undefined }));
      assert.ok(dflt.ok);
      assert.equal(dflt.ticket.maxOutputTokens, 256);
      assert.equal(dflt.ticket.reservedTokens, 10 + 256);
      const free = await l.admit(req({}, { requestedOutputTokens: undefined }));
      assert.ok(free.ok && free.ticket.maxOutputTokens === 4096);
    });

    test('a request larger than tokens/min can never fit and says so without a retry hint', async () => {
      const l = mk();
      now = 1_800_000_000_000;
      const a = await l.admit(req({ tokensPerMinute: 100 }, { inputTokens: 90, requestedOutputTokens: 20 }));
      assert.ok(!a.ok && a.error.status === 429 && a.error.headers['x-should-retry'] === 'false');
      assert.match(a.error.message, /more than the tokens-per-minute limit/);
    });
  });
}
