/**
 * Redis counter store for cluster mode: one Lua script per admission and one per
 * settlement (EVALSHA with automatic EVAL fallback via ioredis defineCommand), so each is a
 * single atomic round trip; periodic lease renewal is one script per tenant. All keys of
 * one request share the tenant's hash tag (`{t:<tenant>}`), so the scripts also run on
 * Redis Cluster.
 */
import { createRequire } from 'node:module';
import type { Redis, Cluster, RedisOptions } from 'ioredis';
import type { AdmitOutcome, AdmitPlan, CounterStore, RenewPlan, SettlePlan } from '../types.js';

/**
 * The numbers of a plan travel as ONE comma-separated argument (ARGV[1]) and the lease ids as
 * the following ones: each argument costs the client a conversion and a length-prefixed write,
 * and an admission has about thirty numbers. `v` holds the number fields as strings (budget
 * amounts go to INCRBY/SET as they came).
 */
const UNPACK_LUA = `
local v = {}
for x in string.gmatch(ARGV[1], '[^,]+') do v[#v + 1] = x end
`;

/**
 * Admission. KEYS: rate keys, slot keys, budget keys. Numbers (ARGV[1]): now(ms), nRates,
 * nSlots, nBudgets, then (limit, periodMs, cost) per rate, (limit, ttlMs) per slot, (limit,
 * amount, ttlMs) per budget; ARGV[1 + j]: the lease id of slot j. Checks everything first;
 * applies only if all pass.
 * Returns {failKind(0 ok,1 rate,2 slot,3 budget), failIndex, fillUs/retryUs per rate…, value per budget…}.
 */
const ADMIT_LUA = `${UNPACK_LUA}
local now = tonumber(v[1])
local nowUs = now * 1000
local nR, nS, nB = tonumber(v[2]), tonumber(v[3]), tonumber(v[4])
local a = 5
local failKind, failIdx = 0, 0
local out = {0, 0}
local newTats = {}
local prevFill = {}
for i = 1, nR do
  local limit, periodUs, cost = tonumber(v[a]), tonumber(v[a + 1]) * 1000, tonumber(v[a + 2])
  a = a + 3
  local tat = tonumber(redis.call('GET', KEYS[i]))
  if tat == nil or tat < nowUs then tat = nowUs end
  prevFill[i] = tat - nowUs
  local newTat = tat + math.ceil(cost * periodUs / limit)
  local over = newTat - nowUs - periodUs
  if over > 0 then
    if failKind == 0 then failKind = 1; failIdx = i end
    out[#out + 1] = tat - nowUs
    out[#out + 1] = over
  else
    newTats[i] = newTat
    out[#out + 1] = newTat - nowUs
    out[#out + 1] = 0
  end
end
local slots = {}
for j = 1, nS do
  local k = KEYS[nR + j]
  local limit, lease, ttl = tonumber(v[a]), ARGV[1 + j], tonumber(v[a + 1])
  a = a + 2
  redis.call('ZREMRANGEBYSCORE', k, '-inf', now)
  if failKind == 0 and redis.call('ZCARD', k) >= limit then failKind = 2; failIdx = j end
  slots[j] = {k, lease, ttl}
end
local budgets = {}
for j = 1, nB do
  local k = KEYS[nR + nS + j]
  local limit, amount, ttl = tonumber(v[a]), v[a + 1], v[a + 2]
  a = a + 3
  local raw = redis.call('GET', k)
  local v = tonumber(raw) or 0
  if failKind == 0 and v + tonumber(amount) > limit then failKind = 3; failIdx = j end
  budgets[j] = {k, raw, amount, ttl, v}
end
if failKind ~= 0 then
  out[1] = failKind
  out[2] = failIdx
  for i = 1, nR do out[1 + 2 * i] = prevFill[i] end
  for j = 1, nB do out[#out + 1] = budgets[j][5] end
  return out
end
for i = 1, nR do
  local ttlMs = math.ceil((newTats[i] - nowUs) / 1000) + 1
  redis.call('SET', KEYS[i], string.format('%.0f', newTats[i]), 'PX', ttlMs)
end
for j = 1, nS do
  local s = slots[j]
  redis.call('ZADD', s[1], string.format('%.0f', now + s[3]), s[2])
  if redis.call('PTTL', s[1]) < s[3] then redis.call('PEXPIRE', s[1], s[3]) end
end
for j = 1, nB do
  local b = budgets[j]
  if b[2] then
    out[#out + 1] = redis.call('INCRBY', b[1], b[3])
  else
    redis.call('SET', b[1], b[3], 'PX', b[4])
    out[#out + 1] = tonumber(b[3])
  end
end
return out
`;

