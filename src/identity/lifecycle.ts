/**
 * Key and tenant lifecycle shared by the admin API and the offline CLI: create, list, show,
 * rotate (successor + grace), revoke, expire, bulk revoke by tenant, tenant changes and admin
 * keys. Every change is recorded in `admin_events` (who, when, what, from where) and
 * published as a key change so every gateway instance drops its cached copy.
 */
import type { Kysely } from 'kysely';
import type { Db } from '../store/db.js';
import type { Database } from '../store/schema.js';
import { createAdminKey } from './admin-keys.js';
import { publishKeyChanges } from './changes.js';
import { createKey, keyState, randomId } from './keys.js';
import type { AdminRole } from './types.js';

/** Who performs an action, and from where. */
export interface Actor {
  /** Admin key id, `cli`, or `bootstrap`. */
  id: string;
  role?: string;
  /** Client address, or `cli`. */
  source?: string;
  requestId?: string;
}

/** A key as the admin API and CLI show it (never the secret or its hash). */
export interface KeyView {
  id: string;
  tenantId: string;
  tenant: string;
  name: string;
  owner: string | null;
  scopes: unknown | null;
  tier: string | null;
  /** Effective state now: active | grace | rotated | revoked | expired. */
  status: string;
  createdBy: string | null;
  createdAt: number;
  expiresAt: number | null;
  lastUsedAt: number | null;
  successorId: string | null;
  graceUntil: number | null;
  revokedAt: number | null;
  revokedReason: string | null;
}

/** A tenant as shown by the admin API and CLI. */
export interface TenantView {
  id: string;
  name: string;
  status: string;
  tier: string | null;
  scopes: unknown | null;
  createdAt: number;
}

/** An admin event. */
export interface AdminEventView {
  id: number;
  ts: number;
  actor: string;
  actorRole: string | null;
  action: string;
  targetType: string | null;
  targetId: string | null;
  tenantId: string | null;
  source: string | null;
  requestId: string | null;
  detail: unknown | null;
}

/** A page of results. */
export interface Page<T> {
  data: T[];
  /** Pass as `cursor` to get the next page; null at the end. */
  nextCursor: string | null;
}

/** A client error from a lifecycle operation (bad input, unknown object, conflict). */
export class LifecycleError extends Error {
  constructor(
    readonly kind: 'not_found' | 'invalid' | 'conflict' | 'forbidden',
    message: string,
  ) {
    super(message);
    this.name = 'LifecycleError';
  }
}

/** An admin-event cursor: an event id, decimal digits below 2^53. */
const EVENT_CURSOR = /^\d{1,15}$/;

const num = (v: unknown): number | null => (v == null ? null : Number(v));
const json = (v: string | null): unknown | null => (v ? JSON.parse(v) : null);

type KeyRow = {
  id: string;
  tenant_id: string;
  tenant: string;
  name: string;
  owner: string | null;
  scopes: string | null;
  tier: string | null;
  status: string;
  created_by: string | null;
  created_at: number;
  expires_at: number | null;
  last_used_at: number | null;
  successor_id: string | null;
  grace_until: number | null;
  revoked_at: number | null;
  revoked_reason: string | null;
};

function keyView(r: KeyRow, now = Date.now()): KeyView {
  const expiresAt = num(r.expires_at);
  const graceUntil = num(r.grace_until);
  return {
    id: r.id,
    tenantId: r.tenant_id,
    tenant: r.tenant,
    name: r.name,
    owner: r.owner,
    scopes: json(r.scopes),
    tier: r.tier,
    status: keyState({ status: r.status, expiresAt, graceUntil }, now),
    createdBy: r.created_by,
    createdAt: Number(r.created_at),
    expiresAt,
    lastUsedAt: num(r.last_used_at),
    successorId: r.successor_id,
    graceUntil,
    revokedAt: num(r.revoked_at),
    revokedReason: r.revoked_reason,
  };
}

function keyQuery(db: Kysely<Database>) {
  return db
    .selectFrom('api_keys')
    .innerJoin('tenants', 'tenants.id', 'api_keys.tenant_id')
    .select([
      'api_keys.id',
      'api_keys.tenant_id',
      'tenants.name as tenant',
      'api_keys.name',
      'api_keys.owner',
      'api_keys.scopes',
      'api_keys.tier',
      'api_keys.status',
      'api_keys.created_by',
      'api_keys.created_at',
      'api_keys.expires_at',
      'api_keys.last_used_at',
      'api_keys.successor_id',
      'api_keys.grace_until',
      'api_keys.revoked_at',
      'api_keys.revoked_reason',
    ]);
}

