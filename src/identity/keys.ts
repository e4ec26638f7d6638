/**
 * API keys: `pcl_<key-id>_<secret>` with a 256-bit random secret. Only an HMAC-SHA256 of the
 * secret under a server pepper is stored; comparison is constant-time.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Kysely } from 'kysely';
import { LRUCache } from 'lru-cache';
import type { Database } from '../store/schema.js';
import type { Principal } from './types.js';
import { keyedSha256For } from '../util/hmac.js';

const KEY_RE = /^pcl_([A-Za-z0-9]{12})_([A-Za-z0-9_-]{43})$/;
const ID_ALPHABET = 'ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789';

/** Parses a presented key into id and secret; null when it is not one of ours. */
export function parseApiKey(key: string): { id: string; secret: string } | null {
  const m = KEY_RE.exec(key);
  return m ? { id: m[1]!, secret: m[2]! } : null;
}

/** A random id over an unambiguous alphabet. */
export function randomId(len = 12): string {
  const bytes = randomBytes(len * 2);
  let out = '';
  for (let i = 0; out.length < len && i < bytes.length; i++) {
    const b = bytes[i]!;
    if (b < 256 - (256 % ID_ALPHABET.length)) out += ID_ALPHABET[b % ID_ALPHABET.length];
  }
  while (out.length < len) out += ID_ALPHABET[randomBytes(1)[0]! % ID_ALPHABET.length];
  return out;
}

/** Generates a new key; returns the full key (shown once), its id and stored hash. */
export function generateApiKey(pepper: Buffer, prefix = 'pcl'): { id: string; key: string; hash: string } {
  const id = randomId(12);
  const secret = randomBytes(32).toString('base64url');
  return { id, key: `${prefix}_${id}_${secret}`, hash: hashSecret(pepper, secret) };
}

/**
 * Why a stored key does (not) authenticate at `now`: `active`, `grace` (rotated, still inside
 * its overlap), or the reason it fails.
 */
export function keyState(
  rec: { status: string; expiresAt: number | null; graceUntil: number | null },
  now: number,
): 'active' | 'grace' | 'revoked' | 'expired' | 'rotated' {
  if (rec.status === 'revoked') return 'revoked';
  if (rec.expiresAt !== null && rec.expiresAt <= now) return 'expired';
  if (rec.status === 'rotated') return rec.graceUntil !== null && rec.graceUntil > now ? 'grace' : 'rotated';
  return rec.status === 'active' ? 'active' : 'revoked';
}

/** HMAC-SHA256(pepper, secret) in hex. */
export function hashSecret(pepper: Buffer, secret: string): string {
  return keyedSha256For(pepper).hex(secret);
}