/**
 * Settlement / release. KEYS: rate keys, slot keys, budget keys. Numbers (ARGV[1]): now(ms),
 * nRates, nSlots, nBudgets, then (limit, periodMs, delta) per rate, (delta, ttlMs) per budget;
 * ARGV[1 + j]: the lease id of slot j.
 */
const SETTLE_LUA = `${UNPACK_LUA}
local now = tonumber(v[1])
local nowUs = now * 1000
local nR, nS, nB = tonumber(v[2]), tonumber(v[3]), tonumber(v[4])
local a = 5
for i = 1, nR do
  local limit, periodUs, delta = tonumber(v[a]), tonumber(v[a + 1]) * 1000, tonumber(v[a + 2])
  a = a + 3
  local tat = tonumber(redis.call('GET', KEYS[i]))
  local inc = math.ceil(math.abs(delta) * periodUs / limit)
  if delta > 0 then
    if tat == nil or tat < nowUs then tat = nowUs end
    local t = tat + inc
    redis.call('SET', KEYS[i], string.format('%.0f', t), 'PX', math.ceil((t - nowUs) / 1000) + 1)
  elseif tat ~= nil then
    local t = tat - inc
    if t > nowUs then
      redis.call('SET', KEYS[i], string.format('%.0f', t), 'PX', math.ceil((t - nowUs) / 1000) + 1)
    else
      redis.call('DEL', KEYS[i])
    end
  end
end
for j = 1, nS do
  redis.call('ZREM', KEYS[nR + j], ARGV[1 + j])
end
for j = 1, nB do
  local k = KEYS[nR + nS + j]
  local delta, ttl = v[a], v[a + 1]
  a = a + 2
  if redis.call('EXISTS', k) == 1 then
    local v = redis.call('INCRBY', k, delta)
    if v < 0 then redis.call('SET', k, '0', 'KEEPTTL') end
  elseif tonumber(delta) > 0 then
    redis.call('SET', k, delta, 'PX', ttl)
  end
end
return 1
`;

/**
 * Lease renewal. KEYS: slot keys (one hash tag per call). ARGV: now(ms), ttlMs, then one
 * leaseId per key. A lease still in its sorted set gets score now + ttl (never lowered) and
 * the set's expiry is pushed to at least ttl; a lease that is gone (settled, released, or
 * reclaimed by an admission after it expired) is not re-added. Returns the number renewed.
 */
const RENEW_LUA = `
local exp = tonumber(ARGV[1]) + tonumber(ARGV[2])
local ttl = tonumber(ARGV[2])
local n = 0
for i = 1, #KEYS do
  local lease = ARGV[2 + i]
  local s = redis.call('ZSCORE', KEYS[i], lease)
  if s then
    if tonumber(s) < exp then redis.call('ZADD', KEYS[i], string.format('%.0f', exp), lease) end
    if redis.call('PTTL', KEYS[i]) < ttl then redis.call('PEXPIRE', KEYS[i], ttl) end
    n = n + 1
  end
end
return n
`;

/** Renewals per script call (bounds the script's run time while Redis is blocked). */
const RENEW_BATCH = 256;

/** The hash tag of a key (`{t:…}`), so each renewal script touches one Redis Cluster slot. */
function hashTag(key: string): string {
  const a = key.indexOf('{');
  const b = a >= 0 ? key.indexOf('}', a + 1) : -1;
  return b > a ? key.slice(a, b + 1) : '';
}

/** ioredis, loaded on first use so processes without Redis never load it. */
function loadRedis(): typeof Redis {
  return (createRequire(import.meta.url)('ioredis') as { Redis: typeof Redis }).Redis;
}