function tenantView(r: { id: string; name: string; status: string; tier: string | null; scopes: string | null; created_at: number }): TenantView {
  return { id: r.id, name: r.name, status: r.status, tier: r.tier, scopes: json(r.scopes), createdAt: Number(r.created_at) };
}

/** Options for a new key. */
export interface NewKeyInput {
  tenant: string;
  name: string;
  owner?: string;
  scopes?: unknown;
  tier?: string;
  expiresAt?: number;
}

/** Filters of a key listing. */
export interface KeyFilter {
  tenantId?: string;
  /** Restrict to these tenants (operators). */
  tenantIds?: string[];
  /** Effective status filter (active, grace, rotated, revoked, expired). */
  status?: string;
  limit?: number;
  cursor?: string;
}

/** Lifecycle operations over one database. */
export class Lifecycle {
  constructor(
    readonly db: Db,
    private readonly pepper: Buffer,
    /** Called after changes with the affected key ids (in-process cache invalidation). */
    private readonly onChange?: (ids: string[]) => void,
  ) {}

  private get k(): Kysely<Database> {
    return this.db.kysely;
  }

  /** Appends an admin event. */
  async record(actor: Actor, action: string, target: { type?: string; id?: string; tenantId?: string | null }, detail?: unknown): Promise<void> {
    await this.k
      .insertInto('admin_events')
      .values({
        ts: Date.now(),
        actor: actor.id.slice(0, 200),
        actor_role: actor.role ?? null,
        action,
        target_type: target.type ?? null,
        target_id: target.id ?? null,
        tenant_id: target.tenantId ?? null,
        source: actor.source?.slice(0, 200) ?? null,
        request_id: actor.requestId?.slice(0, 200) ?? null,
        detail: detail === undefined ? null : JSON.stringify(detail),
      })
      .execute();
  }

  private async changed(ids: string[]): Promise<void> {
    await publishKeyChanges(this.db, ids);
    this.onChange?.(ids);
  }

  // ── tenants ──────────────────────────────────────────────────────────────

  /** Finds a tenant by id or name. */
  async tenant(ref: string): Promise<TenantView | null> {
    // No tenant id or name holds a NUL, and PostgreSQL refuses one in a query (a 500 there).
    if (ref.includes('\0')) return null;
    const r = await this.k.selectFrom('tenants').selectAll().where((eb) => eb.or([eb('id', '=', ref), eb('name', '=', ref)])).executeTakeFirst();
    return r ? tenantView(r) : null;
  }

  /** Like `tenant` but throws not_found. */
  async mustTenant(ref: string): Promise<TenantView> {
    const t = await this.tenant(ref);
    if (!t) throw new LifecycleError('not_found', `tenant ${JSON.stringify(ref)} not found`);
    return t;
  }

  /** Lists tenants by id. */
  async listTenants(o: { tenantIds?: string[]; limit?: number; cursor?: string } = {}): Promise<Page<TenantView>> {
    const limit = o.limit ?? 100;
    let q = this.k.selectFrom('tenants').selectAll().orderBy('id').limit(limit + 1);
    if (o.cursor) q = q.where('id', '>', o.cursor);
    if (o.tenantIds) q = q.where('id', 'in', o.tenantIds.length ? o.tenantIds : ['']);
    const rows = await q.execute();
    const data = rows.slice(0, limit).map(tenantView);
    return { data, nextCursor: rows.length > limit ? data[data.length - 1]!.id : null };
  }

  /** Creates a tenant. */
  async createTenant(actor: Actor, o: { name: string; tier?: string; scopes?: unknown }): Promise<TenantView> {
    if (await this.tenant(o.name)) throw new LifecycleError('conflict', `tenant ${JSON.stringify(o.name)} already exists`);
    const id = 'ten_' + randomId(12);
    await this.k
      .insertInto('tenants')
      .values({ id, name: o.name, tier: o.tier ?? null, scopes: o.scopes === undefined ? null : JSON.stringify(o.scopes), created_at: Date.now() })
      .execute();
    await this.record(actor, 'tenant.create', { type: 'tenant', id, tenantId: id }, { name: o.name, tier: o.tier ?? null });
    return (await this.tenant(id))!;
  }

