/**
 * Identification: turns request credentials into a Principal (API keys) or an AdminPrincipal
 * (admin keys), with a bounded per-instance cache invalidated by key changes on every
 * instance, failed-authentication limits and counters, and batched last-used tracking.
 */
import { LRUCache } from 'lru-cache';
import type { Logger } from 'pino';
import type { Db } from '../store/db.js';
import { findAdminKey, parseAdminKey, type AdminKeyRecord } from './admin-keys.js';
import { FailureBuckets, SharedFailureBuckets, type FailureCounterStore, type FailureLimiter } from './auth-limiter.js';
import { watchKeyChanges, type Watcher } from './changes.js';
import { identityConfigSchema, type IdentityConfig } from './config.js';
import { findKey, keyState, parseApiKey, principalOf, verifySecret, type KeyRecord } from './keys.js';
import { isJwtShaped, type JwtVerifier } from './jwt-config.js';
import type { MtlsIdentity, PeerInfo } from './mtls.js';
import type { AdminPrincipal, Principal } from './types.js';
import { setImmediate as nextTurn } from 'node:timers/promises';

/** Why an authentication failed (kept for logs and metrics; clients see a generic 401/429). */
export type AuthFailureReason =
  | 'missing'
  | 'malformed'
  | 'unknown_key'
  | 'bad_secret'
  | 'revoked'
  | 'expired'
  | 'rotated'
  | 'tenant_disabled'
  | 'rate_limited'
  /** A bearer JWT failed verification or claim mapping (detail says why). */
  | 'bad_token'
  /** mTLS: no, untrusted or unmapped client certificate (detail says why). */
  | 'client_cert';

/** The outcome of an authentication attempt. */
export type AuthResult<P> = { ok: true; principal: P } | { ok: false; reason: AuthFailureReason; retryAfterS?: number; detail?: string };

/** Failed authentication counters (monotonic since start). */
export interface AuthFailureCounts {
  total: number;
  byReason: Record<AuthFailureReason, number>;
}

/** Request metadata used by authentication. */
export interface AuthMeta {
  /** Client address (rate limiting of failures). */
  ip?: string;
}