/** Options of the Redis store. */
export interface RedisStoreOptions {
  /** Prefix of every key (no braces). Default `pcl:lim`. */
  keyPrefix?: string;
  /** Per-command timeout in ms; a dead Redis fails an admission after at most this long. Default 250. */
  commandTimeoutMs?: number;
  /** How long the first admission may wait for the initial connection. Default 2000. */
  connectTimeoutMs?: number;
  /** Extra ioredis options when a URL is given. */
  redisOptions?: RedisOptions;
}

type ScriptClient = (Redis | Cluster) & {
  pclAdmit(...args: (string | number)[]): Promise<number[]>;
  pclSettle(...args: (string | number)[]): Promise<number>;
  pclRenew(...args: (string | number)[]): Promise<number>;
};

/** A Redis-backed CounterStore (pass a URL to let the store own the connection, or an ioredis client). */
export function createRedisCounterStore(target: string | Redis | Cluster, opts: RedisStoreOptions = {}): CounterStore & { client: Redis | Cluster } {
  const prefix = opts.keyPrefix ?? 'pcl:lim';
  if (/[{}]/.test(prefix)) throw new Error('limits: Redis key prefix must not contain { or }');
  const owned = typeof target === 'string';
  const timeout = opts.commandTimeoutMs ?? 250;
  const client = (
    owned
      ? new (loadRedis())(target, {
          commandTimeout: timeout,
          maxRetriesPerRequest: 1,
          enableOfflineQueue: false,
          connectTimeout: opts.connectTimeoutMs ?? 2000,
          retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 6), 2000),
          ...opts.redisOptions,
        })
      : target
  ) as ScriptClient;
  if (owned) client.on('error', () => {}); // failures surface per command; the limiter logs them
  client.defineCommand('pclAdmit', { lua: ADMIT_LUA });
  client.defineCommand('pclSettle', { lua: SETTLE_LUA });
  client.defineCommand('pclRenew', { lua: RENEW_LUA });

  let everReady = client.status === 'ready';
  let readyWait: Promise<void> | undefined;
  const connectTimeout = opts.connectTimeoutMs ?? 2000;

  /** Waits for the first connection only; afterwards a disconnected client fails fast. */
  function ensureReady(): Promise<void> | undefined {
    if (everReady || client.status === 'ready') {
      everReady = true;
      return undefined;
    }
    if (!['wait', 'connecting', 'connect'].includes(client.status)) return Promise.reject(new Error(`redis not connected (${client.status})`));
    readyWait ??= new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        cleanup();
        readyWait = undefined;
        reject(new Error('redis connect timeout'));
      }, connectTimeout);
      const onReady = () => {
        cleanup();
        everReady = true;
        resolve();
      };
      const onEnd = () => {
        cleanup();
        readyWait = undefined;
        reject(new Error('redis connection closed'));
      };
      // A refused first connection fails now rather than after the connect timeout.
      const onRetry = () => {
        cleanup();
        readyWait = undefined;
        reject(new Error('redis unreachable'));
      };
      const cleanup = () => {
        clearTimeout(timer);
        client.off('ready', onReady);
        client.off('end', onEnd);
        client.off('reconnecting', onRetry);
      };
      client.on('ready', onReady);
      client.on('end', onEnd);
      client.on('reconnecting', onRetry);
      if (client.status === 'wait') client.connect().catch(() => {});
    });
    return readyWait;
  }

  // Prefixed keys of recent plans (the limiter reuses its key strings, so this is a lookup
  // rather than a new string to build and encode on every call).
  const prefixed = new Map<string, string>();
  const k = (key: string): string => {
    let full = prefixed.get(key);
    if (full === undefined) {
      if (prefixed.size >= 50_000) prefixed.clear();
      prefixed.set(key, (full = `${prefix}:${key}`));
    }
    return full;
  };

  // Commands sent while the event loop handles one batch of I/O are written together (one
  // socket write at the end of the batch, not one per command): the socket is corked on the
  // first command and uncorked by setImmediate, which runs right after that batch. Each
  // admission and settlement is still one command with its own reply.
  let corked: { cork(): void; uncork(): void } | undefined;
  function batchWrites(): void {
    const stream = (client as Partial<Redis>).stream;
    if (!stream || corked === stream || typeof stream.cork !== 'function') return;
    stream.cork();
    corked = stream;
    setImmediate(() => {
      if (corked === stream) corked = undefined;
      stream.uncork();
    });
  }

  return {
    kind: 'redis',
    client,
    async admit(plan: AdmitPlan): Promise<AdmitOutcome> {
      const wait = ensureReady();
      if (wait) await wait;
      const nR = plan.rates.length;
      const nS = plan.slots.length;
      const nB = plan.budgets.length;
      const args: string[] = [String(nR + nS + nB)];
      let nums = `${Math.round(plan.now)},${nR},${nS},${nB}`;
      for (const r of plan.rates) {
        args.push(k(r.key));
        nums += `,${r.limit},${r.periodMs},${r.cost}`;
      }
      for (const sl of plan.slots) {
        args.push(k(sl.key));
        nums += `,${sl.limit},${sl.ttlMs}`;
      }
      for (const b of plan.budgets) {
        args.push(k(b.key));
        nums += `,${b.limit},${b.amount},${Math.ceil(b.ttlMs)}`;
      }
      args.push(nums);
      for (const sl of plan.slots) args.push(sl.leaseId);
      batchWrites();
      const res = await client.pclAdmit(...args);
      const failKind = Number(res[0]);
      const rates = new Array<AdmitOutcome['rates'][number]>(nR);
      for (let i = 0; i < nR; i++) rates[i] = { fillMs: Number(res[2 + 2 * i]) / 1000, retryMs: Number(res[3 + 2 * i]) / 1000 };
      const off = 2 + 2 * nR;
      const budgets = new Array<number>(nB);
      for (let j = 0; j < nB; j++) budgets[j] = Number(res[off + j]);
      if (failKind === 0) return { ok: true, rates, budgets };
      const kind = failKind === 1 ? 'rate' : failKind === 2 ? 'slot' : 'budget';
      return { ok: false, failed: { kind, index: Number(res[1]) - 1 }, rates, budgets };
    },
    async settle(plan: SettlePlan): Promise<void> {
      const wait = ensureReady();
      if (wait) await wait;
      const nR = plan.rates.length;
      const nS = plan.slots.length;
      const nB = plan.budgets.length;
      const args: string[] = [String(nR + nS + nB)];
      let nums = `${Math.round(plan.now)},${nR},${nS},${nB}`;
      for (const r of plan.rates) {
        args.push(k(r.key));
        nums += `,${r.limit},${r.periodMs},${r.delta}`;
      }
      for (const sl of plan.slots) args.push(k(sl.key));
      for (const b of plan.budgets) {
        args.push(k(b.key));
        nums += `,${b.delta},${Math.ceil(b.ttlMs)}`;
      }
      args.push(nums);
      for (const sl of plan.slots) args.push(sl.leaseId);
      batchWrites();
      await client.pclSettle(...args);
    },
    async renew(plan: RenewPlan): Promise<number> {
      if (plan.slots.length === 0) return 0;
      const wait = ensureReady();
      if (wait) await wait;
      const groups = new Map<string, { key: string; leaseId: string }[]>();
      for (const sl of plan.slots) {
        const tag = hashTag(sl.key);
        let g = groups.get(tag);
        if (!g) groups.set(tag, (g = []));
        g.push(sl);
      }
      const calls: Promise<number>[] = [];
      for (const g of groups.values()) {
        for (let i = 0; i < g.length; i += RENEW_BATCH) {
          const part = g.slice(i, i + RENEW_BATCH);
          calls.push(client.pclRenew(part.length, ...part.map((x) => k(x.key)), Math.round(plan.now), Math.ceil(plan.ttlMs), ...part.map((x) => x.leaseId)));
        }
      }
      return (await Promise.all(calls)).reduce((a, b) => a + Number(b), 0);
    },
    async close() {
      if (owned) client.disconnect();
    },
  };
}