  /** Changes a tenant's status, tier or scopes; its keys are re-read everywhere. */
  async updateTenant(actor: Actor, ref: string, patch: { status?: 'active' | 'suspended'; tier?: string | null; scopes?: unknown | null }): Promise<TenantView> {
    const t = await this.mustTenant(ref);
    const set: Record<string, unknown> = {};
    if (patch.status !== undefined) set.status = patch.status;
    if (patch.tier !== undefined) set.tier = patch.tier;
    if (patch.scopes !== undefined) set.scopes = patch.scopes === null ? null : JSON.stringify(patch.scopes);
    if (Object.keys(set).length === 0) return t;
    await this.k.updateTable('tenants').set(set).where('id', '=', t.id).execute();
    await this.changed(await this.tenantKeyIds(t.id));
    await this.record(actor, 'tenant.update', { type: 'tenant', id: t.id, tenantId: t.id }, patch);
    return (await this.tenant(t.id))!;
  }

  private async tenantKeyIds(tenantId: string): Promise<string[]> {
    return (await this.k.selectFrom('api_keys').select('id').where('tenant_id', '=', tenantId).execute()).map((r) => r.id);
  }

  // ── keys ─────────────────────────────────────────────────────────────────

  /** Creates a key; the full key is returned once. The tenant must exist unless `createTenant`. */
  async createKey(actor: Actor, o: NewKeyInput, createTenant = true): Promise<{ key: string; view: KeyView }> {
    if (!createTenant) await this.mustTenant(o.tenant);
    const t = await this.tenant(o.tenant);
    const k = await createKey(this.k, this.pepper, {
      tenant: t?.name ?? o.tenant,
      name: o.name,
      createdBy: actor.id,
      ...(o.owner !== undefined ? { owner: o.owner } : {}),
      ...(o.scopes !== undefined ? { scopes: o.scopes } : {}),
      ...(o.tier !== undefined ? { tier: o.tier } : {}),
      ...(o.expiresAt !== undefined ? { expiresAt: o.expiresAt } : {}),
    });
    if (!t) await this.record(actor, 'tenant.create', { type: 'tenant', id: k.tenantId, tenantId: k.tenantId }, { name: k.tenant, implicit: true });
    await this.record(actor, 'key.create', { type: 'api_key', id: k.id, tenantId: k.tenantId }, { name: o.name, tier: o.tier ?? null, expiresAt: o.expiresAt ?? null });
    return { key: k.key, view: (await this.key(k.id))! };
  }

  /** One key, or null. */
  async key(id: string): Promise<KeyView | null> {
    if (id.includes('\0')) return null; // as in `tenant`
    const r = await keyQuery(this.k).where('api_keys.id', '=', id).executeTakeFirst();
    return r ? keyView(r as KeyRow) : null;
  }

  /** Like `key` but throws not_found. */
  async mustKey(id: string): Promise<KeyView> {
    const k = await this.key(id);
    if (!k) throw new LifecycleError('not_found', `key ${JSON.stringify(id)} not found`);
    return k;
  }

  /** Lists keys by id (cursor pagination); status filters on the effective state. */
  async listKeys(f: KeyFilter = {}): Promise<Page<KeyView>> {
    const limit = f.limit ?? 100;
    const now = Date.now();
    const out: KeyView[] = [];
    let cursor = f.cursor;
    // Status is derived from several columns and the clock, so filter while paging.
    for (;;) {
      let q = keyQuery(this.k).orderBy('api_keys.id').limit(limit + 1);
      if (cursor) q = q.where('api_keys.id', '>', cursor);
      if (f.tenantId) q = q.where('api_keys.tenant_id', '=', f.tenantId);
      if (f.tenantIds) q = q.where('api_keys.tenant_id', 'in', f.tenantIds.length ? f.tenantIds : ['']);
      if (f.status === 'revoked') q = q.where('api_keys.status', '=', 'revoked');
      const rows = (await q.execute()) as KeyRow[];
      for (const r of rows.slice(0, limit)) {
        const v = keyView(r, now);
        cursor = v.id;
        if (!f.status || v.status === f.status) out.push(v);
        if (out.length === limit) return { data: out, nextCursor: v.id };
      }
      if (rows.length <= limit) return { data: out, nextCursor: null };
    }
  }

