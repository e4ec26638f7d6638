/**
 * The admin API as a route table: each route has roles, zod schemas and a handler that works
 * on plain inputs. The fastify module serves it under /admin/v1; the CLI calls the same
 * handlers offline through `dispatchAdmin`, so both give the same answers.
 */
import { z, type ZodTypeAny } from 'zod';
import { GatewayError } from '../../errors.js';
import type { Config } from '../../config/schema.js';
import { findKey, keyState, principalOf } from '../../identity/keys.js';
import { LifecycleError, type Actor, type Lifecycle } from '../../identity/lifecycle.js';
import type { AdminPrincipal, AdminRole } from '../../identity/types.js';
import type { PolicyEngine } from '../../policy/engine.js';
import * as S from './schemas.js';

/** What the handlers need. */
export interface AdminDeps {
  lifecycle: Lifecycle;
  engine: PolicyEngine;
  config: Pick<Config, 'tiers' | 'policy' | 'identity' | 'admin'>;
}

/** One call of a handler. */
export interface AdminCall {
  deps: AdminDeps;
  admin: AdminPrincipal;
  actor: Actor;
  params: Record<string, string>;
  query: any;
  body: any;
}

/** One admin route. */
export interface AdminRoute {
  id: string;
  method: 'GET' | 'POST' | 'PATCH';
  /** Path under the server root, with `:param` segments. */
  path: string;
  summary: string;
  roles: readonly AdminRole[];
  query?: ZodTypeAny;
  body?: ZodTypeAny;
  /** Success status (200 by default). */
  status?: number;
  handler(c: AdminCall): Promise<unknown>;
}

const ALL: readonly AdminRole[] = ['owner', 'operator', 'auditor'];
const WRITE: readonly AdminRole[] = ['owner', 'operator'];
const OWNER: readonly AdminRole[] = ['owner'];
const P = '/admin/v1';

function allowed(admin: AdminPrincipal, tenantId: string): boolean {
  return admin.tenants === null || admin.tenants.includes(tenantId);
}

/** The tenant by id or name, 404 when it does not exist or the admin may not see it. */
async function visibleTenant(c: AdminCall, ref: string) {
  const t = await c.deps.lifecycle.tenant(ref);
  if (!t || !allowed(c.admin, t.id)) throw new GatewayError('PCL_NOT_FOUND', { message: `tenant ${JSON.stringify(ref.slice(0, 100))} not found` });
  return t;
}

/** The key by id, 404 when it does not exist or the admin may not see it. */
async function visibleKey(c: AdminCall, id: string) {
  const k = await c.deps.lifecycle.key(id);
  if (!k || !allowed(c.admin, k.tenantId)) throw new GatewayError('PCL_NOT_FOUND', { message: `key ${JSON.stringify(id.slice(0, 100))} not found` });
  return k;
}

function checkTier(c: AdminCall, tier: string | null | undefined): void {
  // Tiers are the ceiling of a tenant's keys (scopes and limits): only owners assign them.
  if (tier !== undefined && c.admin.role !== 'owner') throw new GatewayError('PCL_FORBIDDEN', { message: 'Only owners assign tiers.', param: 'tier' });
  if (tier != null && !c.deps.engine.tiers().includes(tier)) {
    throw new GatewayError('PCL_INVALID_REQUEST', { message: `unknown tier "${tier}" (configured: ${c.deps.engine.tiers().join(', ') || 'none'})`, param: 'tier' });
  }
}

function pageLimit(c: AdminCall, q: { limit?: number }): number {
  return Math.min(q.limit ?? 100, c.deps.config.admin.maxPageSize);
}

const list = <T>(p: { data: T[]; nextCursor: string | null }) => ({ object: 'list', data: p.data, nextCursor: p.nextCursor });

