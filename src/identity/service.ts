/** Identification: turns request credentials into a Principal, with a bounded per-instance cache. */
import { LRUCache } from 'lru-cache';
import type { Kysely } from 'kysely';
import type { Database } from '../store/schema.js';
import { findKey, parseApiKey, verifySecret, type KeyRecord } from './keys.js';
import type { Principal } from './types.js';

/** Identification service. */
export interface Identity {
  /** Returns the principal for a presented API key, or null when it is invalid. */
  authenticateKey(presented: string): Promise<Principal | null>;
  /** Drops cached entries (all, or one key id) after a revocation or rotation. */
  invalidate(keyId?: string): void;
}

/** Extracts the presented credential from `Authorization: Bearer …` or `x-api-key`. */
export function credentialFrom(headers: Record<string, string | string[] | undefined>): string | null {
  const auth = headers.authorization;
  if (typeof auth === 'string') {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(auth);
    if (m) return m[1]!;
  }
  const x = headers['x-api-key'];
  if (typeof x === 'string' && x.length > 0) return x.trim();
  return null;
}

/** Creates the identity service over the store. */
export function createIdentity(opts: { db: Kysely<Database>; pepper: Buffer; cacheSize?: number; cacheTtlMs?: number }): Identity {
  const cache = new LRUCache<string, KeyRecord | false>({ max: opts.cacheSize ?? 10_000, ttl: opts.cacheTtlMs ?? 5_000 });
  return {
    async authenticateKey(presented) {
      const parsed = parseApiKey(presented);
      if (!parsed) return null;
      let rec = cache.get(parsed.id);
      if (rec === undefined) {
        rec = (await findKey(opts.db, parsed.id)) ?? false;
        cache.set(parsed.id, rec);
      }
      if (!rec) {
        verifySecret(opts.pepper, parsed.secret, '0'.repeat(64)); // same work for unknown ids
        return null;
      }
      if (!verifySecret(opts.pepper, parsed.secret, rec.hash)) return null;
      if (rec.status !== 'active' || rec.tenantStatus !== 'active') return null;
      if (rec.expiresAt !== null && rec.expiresAt <= Date.now()) return null;
      return {
        tenantId: rec.tenantId,
        tenantName: rec.tenantName,
        keyId: rec.id,
        subject: rec.name,
        scopes: rec.scopes,
        ...(rec.tier ? { tier: rec.tier } : {}),
        authMethod: 'api_key',
      };
    },
    invalidate(keyId) {
      if (keyId) cache.delete(keyId);
      else cache.clear();
    },
  };
}