  /**
   * Rotates a key: issues a successor with the same tenant, name, scopes and tier; the old key
   * keeps working for `graceSeconds`, then fails.
   */
  async rotateKey(actor: Actor, id: string, graceSeconds: number): Promise<{ key: string; view: KeyView; previous: KeyView }> {
    const old = await this.mustKey(id);
    if (old.status !== 'active') throw new LifecycleError('conflict', `key ${id} is ${old.status}; only active keys can be rotated`);
    const k = await createKey(this.k, this.pepper, {
      tenant: old.tenant,
      name: old.name,
      createdBy: actor.id,
      ...(old.owner ? { owner: old.owner } : {}),
      ...(old.scopes != null ? { scopes: old.scopes } : {}),
      ...(old.tier ? { tier: old.tier } : {}),
      ...(old.expiresAt ? { expiresAt: old.expiresAt } : {}),
    });
    const graceUntil = Date.now() + graceSeconds * 1000;
    const upd = await this.k
      .updateTable('api_keys')
      .set({ status: 'rotated', successor_id: k.id, grace_until: graceUntil })
      .where('id', '=', id)
      .where('status', '=', 'active')
      .executeTakeFirst();
    if (Number(upd.numUpdatedRows) !== 1) {
      await this.k.deleteFrom('api_keys').where('id', '=', k.id).execute();
      throw new LifecycleError('conflict', `key ${id} changed concurrently`);
    }
    await this.changed([id]);
    await this.record(actor, 'key.rotate', { type: 'api_key', id, tenantId: old.tenantId }, { successorId: k.id, graceUntil });
    return { key: k.key, view: (await this.key(k.id))!, previous: (await this.key(id))! };
  }

  /** Revokes a key immediately (on every instance within the propagation bound). */
  async revokeKey(actor: Actor, id: string, reason?: string): Promise<KeyView> {
    const old = await this.mustKey(id);
    if (old.status === 'revoked') return old;
    await this.k
      .updateTable('api_keys')
      .set({ status: 'revoked', revoked_at: Date.now(), revoked_reason: reason?.slice(0, 500) ?? null })
      .where('id', '=', id)
      .execute();
    await this.changed([id]);
    await this.record(actor, 'key.revoke', { type: 'api_key', id, tenantId: old.tenantId }, { reason: reason ?? null });
    return (await this.key(id))!;
  }

  /** Sets a key's expiry (now by default). */
  async expireKey(actor: Actor, id: string, at = Date.now()): Promise<KeyView> {
    const old = await this.mustKey(id);
    await this.k.updateTable('api_keys').set({ expires_at: at }).where('id', '=', id).execute();
    await this.changed([id]);
    await this.record(actor, 'key.expire', { type: 'api_key', id, tenantId: old.tenantId }, { expiresAt: at });
    return (await this.key(id))!;
  }

  /** Changes a key's name, owner, scopes or tier. */
  async updateKey(actor: Actor, id: string, patch: { name?: string; owner?: string | null; scopes?: unknown | null; tier?: string | null }): Promise<KeyView> {
    const old = await this.mustKey(id);
    const set: Record<string, unknown> = {};
    if (patch.name !== undefined) set.name = patch.name;
    if (patch.owner !== undefined) set.owner = patch.owner;
    if (patch.tier !== undefined) set.tier = patch.tier;
    if (patch.scopes !== undefined) set.scopes = patch.scopes === null ? null : JSON.stringify(patch.scopes);
    if (Object.keys(set).length === 0) return old;
    await this.k.updateTable('api_keys').set(set).where('id', '=', id).execute();
    await this.changed([id]);
    await this.record(actor, 'key.update', { type: 'api_key', id, tenantId: old.tenantId }, patch);
    return (await this.key(id))!;
  }

  /** Incident response: revokes every non-revoked key of a tenant; returns how many. */
  async revokeTenantKeys(actor: Actor, ref: string, reason?: string): Promise<{ tenant: TenantView; revoked: number; keyIds: string[] }> {
    const t = await this.mustTenant(ref);
    const ids = (await this.k.selectFrom('api_keys').select('id').where('tenant_id', '=', t.id).where('status', '!=', 'revoked').execute()).map((r) => r.id);
    if (ids.length) {
      await this.k
        .updateTable('api_keys')
        .set({ status: 'revoked', revoked_at: Date.now(), revoked_reason: reason?.slice(0, 500) ?? 'bulk revoke' })
        .where('tenant_id', '=', t.id)
        .where('status', '!=', 'revoked')
        .execute();
      await this.changed(ids);
    }
    await this.record(actor, 'tenant.revoke_keys', { type: 'tenant', id: t.id, tenantId: t.id }, { reason: reason ?? null, count: ids.length });
    return { tenant: t, revoked: ids.length, keyIds: ids };
  }