/** Explains whether a key may perform an operation (used by the API and `portcullis policy check`). */
export async function explainPolicy(deps: AdminDeps, b: z.infer<typeof S.policyCheckBody>): Promise<Record<string, unknown> | null> {
  const rec = await findKey(deps.lifecycle.db.kysely, b.keyId);
  if (!rec) return null;
  const state = keyState(rec, Date.now());
  const p = principalOf(rec);
  const d = deps.engine.authorize(p, {
    operation: b.operation,
    ...(b.model !== undefined ? { model: b.model } : {}),
    ...(b.tools ? { tools: b.tools } : {}),
    ...(b.maxOutputTokens !== undefined ? { maxOutputTokens: b.maxOutputTokens } : {}),
  });
  const keyUsable = (state === 'active' || state === 'grace') && rec.tenantStatus === 'active';
  const explanation = !keyUsable
    ? rec.tenantStatus !== 'active'
      ? `the key's tenant is ${rec.tenantStatus}; requests are refused with 401`
      : `the key is ${state}; requests are refused with 401`
    : d.allow
      ? `allowed by every layer (${d.layers.join(' → ')})`
      : `denied by ${d.layer}: ${d.detail}`;
  return {
    keyId: rec.id,
    tenant: rec.tenantName,
    tenantId: rec.tenantId,
    tier: deps.engine.tierOf(p) ?? null,
    keyStatus: state,
    tenantStatus: rec.tenantStatus,
    allowed: keyUsable && d.allow,
    decision: d,
    explanation,
  };
}