/** Constant-time comparison of a presented secret's HMAC with a stored hash (hex). */
export function verifySecret(pepper: Buffer, secret: string, storedHash: string): boolean {
  const a = keyedSha256For(pepper).digest(secret);
  const b = Buffer.from(storedHash, 'hex');
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * The server pepper: PORTCULLIS_PEPPER (hex or base64, ≥ 32 bytes) or PORTCULLIS_PEPPER_FILE,
 * otherwise a file generated into the data dir on first start (mode 0600).
 */
export function loadPepper(dataDir: string, env: Record<string, string | undefined> = process.env): Buffer {
  const fromText = (t: string): Buffer => {
    const s = t.trim();
    const b = /^[0-9a-f]+$/i.test(s) && s.length % 2 === 0 ? Buffer.from(s, 'hex') : Buffer.from(s, 'base64');
    if (b.length < 32) throw new Error('the pepper must be at least 32 bytes');
    return b;
  };
  if (env.PORTCULLIS_PEPPER) return fromText(env.PORTCULLIS_PEPPER);
  if (env.PORTCULLIS_PEPPER_FILE) return fromText(readFileSync(env.PORTCULLIS_PEPPER_FILE, 'utf8'));
  const dir = resolve(dataDir);
  const file = join(dir, 'pepper');
  if (existsSync(file)) return fromText(readFileSync(file, 'utf8'));
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const p = randomBytes(32);
  try {
    writeFileSync(file, p.toString('hex') + '\n', { mode: 0o600, flag: 'wx' });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    return fromText(readFileSync(file, 'utf8')); // another process won the race
  }
  return p;
}

/** A stored key as identification needs it. */
export interface KeyRecord {
  id: string;
  tenantId: string;
  tenantName: string;
  tenantStatus: string;
  name: string;
  hash: string;
  scopes: unknown | null;
  tier: string | null;
  status: string;
  expiresAt: number | null;
  /** The tenant's tier and scopes (keys inherit and narrow them). */
  tenantTier: string | null;
  tenantScopes: unknown | null;
  /** A rotated key keeps working until this time. */
  graceUntil: number | null;
}

/** Loads a key with its tenant, or null. */
export async function findKey(db: Kysely<Database>, id: string): Promise<KeyRecord | null> {
  const row = await db
    .selectFrom('api_keys')
    .innerJoin('tenants', 'tenants.id', 'api_keys.tenant_id')
    .select([
      'api_keys.id as id',
      'api_keys.tenant_id as tenantId',
      'tenants.name as tenantName',
      'tenants.status as tenantStatus',
      'api_keys.name as name',
      'api_keys.hash as hash',
      'api_keys.scopes as scopes',
      'api_keys.tier as tier',
      'api_keys.status as status',
      'api_keys.expires_at as expiresAt',
      'api_keys.grace_until as graceUntil',
      'tenants.tier as tenantTier',
      'tenants.scopes as tenantScopes',
    ])
    .where('api_keys.id', '=', id)
    .executeTakeFirst();
  if (!row) return null;
  return {
    ...row,
    scopes: row.scopes ? JSON.parse(row.scopes) : null,
    tenantScopes: row.tenantScopes ? JSON.parse(row.tenantScopes) : null,
    expiresAt: row.expiresAt == null ? null : Number(row.expiresAt),
    graceUntil: row.graceUntil == null ? null : Number(row.graceUntil),
  };
}

/** The principal a stored key stands for (without checking its state). */
export function principalOf(rec: KeyRecord): Principal {
  const tier = rec.tier ?? rec.tenantTier;
  return {
    tenantId: rec.tenantId,
    tenantName: rec.tenantName,
    keyId: rec.id,
    subject: rec.name,
    scopes: rec.scopes,
    ...(tier ? { tier } : {}),
    authMethod: 'api_key',
    ...(rec.tenantScopes != null ? { tenantScopes: rec.tenantScopes } : {}),
  };
}

/** A tenant as credentials that name one by claim or certificate need it. */
export interface TenantRow {
  id: string;
  name: string;
  status: string;
  tier: string | null;
  scopes: unknown | null;
}

/**
 * Looks tenants up by name for JWT and mTLS identities: cached for `cacheMs` (0 = not cached,
 * negative answers included), created on first sight when `create` is set.
 */
export function tenantLookup(db: Kysely<Database>, opts: { create: boolean; cacheMs: number }): (name: string) => Promise<TenantRow | null> {
  const cache = new LRUCache<string, TenantRow | false>({ max: 10_000, ttl: Math.max(1, opts.cacheMs) });
  const load = (name: string) => db.selectFrom('tenants').select(['id', 'name', 'status', 'tier', 'scopes']).where('name', '=', name).executeTakeFirst();
  return async (name) => {
    const hit = opts.cacheMs > 0 ? cache.get(name) : undefined;
    if (hit !== undefined) return hit || null;
    let row = await load(name);
    if (!row && opts.create) {
      await ensureTenant(db, name, true);
      row = await load(name);
    }
    const out: TenantRow | false = row ? { id: row.id, name: row.name, status: row.status, tier: row.tier, scopes: row.scopes ? (JSON.parse(row.scopes) as unknown) : null } : false;
    if (opts.cacheMs > 0) cache.set(name, out);
    return out || null;
  };
}

/** Finds a tenant by name, creating it when asked. */
export async function ensureTenant(db: Kysely<Database>, name: string, create = true): Promise<{ id: string; name: string } | null> {
  const found = await db.selectFrom('tenants').select(['id', 'name']).where('name', '=', name).executeTakeFirst();
  if (found) return found;
  if (!create) return null;
  const id = 'ten_' + randomId(12);
  await db.insertInto('tenants').values({ id, name, tier: null, created_at: Date.now() }).onConflict((oc) => oc.column('name').doNothing()).execute();
  return (await db.selectFrom('tenants').select(['id', 'name']).where('name', '=', name).executeTakeFirst()) ?? null;
}

/** Options for a new key. */
export interface CreateKeyOptions {
  tenant: string;
  name: string;
  scopes?: unknown;
  tier?: string;
  owner?: string;
  createdBy?: string;
  expiresAt?: number;
}

/** Creates a key (and its tenant if needed); returns the full key once. */
export async function createKey(db: Kysely<Database>, pepper: Buffer, opts: CreateKeyOptions): Promise<{ id: string; key: string; tenant: string; tenantId: string }> {
  if (!opts.tenant.trim() || opts.tenant.length > 200) throw new Error('tenant must be 1-200 characters');
  if (!opts.name.trim() || opts.name.length > 200) throw new Error('name must be 1-200 characters');
  const tenant = await ensureTenant(db, opts.tenant);
  if (!tenant) throw new Error('could not create tenant');
  const k = generateApiKey(pepper);
  await db
    .insertInto('api_keys')
    .values({
      id: k.id,
      tenant_id: tenant.id,
      name: opts.name,
      hash: k.hash,
      scopes: opts.scopes === undefined ? null : JSON.stringify(opts.scopes),
      tier: opts.tier ?? null,
      owner: opts.owner ?? null,
      created_by: opts.createdBy ?? null,
      created_at: Date.now(),
      expires_at: opts.expiresAt ?? null,
      last_used_at: null,
    })
    .execute();
  return { id: k.id, key: k.key, tenant: tenant.name, tenantId: tenant.id };
}

/**
 * First start of an installation: when no tenant exists, creates the `default` tenant and a
 * bootstrap key and returns it (to print once). Later calls return null.
 */
export async function bootstrap(db: Kysely<Database>, pepper: Buffer): Promise<{ id: string; key: string; tenant: string } | null> {
  const done = await db.selectFrom('kv_meta').select('v').where('k', '=', 'bootstrapped').executeTakeFirst();
  if (done) return null;
  const claimed = await db
    .insertInto('kv_meta')
    .values({ k: 'bootstrapped', v: String(Date.now()) })
    .onConflict((oc) => oc.column('k').doNothing())
    .executeTakeFirst();
  if (Number(claimed.numInsertedOrUpdatedRows ?? 0) === 0) return null; // another instance bootstrapped
  const anyTenant = await db.selectFrom('tenants').select('id').limit(1).executeTakeFirst();
  if (anyTenant) return null;
  const k = await createKey(db, pepper, { tenant: 'default', name: 'bootstrap', createdBy: 'bootstrap' });
  await db
    .insertInto('admin_events')
    .values({ ts: Date.now(), actor: 'bootstrap', actor_role: null, action: 'key.create', target_type: 'api_key', target_id: k.id, tenant_id: k.tenantId, source: 'first start', request_id: null, detail: JSON.stringify({ name: 'bootstrap' }) })
    .execute();
  return { id: k.id, key: k.key, tenant: k.tenant };
}