  // ── admin keys ───────────────────────────────────────────────────────────

  /** Creates an admin key (full key returned once). */
  async createAdminKey(actor: Actor, o: { name: string; role: AdminRole; tenants?: string[]; expiresAt?: number }): Promise<{ id: string; key: string; role: AdminRole }> {
    const tenantIds: string[] = [];
    for (const ref of o.tenants ?? []) tenantIds.push((await this.mustTenant(ref)).id);
    const k = await createAdminKey(this.k, this.pepper, {
      name: o.name,
      role: o.role,
      createdBy: actor.id,
      ...(tenantIds.length ? { tenants: tenantIds } : {}),
      ...(o.expiresAt !== undefined ? { expiresAt: o.expiresAt } : {}),
    });
    await this.record(actor, 'admin_key.create', { type: 'admin_key', id: k.id }, { name: o.name, role: o.role, tenants: tenantIds });
    return k;
  }

  /** Lists admin keys (no hashes). */
  async listAdminKeys(): Promise<Array<{ id: string; name: string; role: string; tenants: string[] | null; status: string; createdBy: string | null; createdAt: number; expiresAt: number | null; lastUsedAt: number | null }>> {
    const rows = await this.k.selectFrom('admin_keys').selectAll().orderBy('id').execute();
    return rows.map((r) => ({
      id: r.id,
      name: r.name,
      role: r.role,
      tenants: r.tenants ? (JSON.parse(r.tenants) as string[]) : null,
      status: r.status,
      createdBy: r.created_by,
      createdAt: Number(r.created_at),
      expiresAt: num(r.expires_at),
      lastUsedAt: num(r.last_used_at),
    }));
  }

  /** Revokes an admin key. */
  async revokeAdminKey(actor: Actor, id: string): Promise<void> {
    const r = await this.k.updateTable('admin_keys').set({ status: 'revoked' }).where('id', '=', id).executeTakeFirst();
    if (Number(r.numUpdatedRows) === 0) throw new LifecycleError('not_found', `admin key ${JSON.stringify(id)} not found`);
    await this.changed([id]);
    await this.record(actor, 'admin_key.revoke', { type: 'admin_key', id });
  }

  // ── events ───────────────────────────────────────────────────────────────

  /** Admin events, newest first. */
  async events(f: { tenantIds?: string[]; tenantId?: string; action?: string; targetId?: string; limit?: number; cursor?: string } = {}): Promise<Page<AdminEventView>> {
    const limit = f.limit ?? 100;
    let q = this.k.selectFrom('admin_events').selectAll().orderBy('id', 'desc').limit(limit + 1);
    if (f.cursor) {
      // An event id from `nextCursor`: decimal digits within 2^53 (anything else would be NaN or
      // out of bigint range in the query: an empty page on SQLite, a 500 on PostgreSQL).
      if (!EVENT_CURSOR.test(f.cursor)) throw new LifecycleError('invalid', 'cursor: expected the nextCursor of a previous page');
      q = q.where('id', '<', Number(f.cursor));
    }
    if (f.tenantId) q = q.where('tenant_id', '=', f.tenantId);
    if (f.tenantIds) q = q.where('tenant_id', 'in', f.tenantIds.length ? f.tenantIds : ['']);
    if (f.action) q = q.where('action', '=', f.action);
    if (f.targetId) q = q.where('target_id', '=', f.targetId);
    const rows = await q.execute();
    const data = rows.slice(0, limit).map((r) => ({
      id: Number(r.id),
      ts: Number(r.ts),
      actor: r.actor,
      actorRole: r.actor_role,
      action: r.action,
      targetType: r.target_type,
      targetId: r.target_id,
      tenantId: r.tenant_id,
      source: r.source,
      requestId: r.request_id,
      detail: json(r.detail),
    }));
    return { data, nextCursor: rows.length > limit ? String(data[data.length - 1]!.id) : null };
  }
}