/** Every admin route. */
export const ADMIN_ROUTES: readonly AdminRoute[] = [
  {
    id: 'me',
    method: 'GET',
    path: `${P}/me`,
    summary: 'The calling admin key: id, name, role, tenants',
    roles: ALL,
    handler: async (c) => c.admin,
  },
  {
    id: 'listTenants',
    method: 'GET',
    path: `${P}/tenants`,
    summary: 'List tenants (operators see their tenants only)',
    roles: ALL,
    query: S.pageQuery,
    handler: async (c) =>
      list(await c.deps.lifecycle.listTenants({ limit: pageLimit(c, c.query), ...(c.query.cursor ? { cursor: c.query.cursor } : {}), ...(c.admin.tenants ? { tenantIds: c.admin.tenants } : {}) })),
  },
  {
    id: 'createTenant',
    method: 'POST',
    path: `${P}/tenants`,
    summary: 'Create a tenant',
    roles: OWNER,
    body: S.tenantCreateBody,
    status: 201,
    handler: async (c) => {
      checkTier(c, c.body.tier);
      return c.deps.lifecycle.createTenant(c.actor, c.body);
    },
  },
  {
    id: 'getTenant',
    method: 'GET',
    path: `${P}/tenants/:tenant`,
    summary: 'Show a tenant (by id or name)',
    roles: ALL,
    handler: async (c) => visibleTenant(c, c.params.tenant!),
  },
  {
    id: 'updateTenant',
    method: 'PATCH',
    path: `${P}/tenants/:tenant`,
    summary: "Change a tenant's status (active|suspended), tier or scopes (tier and scopes: owners only)",
    roles: WRITE,
    body: S.tenantPatchBody,
    handler: async (c) => {
      const t = await visibleTenant(c, c.params.tenant!);
      checkTier(c, c.body.tier);
      if (c.body.scopes !== undefined && c.admin.role !== 'owner') throw new GatewayError('PCL_FORBIDDEN', { message: 'Only owners change tenant-wide scopes; operators narrow per key.', param: 'scopes' });
      return c.deps.lifecycle.updateTenant(c.actor, t.id, c.body);
    },
  },
  {
    id: 'revokeTenantKeys',
    method: 'POST',
    path: `${P}/tenants/:tenant/revoke-keys`,
    summary: 'Incident response: revoke every key of a tenant',
    roles: WRITE,
    body: S.reasonBody,
    handler: async (c) => {
      const t = await visibleTenant(c, c.params.tenant!);
      const r = await c.deps.lifecycle.revokeTenantKeys(c.actor, t.id, c.body.reason);
      return { tenant: r.tenant, revoked: r.revoked, keyIds: r.keyIds };
    },
  },
  {
    id: 'listKeys',
    method: 'GET',
    path: `${P}/keys`,
    summary: 'List keys (filter by tenant and effective status)',
    roles: ALL,
    query: S.keyListQuery,
    handler: async (c) => {
      const tenantId = c.query.tenant ? (await visibleTenant(c, c.query.tenant)).id : undefined;
      return list(
        await c.deps.lifecycle.listKeys({
          limit: pageLimit(c, c.query),
          ...(c.query.cursor ? { cursor: c.query.cursor } : {}),
          ...(tenantId ? { tenantId } : {}),
          ...(c.admin.tenants ? { tenantIds: c.admin.tenants } : {}),
          ...(c.query.status ? { status: c.query.status } : {}),
        }),
      );
    },
  },
  {
    id: 'createKey',
    method: 'POST',
    path: `${P}/keys`,
    summary: 'Create a key (the full key is returned once, as `key`)',
    roles: WRITE,
    body: S.keyCreateBody,
    status: 201,
    handler: async (c) => {
      const b = c.body as z.infer<typeof S.keyCreateBody>;
      checkTier(c, b.tier);
      if (c.admin.role !== 'owner') await visibleTenant(c, b.tenant);
      if (b.expiresAt !== undefined && b.expiresInSeconds !== undefined) throw new GatewayError('PCL_INVALID_REQUEST', { message: 'give expiresAt or expiresInSeconds, not both' });
      const expiresAt = b.expiresAt ?? (b.expiresInSeconds ? Date.now() + b.expiresInSeconds * 1000 : undefined);
      const r = await c.deps.lifecycle.createKey(
        c.actor,
        {
          tenant: b.tenant,
          name: b.name,
          ...(b.owner !== undefined ? { owner: b.owner } : {}),
          ...(b.scopes !== undefined ? { scopes: b.scopes } : {}),
          ...(b.tier !== undefined ? { tier: b.tier } : {}),
          ...(expiresAt !== undefined ? { expiresAt } : {}),
        },
        c.admin.role === 'owner',
      );
      return { ...r.view, key: r.key };
    },
  },
  {
    id: 'getKey',
    method: 'GET',
    path: `${P}/keys/:id`,
    summary: 'Show a key (never its secret)',
    roles: ALL,
    handler: async (c) => visibleKey(c, c.params.id!),
  },
  {
    id: 'updateKey',
    method: 'PATCH',
    path: `${P}/keys/:id`,
    summary: "Change a key's name, owner, scopes or tier (tier: owners only)",
    roles: WRITE,
    body: S.keyPatchBody,
    handler: async (c) => {
      await visibleKey(c, c.params.id!);
      checkTier(c, c.body.tier);
      return c.deps.lifecycle.updateKey(c.actor, c.params.id!, c.body);
    },
  },
  {
    id: 'rotateKey',
    method: 'POST',
    path: `${P}/keys/:id/rotate`,
    summary: 'Rotate a key: returns the successor (once); the old key works until the grace deadline',
    roles: WRITE,
    body: S.rotateBody,
    handler: async (c) => {
      await visibleKey(c, c.params.id!);
      const r = await c.deps.lifecycle.rotateKey(c.actor, c.params.id!, c.body.graceSeconds ?? c.deps.config.identity.rotationGraceSeconds);
      return { ...r.view, key: r.key, previous: r.previous };
    },
  },
  {
    id: 'revokeKey',
    method: 'POST',
    path: `${P}/keys/:id/revoke`,
    summary: 'Revoke a key now (every instance within about a second)',
    roles: WRITE,
    body: S.reasonBody,
    handler: async (c) => {
      await visibleKey(c, c.params.id!);
      return c.deps.lifecycle.revokeKey(c.actor, c.params.id!, c.body.reason);
    },
  },
  {
    id: 'expireKey',
    method: 'POST',
    path: `${P}/keys/:id/expire`,
    summary: 'Set the expiry of a key (now by default)',
    roles: WRITE,
    body: S.expireBody,
    handler: async (c) => {
      await visibleKey(c, c.params.id!);
      return c.deps.lifecycle.expireKey(c.actor, c.params.id!, c.body.at ?? Date.now());
    },
  },
  {
    id: 'getPolicy',
    method: 'GET',
    path: `${P}/policy`,
    summary: 'Tiers (scope templates), defaults, data boundaries and whether Cedar is loaded',
    roles: ALL,
    handler: async (c) => ({
      tiers: c.deps.config.tiers,
      defaults: c.deps.config.policy.defaults,
      defaultTier: c.deps.config.policy.defaultTier ?? null,
      dataBoundaries: c.deps.config.policy.dataBoundaries,
      cedar: c.deps.engine.cedar,
    }),
  },
  {
    id: 'listTiers',
    method: 'GET',
    path: `${P}/tiers`,
    summary: 'Tier scope templates',
    roles: ALL,
    handler: async (c) => ({ object: 'list', data: Object.entries(c.deps.config.tiers).map(([name, scopes]) => ({ name, scopes })), nextCursor: null }),
  },
  {
    id: 'checkPolicy',
    method: 'POST',
    path: `${P}/policy/check`,
    summary: 'Explain whether a key may perform an operation on a model',
    roles: ALL,
    body: S.policyCheckBody,
    handler: async (c) => {
      const k = await c.deps.lifecycle.key(c.body.keyId);
      if (!k || !allowed(c.admin, k.tenantId)) throw new GatewayError('PCL_NOT_FOUND', { message: 'key not found' });
      return explainPolicy(c.deps, c.body);
    },
  },
  {
    id: 'listEvents',
    method: 'GET',
    path: `${P}/events`,
    summary: 'Admin events (who, when, what, from where), newest first',
    roles: ALL,
    query: S.eventsQuery,
    handler: async (c) => {
      const tenantId = c.query.tenant ? (await visibleTenant(c, c.query.tenant)).id : undefined;
      return list(
        await c.deps.lifecycle.events({
          limit: pageLimit(c, c.query),
          ...(c.query.cursor ? { cursor: c.query.cursor } : {}),
          ...(tenantId ? { tenantId } : {}),
          ...(c.admin.tenants ? { tenantIds: c.admin.tenants } : {}),
          ...(c.query.action ? { action: c.query.action } : {}),
          ...(c.query.target ? { targetId: c.query.target } : {}),
        }),
      );
    },
  },
  {
    id: 'listAdminKeys',
    method: 'GET',
    path: `${P}/admin-keys`,
    summary: 'List admin keys',
    roles: ['owner', 'auditor'],
    handler: async (c) => ({ object: 'list', data: await c.deps.lifecycle.listAdminKeys(), nextCursor: null }),
  },
  {
    id: 'createAdminKey',
    method: 'POST',
    path: `${P}/admin-keys`,
    summary: 'Create an admin key (owner, operator with tenants, or auditor); returned once',
    roles: OWNER,
    body: S.adminKeyCreateBody,
    status: 201,
    handler: async (c) => c.deps.lifecycle.createAdminKey(c.actor, c.body),
  },
  {
    id: 'revokeAdminKey',
    method: 'POST',
    path: `${P}/admin-keys/:id/revoke`,
    summary: 'Revoke an admin key',
    roles: OWNER,
    body: S.emptyBody,
    handler: async (c) => {
      await c.deps.lifecycle.revokeAdminKey(c.actor, c.params.id!);
      return { id: c.params.id, status: 'revoked' };
    },
  },
];

