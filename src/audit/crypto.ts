/**
 * Keys of the audit trail: the HMAC key of prompt/output hashes, the master key and the
 * per-tenant data keys (AES-256-GCM, wrapped by the master key) of captured payloads.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Kysely } from 'kysely';
import type { Database } from '../store/schema.js';

/** Parses a 32-byte key given as 64 hex chars or base64; throws with `what` in the message. */
export function parseKey32(text: string, what: string): Buffer {
  const t = text.trim();
  const buf = /^[0-9a-fA-F]{64}$/.test(t) ? Buffer.from(t, 'hex') : Buffer.from(t, 'base64');
  if (buf.length !== 32) throw new Error(`${what}: expected 32 bytes as 64 hex characters or base64`);
  return buf;
}

/** The audit HMAC key: env variable, file, or one generated once into `<dataDir>/audit-hash.key`. */
export function loadHashKey(opts: { dataDir: string; env: Record<string, string | undefined>; envName: string; file?: string }): Buffer {
  const fromEnv = opts.env[opts.envName];
  if (fromEnv) return parseKey32(fromEnv, opts.envName);
  if (opts.file) return parseKey32(readFileSync(opts.file, 'utf8'), 'audit.hashKeyFile');
  const dir = resolve(opts.dataDir);
  const file = join(dir, 'audit-hash.key');
  if (existsSync(file)) return parseKey32(readFileSync(file, 'utf8'), file);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const key = randomBytes(32);
  try {
    writeFileSync(file, key.toString('hex') + '\n', { mode: 0o600, flag: 'wx' });
  } catch {
    return parseKey32(readFileSync(file, 'utf8'), file); // another process won the race
  }
  return key;
}

/** The master key of payload capture (env or file), or undefined when neither is set. */
export function loadMasterKey(opts: { env: Record<string, string | undefined>; envName: string; file?: string }): Buffer | undefined {
  const v = opts.env[opts.envName];
  if (v) return parseKey32(v, opts.envName);
  if (opts.file) return parseKey32(readFileSync(opts.file, 'utf8'), 'audit.payloads.masterKeyFile');
  return undefined;
}

/** AES-256-GCM encryption: base64(iv | tag | ciphertext), authenticated with `aad`. */
export function seal(key: Buffer, plain: Buffer | string, aad: string): string {
  const iv = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', key, iv);
  c.setAAD(Buffer.from(aad, 'utf8'));
  const ct = Buffer.concat([c.update(typeof plain === 'string' ? Buffer.from(plain, 'utf8') : plain), c.final()]);
  return Buffer.concat([iv, c.getAuthTag(), ct]).toString('base64');
}

/** Reverses `seal`; throws when the key, data or `aad` do not match. */
export function open(key: Buffer, sealed: string, aad: string): Buffer {
  const b = Buffer.from(sealed, 'base64');
  if (b.length < 28) throw new Error('sealed value too short');
  const d = createDecipheriv('aes-256-gcm', key, b.subarray(0, 12));
  d.setAAD(Buffer.from(aad, 'utf8'));
  d.setAuthTag(b.subarray(12, 28));
  return Buffer.concat([d.update(b.subarray(28)), d.final()]);
}

/** Per-tenant data keys, created on first use, stored wrapped by the master key, cached unwrapped. */
export class TenantKeys {
  private cache = new Map<string, Buffer>();
  constructor(
    private readonly db: Kysely<Database>,
    private readonly master: Buffer,
  ) {}

  /** The tenant's data key (created and stored wrapped when missing). */
  async keyFor(tenantId: string): Promise<Buffer> {
    const hit = this.cache.get(tenantId);
    if (hit) return hit;
    const row = await this.db.selectFrom('audit_tenant_keys').select('wrapped').where('tenant_id', '=', tenantId).executeTakeFirst();
    if (row) {
      const k = open(this.master, row.wrapped, `tenant-key:${tenantId}`);
      this.cache.set(tenantId, k);
      return k;
    }
    const k = randomBytes(32);
    await this.db
      .insertInto('audit_tenant_keys')
      .values({ tenant_id: tenantId, wrapped: seal(this.master, k, `tenant-key:${tenantId}`), created_at: Date.now() })
      .onConflict((oc) => oc.column('tenant_id').doNothing())
      .execute();
    // Another instance may have created it first: read back the stored one.
    const stored = await this.db.selectFrom('audit_tenant_keys').select('wrapped').where('tenant_id', '=', tenantId).executeTakeFirstOrThrow();
    const key = open(this.master, stored.wrapped, `tenant-key:${tenantId}`);
    this.cache.set(tenantId, key);
    return key;
  }
}
