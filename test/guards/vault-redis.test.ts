/** The Redis-shared pseudonym vault: two engines (two gateway instances) share a conversation. */
import { redisReachable as redisReachableAt } from '../helpers/services.js';
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { createGuardEngine } from '../../src/guards/engine.js';
import { createRedisVault } from '../../src/guards/vault-redis.js';

const URL = process.env.PCL_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const PREFIX = `pcl:test-vault:${process.pid}:${Date.now()}:`;

const reachable = (): Promise<boolean> => redisReachableAt(URL);
const ok = await reachable();
if (!ok && process.env.CI === 'true') throw new Error(`Redis at ${URL} is unreachable and CI=true`);

const client = ok ? new Redis(URL) : undefined;
after(async () => {
  if (!client) return;
  const keys = await client.keys(PREFIX + '*');
  if (keys.length) await client.del(...keys);
  client.disconnect();
});

test('two instances keep one conversation consistent; Redis holds only encrypted values', { skip: ok ? false : `Redis at ${URL} unreachable` }, async () => {
  const key = randomBytes(32);
  const mk = () => createGuardEngine({ pii: { action: 'pseudonymize', entities: ['EMAIL'] } }, { vault: createRedisVault({ redis: client!, encryptionKey: key, keyPrefix: PREFIX, ttlMs: 60_000, maxConversations: 100, maxEntries: 100 }) });
  const a = mk();
  const b = mk();
  const scope = { tenant: 't1/k1', conversationId: 'conv-x' };
  const email1 = 'ann' + '@example.com';
  const email2 = 'bob' + '@example.com';
  const r1 = await a.runRequest('chat', { model: 'm', messages: [{ role: 'user', content: `write to ${email1}` }] }, scope);
  assert.equal((r1.body as any).messages[0].content, 'write to <EMAIL_1>');
  // The next turn lands on the other instance: ann keeps <EMAIL_1>, bob becomes <EMAIL_2>.
  const r2 = await b.runRequest('chat', { model: 'm', messages: [{ role: 'user', content: `cc ${email2} and ${email1}` }] }, scope);
  assert.equal((r2.body as any).messages[0].content, 'cc <EMAIL_2> and <EMAIL_1>');
  assert.equal(b.vault.peek('t1/k1', 'conv-x')!.get('<EMAIL_1>'), email1, 'instance b can restore a placeholder minted on a');
  const keys = await client!.keys(PREFIX + '*');
  assert.equal(keys.length, 1);
  assert.ok(!keys[0]!.includes('conv-x') && !keys[0]!.includes('t1'), 'ids are hashed');
  const raw = JSON.stringify(await client!.hgetall(keys[0]!));
  assert.ok(!raw.includes('example.com'), 'values are encrypted');
  const ttl = await client!.pttl(keys[0]!);
  assert.ok(ttl > 0 && ttl <= 60_000);
  // Another scope sees nothing; a wrong key cannot read entries.
  const c = createGuardEngine({ pii: { action: 'pseudonymize', entities: ['EMAIL'] } }, { vault: createRedisVault({ redis: client!, encryptionKey: randomBytes(32), keyPrefix: PREFIX, ttlMs: 60_000, maxConversations: 100, maxEntries: 100 }) });
  await c.runRequest('chat', { model: 'm', messages: [{ role: 'user', content: 'hello there' }] }, scope);
  assert.equal(c.vault.peek('t1/k1', 'conv-x')?.size ?? 0, 0);
  await a.close();
  await b.close();
  await c.close();
});

test('store: redis needs a vault key and a URL (clear start-up errors)', () => {
  assert.throws(() => createGuardEngine({ vault: { store: 'redis', redisUrl: URL } }, { env: {} }), /PORTCULLIS_VAULT_KEY/);
  assert.throws(() => createGuardEngine({ vault: { store: 'redis' } }, { env: { PORTCULLIS_VAULT_KEY: 'ab'.repeat(32) } }), /redisUrl/);
});