/**
 * Messages of the plain Errors that key and admin-key creation throw for bad input
 * (src/identity/keys.ts, admin-keys.ts): the only plain-Error texts a client may see. Anything
 * else (a database error above all: its text names types, encodings and values) is a 500 whose
 * detail goes to the server log only.
 */
const INPUT_ERRORS = new Set(['tenant must be 1-200 characters', 'name must be 1-200 characters', 'an operator admin key needs at least one tenant', 'only operator admin keys are limited to tenants']);

/** Maps lifecycle and validation errors to GatewayErrors; anything else is left to become a 500. */
export function toAdminError(e: unknown): unknown {
  if (e instanceof LifecycleError) {
    const code = e.kind === 'not_found' ? 'PCL_NOT_FOUND' : e.kind === 'conflict' ? 'PCL_CONFLICT' : e.kind === 'forbidden' ? 'PCL_FORBIDDEN' : 'PCL_INVALID_REQUEST';
    return new GatewayError(code, { message: e.message });
  }
  if (e instanceof z.ZodError) {
    const param = e.issues[0]?.path.join('.');
    return new GatewayError('PCL_INVALID_REQUEST', { ...(param ? { param } : {}), message: e.issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`).join('; ').slice(0, 1000) });
  }
  if (e instanceof Error && e.constructor === Error && INPUT_ERRORS.has(e.message)) {
    return new GatewayError('PCL_INVALID_REQUEST', { message: e.message });
  }
  return e;
}

/**
 * The path of the first string (or object key) holding a NUL character in an admin input, or
 * null. PostgreSQL's text types cannot hold U+0000 (SQLite would store it): refused up front so
 * both stores answer the same 400 and no database error is ever the answer to client input.
 */
function nulAt(v: unknown, path: string, depth = 0): string | null {
  if (typeof v === 'string') return v.includes('\0') ? path : null;
  // Deeper than any admin schema goes: zod refuses such a value before it reaches the database.
  if (!v || typeof v !== 'object' || depth > 64) return null;
  const at = (k: string) => (path ? `${path}.${k}` : k);
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      const p = nulAt(v[i], at(String(i)), depth + 1);
      if (p) return p;
    }
    return null;
  }
  for (const [k, x] of Object.entries(v)) {
    if (k.includes('\0')) return at(k.replace(/\0/g, '\\u0000').slice(0, 100));
    const p = nulAt(x, at(k), depth + 1);
    if (p) return p;
  }
  return null;
}

/** Refuses a NUL character anywhere in a route's params, query or body (400 naming the parameter). */
function refuseNul(input: { params?: Record<string, string>; query?: unknown; body?: unknown }): void {
  const at = nulAt(input.params ?? {}, '') ?? nulAt(input.query ?? {}, '') ?? nulAt(input.body ?? {}, '');
  if (at === null) return;
  const param = (at || '(body)').slice(0, 200);
  throw new GatewayError('PCL_INVALID_REQUEST', { param, message: `${param}: must not contain a NUL character` });
}

/** Runs one route for an admin: role check, validation, handler. Throws GatewayError. */
export async function runAdminRoute(route: AdminRoute, deps: AdminDeps, admin: AdminPrincipal, actor: Actor, input: { params?: Record<string, string>; query?: unknown; body?: unknown }): Promise<unknown> {
  if (!route.roles.includes(admin.role)) {
    await deps.lifecycle.record(actor, 'admin.denied', { type: 'route', id: route.id }, { role: admin.role }).catch(() => {});
    throw new GatewayError('PCL_FORBIDDEN', { message: `The ${admin.role} role may not ${route.summary.charAt(0).toLowerCase()}${route.summary.slice(1)}.` });
  }
  refuseNul(input);
  try {
    const query = route.query ? route.query.parse(input.query ?? {}) : {};
    const body = route.body ? route.body.parse(input.body ?? {}) : {};
    return await route.handler({ deps, admin, actor, params: input.params ?? {}, query, body });
  } catch (e) {
    throw toAdminError(e);
  }
}

/** Finds the route for a method and concrete path among `routes` (`:name` segments become params). */
export function matchRoute<R extends { method: string; path: string }>(routes: readonly R[], method: string, path: string): { route: R; params: Record<string, string> } | null {
  const parts = path.split('?')[0]!.split('/');
  for (const route of routes) {
    if (route.method !== method) continue;
    const rp = route.path.split('/');
    if (rp.length !== parts.length) continue;
    const params: Record<string, string> = {};
    let ok = true;
    for (let i = 0; i < rp.length && ok; i++) {
      if (rp[i]!.startsWith(':')) {
        try {
          params[rp[i]!.slice(1)] = decodeURIComponent(parts[i]!);
        } catch {
          ok = false; // malformed %-escape: no such route
        }
      } else ok = rp[i] === parts[i];
    }
    if (ok) return { route, params };
  }
  return null;
}

/** Finds the admin route for a method and concrete path, with its params. */
export function matchAdminRoute(method: string, path: string): { route: AdminRoute; params: Record<string, string> } | null {
  return matchRoute(ADMIN_ROUTES, method, path);
}

/** Calls the admin API in-process (offline CLI): same routes, roles, validation and audit. */
export async function dispatchAdmin(deps: AdminDeps, admin: AdminPrincipal, actor: Actor, method: string, path: string, input: { query?: unknown; body?: unknown } = {}): Promise<unknown> {
  const m = matchAdminRoute(method, path);
  if (!m) throw new GatewayError('PCL_ROUTE_NOT_FOUND');
  return runAdminRoute(m.route, deps, admin, actor, { params: m.params, ...input });
}
