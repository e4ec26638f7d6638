/** Admin keys: `pcla_<id>_<secret>`, hashed like API keys, each with a role (and tenants for operators). */
import type { Kysely } from 'kysely';
import type { Database } from '../store/schema.js';
import { generateApiKey } from './keys.js';
import type { AdminRole } from './types.js';

const ADMIN_KEY_RE = /^pcla_([A-Za-z0-9]{12})_([A-Za-z0-9_-]{43})$/;

/** Parses a presented admin key; null when it is not one. */
export function parseAdminKey(key: string): { id: string; secret: string } | null {
  const m = ADMIN_KEY_RE.exec(key);
  return m ? { id: m[1]!, secret: m[2]! } : null;
}

/** A stored admin key as authentication needs it. */
export interface AdminKeyRecord {
  id: string;
  name: string;
  hash: string;
  role: AdminRole;
  tenants: string[] | null;
  status: string;
  expiresAt: number | null;
}

/** Loads an admin key, or null. */
export async function findAdminKey(db: Kysely<Database>, id: string): Promise<AdminKeyRecord | null> {
  const r = await db.selectFrom('admin_keys').selectAll().where('id', '=', id).executeTakeFirst();
  if (!r) return null;
  return {
    id: r.id,
    name: r.name,
    hash: r.hash,
    role: r.role as AdminRole,
    tenants: r.tenants ? (JSON.parse(r.tenants) as string[]) : null,
    status: r.status,
    expiresAt: r.expires_at == null ? null : Number(r.expires_at),
  };
}

/** Options for a new admin key. */
export interface CreateAdminKeyOptions {
  name: string;
  role: AdminRole;
  /** Tenant ids (operators only). */
  tenants?: string[];
  createdBy: string;
  expiresAt?: number;
}

/** Creates an admin key; returns the full key once. */
export async function createAdminKey(db: Kysely<Database>, pepper: Buffer, o: CreateAdminKeyOptions): Promise<{ id: string; key: string; role: AdminRole }> {
  if (o.role === 'operator' && (!o.tenants || o.tenants.length === 0)) throw new Error('an operator admin key needs at least one tenant');
  if (o.role !== 'operator' && o.tenants && o.tenants.length) throw new Error('only operator admin keys are limited to tenants');
  const k = generateApiKey(pepper, 'pcla');
  await db
    .insertInto('admin_keys')
    .values({
      id: k.id,
      name: o.name,
      hash: k.hash,
      role: o.role,
      tenants: o.role === 'operator' ? JSON.stringify(o.tenants) : null,
      created_by: o.createdBy,
      created_at: Date.now(),
      expires_at: o.expiresAt ?? null,
      last_used_at: null,
    })
    .execute();
  return { id: k.id, key: k.key, role: o.role };
}
