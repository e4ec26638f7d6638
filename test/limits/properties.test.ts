/**
 * Property tests (fast-check): the GCRA bound holds for any arrival pattern, budgets are never
 * overspent under any admit/settle/release interleaving, and the Redis Lua scripts decide
 * exactly like the memory store on the same random sequences.
 */
import { redisReachable as redisReachableAt, deleteKeys } from '../helpers/services.js';
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import fc from 'fast-check';
import { Redis } from 'ioredis';
import { createLimiter, createMemoryCounterStore, createRedisCounterStore, parseLimitsConfig, type Limiter, type Ticket } from '../../src/limits/index.js';

const URL = process.env.PCL_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const PREFIX = `pcl:test-prop:${process.pid}:${Date.now()}`;
const config = parseLimitsConfig({});

const redisReachable = (): Promise<boolean> => redisReachableAt(URL);
const reachable = await redisReachable();
if (!reachable && process.env.CI === 'true') throw new Error(`Redis at ${URL} is unreachable and CI=true`);

let seq = 0;
const T0 = Date.UTC(2026, 5, 15, 12);

describe('limits properties', () => {
  test('GCRA: admitted cost in any interval of length d is at most limit + d/T × limit', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 50 }),
        fc.array(fc.record({ gapMs: fc.integer({ min: 0, max: 5000 }), cost: fc.integer({ min: 0, max: 20 }) }), { minLength: 1, maxLength: 80 }),
        async (limit, arrivals) => {
          let now = T0;
          const l = createLimiter({ config, store: createMemoryCounterStore({ sweepMs: 0 }), clock: () => now });
          const admitted: { t: number; cost: number }[] = [];
          for (const a of arrivals) {
            now += a.gapMs;
            // cost = input tokens with zero output cap, against tokensPerMinute = limit
            const r = await l.admit({ tenantId: 't', keyId: 'k', model: 'demo', inputTokens: a.cost, requestedOutputTokens: 0, messages: 1, limits: { key: { tokensPerMinute: limit } } });
            if (r.ok) admitted.push({ t: now, cost: a.cost });
          }
          for (let i = 0; i < admitted.length; i++) {
            let sum = 0;
            for (let j = i; j < admitted.length; j++) {
              sum += admitted[j].cost;
              const d = admitted[j].t - admitted[i].t;
              assert.ok(sum <= limit + (d / 60_000) * limit + 1e-9, `sum ${sum} over ${d} ms with limit ${limit}`);
            }
          }
          await l.close();
        },
      ),
      { numRuns: 150 },
    );
  });

  test('budgets are never overspent under any admit/settle/release interleaving', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: 3000 }),
        fc.array(
          fc.oneof(
            fc.record({ op: fc.constant('admit' as const), input: fc.integer({ min: 0, max: 400 }), cap: fc.integer({ min: 0, max: 400 }) }),
            fc.record({ op: fc.constant('settle' as const), pick: fc.nat(), frac: fc.double({ min: 0, max: 1, noNaN: true }) }),
            fc.record({ op: fc.constant('release' as const), pick: fc.nat() }),
          ),
          { maxLength: 60 },
        ),
        async (budget, ops) => {
          const l = createLimiter({ config, store: createMemoryCounterStore({ sweepMs: 0 }), clock: () => T0 });
          const open: { ticket: Ticket; input: number; cap: number }[] = [];
          let settled = 0;
          let reserved = 0;
          for (const o of ops) {
            if (o.op === 'admit') {
              const r = await l.admit({ tenantId: 't', keyId: 'k', model: 'demo', inputTokens: o.input, requestedOutputTokens: o.cap, messages: 1, limits: { key: { dailyTokens: budget } } });
              if (r.ok) {
                open.push({ ticket: r.ticket, input: o.input, cap: o.cap });
                reserved += o.input + o.cap;
              }
            } else if (open.length) {
              const [t] = open.splice(o.pick % open.length, 1);
              reserved -= t.input + t.cap;
              if (o.op === 'settle') {
                const out = Math.floor(o.frac * t.cap);
                await l.settle(t.ticket, { inputTokens: t.input, outputTokens: out });
                settled += t.input + out;
              } else await l.release(t.ticket);
            }
            assert.ok(settled + reserved <= budget, `committed ${settled + reserved} > ${budget}`);
          }
          await l.close();
        },
      ),
      { numRuns: 200 },
    );
  });

  describe('Redis scripts decide like the memory store', { skip: reachable ? false : `Redis at ${URL} unreachable` }, () => {
    const limiters: Limiter[] = [];
    after(async () => {
      for (const l of limiters) await l.close();
      const admin = new Redis(URL);
      await deleteKeys(admin, `${PREFIX}:*`);
      admin.disconnect();
    });

    test('same random sequence → same decisions, headers and costs', async () => {
      let now = T0;
      const mem = createLimiter({ config, store: createMemoryCounterStore({ sweepMs: 0 }), clock: () => now });
      const red = createLimiter({ config, store: createRedisCounterStore(URL, { keyPrefix: PREFIX, commandTimeoutMs: 3000 }), clock: () => now });
      limiters.push(mem, red);
      await fc.assert(
        fc.asyncProperty(
          fc.record({ rpm: fc.integer({ min: 1, max: 10 }), tpm: fc.integer({ min: 50, max: 2000 }), conc: fc.integer({ min: 1, max: 4 }), daily: fc.integer({ min: 0, max: 3000 }), usd: fc.double({ min: 0, max: 0.01, noNaN: true }) }),
          fc.array(
            fc.record({ gapMs: fc.integer({ min: 0, max: 20_000 }), input: fc.integer({ min: 0, max: 300 }), cap: fc.integer({ min: 0, max: 300 }), end: fc.constantFrom('settle', 'release', 'keep'), out: fc.double({ min: 0, max: 1.5, noNaN: true }) }),
            { minLength: 1, maxLength: 25 },
          ),
          async (lim, steps) => {
            const tenantId = `p${++seq}`;
            const limits = { key: { requestsPerMinute: lim.rpm, tokensPerMinute: lim.tpm, concurrency: lim.conc }, tenant: { dailyTokens: lim.daily, dailyCostUsd: lim.usd } };
            for (const s of steps) {
              now += s.gapMs;
              const req = { tenantId, keyId: 'k', model: 'demo', inputTokens: s.input, requestedOutputTokens: s.cap, messages: 1, limits };
              const a = await mem.admit(req);
              const b = await red.admit(req);
              assert.equal(a.ok, b.ok);
              if (!a.ok || !b.ok) {
                assert.equal(!a.ok && a.error.message, !b.ok && b.error.message);
                assert.deepEqual(!a.ok && a.error.headers, !b.ok && b.error.headers);
                continue;
              }
              assert.deepEqual(a.headers, b.headers);
              if (s.end === 'keep') continue;
              const usage = { inputTokens: s.input, outputTokens: Math.floor(s.out * s.cap) };
              if (s.end === 'settle') assert.deepEqual(await mem.settle(a.ticket, usage), await red.settle(b.ticket, usage));
              else {
                await mem.release(a.ticket);
                await red.release(b.ticket);
              }
            }
          },
        ),
        { numRuns: 40 },
      );
    });
  });
});
