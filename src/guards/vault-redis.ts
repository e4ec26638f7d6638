/**
 * The pseudonym vault shared through Redis, for several gateway instances: each conversation is
 * one Redis hash (key = SHA-256 of tenant/key scope and conversation id, so neither appears in
 * Redis), each entry encrypted with AES-256-GCM under a key from the environment, the hash
 * expiring `ttlMs` after its last write. The in-process LRU stays the working copy: `prepare`
 * merges the stored entries in before the guards run, `commit` writes the new ones after.
 * Two instances racing on the same conversation may both mint `<PERSON_2>` for different values;
 * the first write wins in Redis (HSETNX) and each request still restores its own values correctly.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import type { Redis } from 'ioredis';
import { createVault, type PseudonymVault, type Session, type VaultEntry, type VaultOptions } from './vault.js';

/** Options of the Redis vault. */
export interface RedisVaultOptions extends VaultOptions {
  /** A Redis URL, or an existing client (not closed by the vault). */
  redis: string | Redis;
  /** 32-byte key for AES-256-GCM. */
  encryptionKey: Buffer;
  keyPrefix?: string;
}

/** Parses a 32-byte key given as 64 hex characters or base64. */
export function parseVaultKey(text: string): Buffer {
  const t = text.trim();
  const buf = /^[0-9a-f]{64}$/i.test(t) ? Buffer.from(t, 'hex') : Buffer.from(t, 'base64');
  if (buf.length !== 32) throw new Error('the vault key must be 32 bytes (64 hex characters or base64)');
  return buf;
}

function seal(key: Buffer, plain: string): string {
  const iv = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', key, iv);
  const body = Buffer.concat([c.update(plain, 'utf8'), c.final()]);
  return Buffer.concat([iv, c.getAuthTag(), body]).toString('base64');
}

function open(key: Buffer, sealed: string): string {
  const b = Buffer.from(sealed, 'base64');
  const d = createDecipheriv('aes-256-gcm', key, b.subarray(0, 12));
  d.setAuthTag(b.subarray(12, 28));
  return Buffer.concat([d.update(b.subarray(28)), d.final()]).toString('utf8');
}

/** Creates a vault whose conversations are shared through Redis. */
export function createRedisVault(opts: RedisVaultOptions): PseudonymVault {
  if (opts.encryptionKey.length !== 32) throw new Error('the vault key must be 32 bytes');
  const local = createVault(opts);
  const ownClient = typeof opts.redis === 'string';
  const redis = typeof opts.redis === 'string' ? new ((createRequire(import.meta.url)('ioredis') as { Redis: typeof Redis }).Redis)(opts.redis, { lazyConnect: false, maxRetriesPerRequest: 1, enableOfflineQueue: true }) : opts.redis;
  if (ownClient) redis.on('error', () => {});
  const prefix = opts.keyPrefix ?? 'pcl:vault:';
  const keyOf = (tenant: string, conv: string) => prefix + createHash('sha256').update(`${tenant}\0${conv}`).digest('base64url');
  const sessionOf = (tenant: string, conv: string) => local.session(tenant, conv) as Session;
  return {
    session: (tenant, conv) => local.session(tenant, conv),
    peek: (tenant, conv) => local.peek(tenant, conv),
    async prepare(tenant, conv) {
      const all = await redis.hgetall(keyOf(tenant, conv));
      const entries: VaultEntry[] = [];
      for (const [field, sealed] of Object.entries(all)) {
        if (!field.startsWith('p:')) continue;
        try {
          const [style, category, value] = JSON.parse(open(opts.encryptionKey, sealed)) as [VaultEntry['style'], string, string];
          entries.push({ placeholder: field.slice(2), style, category, value });
        } catch {
          /* an entry sealed with another key or tampered with: ignore it */
        }
      }
      sessionOf(tenant, conv).merge(entries);
    },
    async commit(tenant, conv) {
      const s = sessionOf(tenant, conv);
      const pending = s.pending;
      s.pending = [];
      const k = keyOf(tenant, conv);
      const m = redis.multi();
      for (const e of pending) m.hsetnx(k, `p:${e.placeholder}`, seal(opts.encryptionKey, JSON.stringify([e.style, e.category, e.value])));
      m.pexpire(k, opts.ttlMs);
      await m.exec();
    },
    get size() {
      return local.size;
    },
    clear: () => local.clear(),
    async close() {
      if (ownClient) redis.disconnect();
    },
  };
}