/** Identification service. */
export interface Identity {
  /** Returns the principal for a presented API key, or null when it is invalid. */
  authenticateKey(presented: string): Promise<Principal | null>;
  /** Authenticates an API key with failure limiting and counting. */
  authenticate(presented: string | null, meta?: AuthMeta): AuthResult<Principal> | Promise<AuthResult<Principal>>;
  /** Authenticates an admin key (`pcla_…`) with the same failure limiting. */
  authenticateAdmin(presented: string | null, meta?: AuthMeta): Promise<AuthResult<AdminPrincipal>>;
  /** Drops cached entries (all, or one key id) after a revocation or rotation. */
  invalidate(keyId?: string): void;
  /** Failed-authentication counters, for metrics. */
  failureCounts(): AuthFailureCounts;
  /** Present when mTLS identity is configured: authenticates a client certificate. */
  authenticatePeer?(peer: PeerInfo | null, meta?: AuthMeta): Promise<AuthResult<Principal>>;
  /** True when every API request needs a valid client certificate (mTLS `requireClientCert`). */
  readonly clientCertRequired?: boolean;
  /** Starts propagation watchers and the last-used flusher (idempotent). */
  start(): Promise<void>;
  /** Writes pending last_used_at values now. */
  flushLastUsed(): Promise<void>;
  /** Stops background work and flushes last-used times. */
  close(): Promise<void>;
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

/** Options of the identity service. */
export interface IdentityOptions {
  db: Db;
  pepper: Buffer;
  config?: Partial<IdentityConfig>;
  /** PostgreSQL URL for LISTEN/NOTIFY (cluster mode). */
  postgresUrl?: string;
  logger?: Pick<Logger, 'warn' | 'error'>;
  /** Clock (tests). */
  now?: () => number;
  /** Bearer JWT verification (`auth.jwt`); tokens shaped like a JWT go here instead of the key path. */
  jwt?: JwtVerifier;
  /** Client-certificate identity (`auth.mtls`). */
  mtls?: MtlsIdentity;
  /**
   * Where failed-authentication buckets are shared (the limits' counter store: Redis, or the
   * primary over IPC under `serve --workers`); local to this instance when absent.
   */
  failureStore?: FailureCounterStore;
}

const DUMMY_HASH = '0'.repeat(64);

/** Creates the identity service over the store. */
export function createIdentity(opts: IdentityOptions): Identity {
  const cfg: IdentityConfig = { ...identityConfigSchema.parse({}), ...(opts.config ?? {}) };
  const now = opts.now ?? Date.now;
  const kdb = opts.db.kysely;
  const cache = new LRUCache<string, KeyRecord | false>({ max: cfg.cacheSize, ttl: cfg.cacheTtlMs });
  const adminCache = new LRUCache<string, AdminKeyRecord | false>({ max: 1000, ttl: cfg.cacheTtlMs });
  const sharedError = (e: unknown) => opts.logger?.warn({ err: (e as Error)?.message }, 'failed-auth store unavailable: this instance limits failures on its own');
  const byAddress: FailureLimiter = opts.failureStore
    ? new SharedFailureBuckets(cfg.failedAuth.perAddress, opts.failureStore, 'authfail:addr:', { now, onError: sharedError })
    : new FailureBuckets(cfg.failedAuth.perAddress, 100_000, now);
  const byKey: FailureLimiter = opts.failureStore
    ? new SharedFailureBuckets(cfg.failedAuth.perKey, opts.failureStore, 'authfail:key:', { now, onError: sharedError })
    : new FailureBuckets(cfg.failedAuth.perKey, 100_000, now);
  const reasons: AuthFailureReason[] = ['missing', 'malformed', 'unknown_key', 'bad_secret', 'revoked', 'expired', 'rotated', 'tenant_disabled', 'rate_limited', 'bad_token', 'client_cert'];
  const counts: AuthFailureCounts = { total: 0, byReason: Object.fromEntries(reasons.map((r) => [r, 0])) as Record<AuthFailureReason, number> };
  const lastUsed = new Map<string, number>();
  const adminLastUsed = new Map<string, number>();
  let watcher: Watcher | undefined;
  let flushTimer: NodeJS.Timeout | undefined;
  let started: Promise<void> | undefined;

  function failure<P>(reason: AuthFailureReason, meta: AuthMeta | undefined, keyId: string | undefined, retryAfterS?: number, detail?: string): AuthResult<P> {
    counts.total++;
    counts.byReason[reason]++;
    if (reason !== 'missing' && reason !== 'rate_limited') {
      if (meta?.ip) byAddress.fail(meta.ip);
      if (keyId) byKey.fail(keyId);
    }
    return { ok: false, reason, ...(retryAfterS ? { retryAfterS } : {}), ...(detail ? { detail } : {}) };
  }

  /** Bearer JWTs: same address-based failure limiting as keys; the reason stays internal. */
  async function verifyJwt(jwt: JwtVerifier, token: string, meta: AuthMeta | undefined): Promise<AuthResult<Principal>> {
    if (meta?.ip) {
      const wait = byAddress.blockedFor(meta.ip);
      if (wait > 0) return failure('rate_limited', meta, undefined, wait);
    }
    const r = await jwt.verify(token);
    if (r.ok) return r;
    if (r.reason === 'tenant_disabled') return failure('tenant_disabled', meta, undefined, undefined, 'jwt');
    return failure('bad_token', meta, undefined, undefined, r.detail ? `${r.reason}: ${r.detail}` : r.reason);
  }

  /**
   * Shared flow of API and admin keys: limits, cached lookup, constant-time verify. Synchronous
   * when the key's record is cached (the common case), so a request costs no promise chain here.
   */
  function verifyPresented<R extends { hash: string }, P>(
    presented: string | null,
    meta: AuthMeta | undefined,
    parse: (s: string) => { id: string; secret: string } | null,
    lookup: (id: string) => R | false | Promise<R | false>,
    accept: (rec: R, id: string) => AuthResult<P>,
  ): AuthResult<P> | Promise<AuthResult<P>> {
    if (!presented) return failure('missing', meta, undefined);
    if (meta?.ip) {
      const wait = byAddress.blockedFor(meta.ip);
      if (wait > 0) return failure('rate_limited', meta, undefined, wait);
    }
    const parsed = parse(presented);
    if (!parsed) {
      verifySecret(opts.pepper, presented, DUMMY_HASH); // similar work for garbage
      return failure('malformed', meta, undefined);
    }
    const keyWait = byKey.blockedFor(parsed.id);
    const verify = (rec: R | false): AuthResult<P> => {
      const ok = verifySecret(opts.pepper, parsed.secret, rec ? rec.hash : DUMMY_HASH);
      if (!rec || !ok) {
        if (keyWait > 0) return failure('rate_limited', meta, parsed.id, keyWait);
        return failure(rec ? 'bad_secret' : 'unknown_key', meta, parsed.id);
      }
      const res = accept(rec, parsed.id);
      if (!res.ok) return failure(res.reason, meta, parsed.id);
      return res;
    };
    const rec = lookup(parsed.id);
    return rec instanceof Promise ? rec.then(verify) : verify(rec);
  }

  // Bumped by every invalidation: a lookup that raced with one must not cache what it read.
  let epoch = 0;

  function lookupKey(id: string): KeyRecord | false | Promise<KeyRecord | false> {
    const rec = cache.get(id);
    if (rec !== undefined) return rec;
    const e = epoch;
    return findKey(kdb, id).then((found) => {
      const r = found ?? false;
      if (e === epoch) cache.set(id, r);
      return r;
    });
  }

  async function lookupAdmin(id: string): Promise<AdminKeyRecord | false> {
    let rec = adminCache.get(id);
    if (rec === undefined) {
      const e = epoch;
      rec = (await findAdminKey(kdb, id)) ?? false;
      if (e === epoch) adminCache.set(id, rec);
    }
    return rec;
  }

  function acceptKey(rec: KeyRecord, id: string): AuthResult<Principal> {
    const t = now();
    const state = keyState(rec, t);
    if (state !== 'active' && state !== 'grace') return { ok: false, reason: state };
    if (rec.tenantStatus !== 'active') return { ok: false, reason: 'tenant_disabled' };
    lastUsed.set(id, t);
    const principal = principalOf(rec);
    return { ok: true, principal: state === 'grace' ? { ...principal, rotated: true } : principal };
  }

  function acceptAdmin(rec: AdminKeyRecord, id: string): AuthResult<AdminPrincipal> {
    const t = now();
    if (rec.status !== 'active') return { ok: false, reason: 'revoked' };
    if (rec.expiresAt !== null && rec.expiresAt <= t) return { ok: false, reason: 'expired' };
    adminLastUsed.set(id, t);
    return { ok: true, principal: { id: rec.id, name: rec.name, role: rec.role, tenants: rec.tenants } };
  }

  async function flushLastUsed(): Promise<void> {
    const batches: Array<['api_keys' | 'admin_keys', Map<string, number>]> = [
      ['api_keys', lastUsed],
      ['admin_keys', adminLastUsed],
    ];
    for (const [table, map] of batches) {
      if (map.size === 0) continue;
      const entries = [...map];
      map.clear();
      // In chunks, each its own transaction, with a turn of the event loop between them (see
      // identity.lastUsedFlushChunk); a chunk that fails is logged and dropped like a failed flush.
      const chunk = cfg.lastUsedFlushChunk;
      for (let i = 0; i < entries.length; i += chunk) {
        if (i > 0) await nextTurn();
        try {
          await kdb.transaction().execute(async (trx) => {
            for (const [id, ts] of entries.slice(i, i + chunk)) {
              await trx
                .updateTable(table)
                .set({ last_used_at: ts })
                .where('id', '=', id)
                .where((eb) => eb.or([eb('last_used_at', 'is', null), eb('last_used_at', '<', ts)]))
                .execute();
            }
          });
        } catch (e) {
          opts.logger?.warn({ err: (e as Error)?.message }, 'last_used_at flush failed');
        }
      }
    }
  }

  const invalidate = (keyId?: string) => {
    epoch++;
    if (keyId) {
      cache.delete(keyId);
      adminCache.delete(keyId);
    } else {
      cache.clear();
      adminCache.clear();
    }
  };

  return {
    async authenticateKey(presented) {
      const r = await verifyPresented(presented, undefined, parseApiKey, lookupKey, acceptKey);
      return r.ok ? r.principal : null;
    },
    authenticate(presented, meta) {
      if (opts.jwt && presented && isJwtShaped(presented)) return verifyJwt(opts.jwt, presented, meta);
      return verifyPresented(presented, meta, parseApiKey, lookupKey, acceptKey);
    },
    ...(opts.mtls
      ? {
          clientCertRequired: opts.mtls.required,
          async authenticatePeer(peer: PeerInfo | null, meta?: AuthMeta): Promise<AuthResult<Principal>> {
            const r = await opts.mtls!.principalFor(peer);
            if (r.ok) return r;
            if (r.reason === 'tenant_disabled') return failure('tenant_disabled', meta, undefined, undefined, 'mtls');
            return failure('client_cert', meta, undefined, undefined, r.reason);
          },
        }
      : {}),
    authenticateAdmin(presented, meta) {
      return Promise.resolve(verifyPresented(presented, meta, parseAdminKey, lookupAdmin, acceptAdmin));
    },
    invalidate,
    failureCounts() {
      return { total: counts.total, byReason: { ...counts.byReason } };
    },
    start() {
      started ??= (async () => {
        watcher = watchKeyChanges({
          db: opts.db,
          pollMs: cfg.revocationPollMs,
          ...(opts.postgresUrl ? { postgresUrl: opts.postgresUrl } : {}),
          onChange(ids) {
            if (ids === '*') invalidate();
            else for (const id of ids) invalidate(id);
          },
          onError(e) {
            opts.logger?.warn({ err: (e as Error)?.message }, 'key-change watcher error');
          },
        });
        flushTimer = setInterval(() => void flushLastUsed(), cfg.lastUsedFlushMs);
        flushTimer.unref();
        await watcher.ready;
      })();
      return started;
    },
    flushLastUsed,
    async close() {
      if (flushTimer) clearInterval(flushTimer);
      await watcher?.close();
      await flushLastUsed();
    },
  };
}
