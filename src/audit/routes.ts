/**
 * The audit and usage admin API as plain handlers (served by the audit module under /admin/v1
 * and called offline by the CLI): search, one event, payload decryption, purge, usage report.
 */
import { z } from 'zod';
import type { Kysely } from 'kysely';
import { GatewayError } from '../errors.js';
import type { AdminPrincipal, AdminRole } from '../identity/types.js';
import type { Database } from '../store/schema.js';
import { open, type TenantKeys } from './crypto.js';
import { TS_MAX, type AuditStore } from './store.js';
import { matchRoute } from '../server/admin/routes.js';

/** What the handlers need. */
export interface AuditApiDeps {
  store: AuditStore;
  db: Kysely<Database>;
  /** Per-tenant data keys (undefined when no master key is configured). */
  keys?: TenantKeys;
  maxPageSize: number;
  /** Event retention in days (0 = forever), used by purge. */
  retentionDays: number;
  /** Record searches, reads and usage queries as admin events (audit.recordReads; default true). */
  recordReads?: boolean;
}

/**
 * Records a read of the trail before its answer is returned: who looked, at what (filters or event
 * id), how much came back — never the results. A read that cannot be recorded is not answered.
 */
async function recordRead(deps: AuditApiDeps, actor: AuditActor, action: string, target: { type: string; id: string; tenantId?: string | null }, detail: Record<string, unknown>): Promise<void> {
  if (deps.recordReads === false) return;
  await recordAdminEvent(deps.db, actor, action, target, detail);
}

/** The filters of a query as recorded (defined ones only). */
const filters = (q: Record<string, unknown>): Record<string, unknown> => Object.fromEntries(Object.entries(q).filter(([, v]) => v !== undefined));

/** Who calls (admin key id, role, source address, request id). */
export interface AuditActor {
  id: string;
  role: string;
  source?: string;
  requestId?: string;
}

/** One audit API route. */
export interface AuditRoute {
  id: string;
  method: 'GET' | 'POST';
  path: string;
  summary: string;
  roles: readonly AdminRole[];
  handler(deps: AuditApiDeps, admin: AdminPrincipal, actor: AuditActor, params: Record<string, string>, query: Record<string, unknown>): Promise<unknown>;
}

const REL = /^(\d+)\s*(s|m|h|d|w)$/;
const UNIT_MS = { s: 1e3, m: 6e4, h: 36e5, d: 864e5, w: 6048e5 } as const;
/**
 * Parses a time: epoch milliseconds (digits only, any number of them), an age such as `90s`,
 * `15m`, `24h`, `7d`, `2w` (now minus that), or an ISO 8601 date/time. Anything else, and a time
 * more than TS_MAX from the epoch (`999999999999d`), is a 400 naming `param`.
 */
export function parseTime(v: string, now = Date.now(), param = 'time'): number {
  const s = v.trim();
  const r = REL.exec(s);
  const t = r ? now - Number(r[1]) * UNIT_MS[r[2] as keyof typeof UNIT_MS] : /^\d+$/.test(s) ? Number(s) : Date.parse(s);
  if (!Number.isFinite(t)) throw new GatewayError('PCL_INVALID_REQUEST', { param, message: `${param}: invalid time ${JSON.stringify(s.slice(0, 50))}: expected ISO 8601, epoch milliseconds or an age like 24h or 7d` });
  if (Math.abs(t) > TS_MAX) throw new GatewayError('PCL_INVALID_REQUEST', { param, message: `${param}: time ${JSON.stringify(s.slice(0, 50))} is out of range (at most ${TS_MAX} ms from 1970-01-01)` });
  return t;
}

/** The `since`/`until` of a query as epoch milliseconds; 400 when `since` is later than `until`. */
function timeRange(q: { since?: string | undefined; until?: string | undefined }, now = Date.now()): { since?: number; until?: number } {
  const out: { since?: number; until?: number } = {};
  if (q.since) out.since = parseTime(q.since, now, 'since');
  if (q.until) out.until = parseTime(q.until, now, 'until');
  if (out.since !== undefined && out.until !== undefined && out.since > out.until) {
    throw new GatewayError('PCL_INVALID_REQUEST', { param: 'since', message: `since (${new Date(out.since).toISOString()}) is later than until (${new Date(out.until).toISOString()})` });
  }
  return out;
}

/** A text filter: 1–200 characters, no NUL (PostgreSQL's text types cannot hold one: it would be a 500 there). */
const str = z.string().min(1).max(200).refine((s) => !s.includes('\0'), 'must not contain a NUL character');
const searchQuery = z
  .object({
    tenant: str.optional(),
    key: str.optional(),
    since: str.optional(),
    until: str.optional(),
    category: str.optional(),
    status: z.string().regex(/^(\d{3}|[1-5]xx|ok|error)$/i, 'expected a status (403), a class (4xx), ok or error').optional(),
    kind: z.enum(['request', 'admin']).optional(),
    requestId: str.optional(),
    action: str.optional(),
    cursor: z.string().max(500).optional(),
    // Decimal digits only: `0x10`, `1e3` or ` 5` are refused rather than read as numbers.
    limit: z.string().regex(/^\d{1,6}$/, 'expected a decimal integer from 1 to 10000').pipe(z.coerce.number().int().min(1).max(10_000)).optional(),
  })
  .strict();
const usageQuery = z
  .object({
    tenant: str.optional(),
    key: str.optional(),
    model: str.optional(),
    since: str.optional(),
    until: str.optional(),
    groupBy: z
      .string()
      .regex(/^(day|tenant|key|model)(,(day|tenant|key|model))*$/, 'expected a comma list of day, tenant, key, model')
      .optional(),
  })
  .strict();

function zodFail(e: z.ZodError): GatewayError {
  const param = e.issues[0]?.path.join('.');
  return new GatewayError('PCL_INVALID_REQUEST', { ...(param ? { param } : {}), message: e.issues.map((i) => `${i.path.join('.') || '(query)'}: ${i.message}`).join('; ').slice(0, 500) });
}

async function tenantId(deps: AuditApiDeps, ref: string): Promise<string | undefined> {
  const t = await deps.db.selectFrom('tenants').select('id').where((eb) => eb.or([eb('id', '=', ref), eb('name', '=', ref)])).executeTakeFirst();
  return t?.id;
}

/** The tenants an admin may see for a request filtered by `ref` (undefined = all). */
async function scope(deps: AuditApiDeps, admin: AdminPrincipal, ref: string | undefined): Promise<string[] | undefined> {
  if (ref !== undefined) {
    const id = (await tenantId(deps, ref)) ?? ref; // events of a deleted tenant stay searchable by id
    if (admin.tenants && !admin.tenants.includes(id)) throw new GatewayError('PCL_NOT_FOUND', { message: `tenant ${JSON.stringify(ref.slice(0, 100))} not found` });
    return [id];
  }
  return admin.tenants ? [...admin.tenants] : undefined;
}

/** Records an admin action in `admin_events` (bridged into the audit trail). */
export async function recordAdminEvent(db: Kysely<Database>, actor: AuditActor, action: string, target: { type: string; id: string; tenantId?: string | null }, detail?: unknown): Promise<void> {
  await db
    .insertInto('admin_events')
    .values({
      ts: Date.now(),
      actor: actor.id.slice(0, 200),
      actor_role: actor.role,
      action,
      target_type: target.type,
      target_id: target.id.slice(0, 200),
      tenant_id: target.tenantId ?? null,
      source: actor.source?.slice(0, 200) ?? null,
      request_id: actor.requestId?.slice(0, 200) ?? null,
      detail: detail === undefined ? null : JSON.stringify(detail),
    })
    .execute();
}

async function visibleEvent(deps: AuditApiDeps, admin: AdminPrincipal, id: string) {
  // No event id holds a NUL (and PostgreSQL refuses one in a query: a 500 there).
  const ev = id.includes('\0') ? undefined : await deps.store.get(id);
  if (!ev || (admin.tenants && (!ev.tenantId || !admin.tenants.includes(ev.tenantId)))) throw new GatewayError('PCL_NOT_FOUND', { message: 'audit event not found' });
  return ev;
}

const ALL: readonly AdminRole[] = ['owner', 'operator', 'auditor'];
const P = '/admin/v1';

/** The audit and usage routes. */
export const AUDIT_ROUTES: readonly AuditRoute[] = [
  {
    id: 'searchAudit',
    method: 'GET',
    path: `${P}/audit`,
    summary: 'Search audit events (newest first, paginated): tenant, key, since, until, category, status, kind, requestId, action',
    roles: ALL,
    async handler(deps, admin, actor, _params, rawQuery) {
      const r = searchQuery.safeParse(rawQuery);
      if (!r.success) throw zodFail(r.error);
      const q = r.data;
      const range = timeRange(q);
      const tenantIds = await scope(deps, admin, q.tenant);
      try {
        const page = await deps.store.search({
          ...(tenantIds ? { tenantIds } : {}),
          ...(q.key ? { keyId: q.key } : {}),
          ...range,
          ...(q.category ? { category: q.category } : {}),
          ...(q.status ? { status: q.status } : {}),
          ...(q.kind ? { kind: q.kind } : {}),
          ...(q.requestId ? { requestId: q.requestId } : {}),
          ...(q.action ? { action: q.action } : {}),
          ...(q.cursor ? { cursor: q.cursor } : {}),
          limit: Math.min(q.limit ?? 100, deps.maxPageSize),
        });
        const { cursor, ...rest } = q;
        await recordRead(deps, actor, 'audit.search', { type: 'audit', id: 'search', tenantId: tenantIds?.length === 1 ? tenantIds[0] : null }, { filters: filters(rest), page: cursor ? 'next' : 'first', returned: page.data.length });
        return { object: 'list', data: page.data, nextCursor: page.nextCursor };
      } catch (e) {
        if (e instanceof Error && /cursor|status:/.test(e.message)) throw new GatewayError('PCL_INVALID_REQUEST', { param: /cursor/.test(e.message) ? 'cursor' : 'status', message: e.message });
        throw e;
      }
    },
  },
  {
    id: 'getAuditEvent',
    method: 'GET',
    path: `${P}/audit/:id`,
    summary: 'One audit event',
    roles: ALL,
    async handler(deps, admin, actor, params) {
      const ev = await visibleEvent(deps, admin, params.id!);
      await recordRead(deps, actor, 'audit.read', { type: 'audit_event', id: ev.id, tenantId: ev.tenantId ?? null }, { kind: ev.kind });
      return ev;
    },
  },
  {
    id: 'decryptAuditPayload',
    method: 'GET',
    path: `${P}/audit/:id/payload`,
    summary: 'Decrypt the captured request/response bodies of an event (owner, auditor; audited)',
    roles: ['owner', 'auditor'],
    async handler(deps, admin, actor, params) {
      const ev = await visibleEvent(deps, admin, params.id!);
      const p = await deps.store.payload(ev.id);
      if (!p || p.expiresAt <= Date.now()) throw new GatewayError('PCL_NOT_FOUND', { message: 'no captured payload for this event (not captured, or purged)' });
      if (!deps.keys) throw new GatewayError('PCL_INVALID_REQUEST', { message: 'payload decryption needs the master key (PORTCULLIS_MASTER_KEY or audit.payloads.masterKeyFile)' });
      // Audit first: a decryption that cannot be recorded does not happen.
      await recordAdminEvent(deps.db, actor, 'audit.payload.decrypt', { type: 'audit_event', id: ev.id, tenantId: p.tenantId }, { requestId: ev.requestId ?? null });
      const key = await deps.keys.keyFor(p.tenantId);
      const dec = (s: string | null, part: string) => (s ? open(key, s, `${ev.id}:${part}`).toString('utf8') : null);
      return { id: ev.id, tenantId: p.tenantId, requestId: ev.requestId ?? null, request: dec(p.request, 'request'), response: dec(p.response, 'response'), expiresAt: p.expiresAt };
    },
  },
  {
    id: 'purgeAudit',
    method: 'POST',
    path: `${P}/audit/purge`,
    summary: 'Delete expired payloads (and events past audit.retentionDays)',
    roles: ['owner'],
    async handler(deps, _admin, actor) {
      const now = Date.now();
      const r = await deps.store.purge(now, deps.retentionDays > 0 ? now - deps.retentionDays * 864e5 : undefined);
      await recordAdminEvent(deps.db, actor, 'audit.purge', { type: 'audit', id: 'purge' }, r);
      return r;
    },
  },
  {
    id: 'usage',
    method: 'GET',
    path: `${P}/usage`,
    summary: 'Requests, tokens and cost per day/tenant/key/model (groupBy=day,key,model,tenant)',
    roles: ALL,
    async handler(deps, admin, actor, _p, rawQuery) {
      const r = usageQuery.safeParse(rawQuery);
      if (!r.success) throw zodFail(r.error);
      const q = r.data;
      const range = timeRange(q);
      const tenantIds = await scope(deps, admin, q.tenant);
      const groupBy = (q.groupBy ?? 'day').split(',') as Array<'day' | 'tenant' | 'key' | 'model'>;
      const rows = await deps.store.usage({
        ...(tenantIds ? { tenantIds } : {}),
        ...(q.key ? { keyId: q.key } : {}),
        ...(q.model ? { model: q.model } : {}),
        ...range,
        groupBy,
      });
      const total = rows.reduce((a, x) => ({ requests: a.requests + x.requests, tokensIn: a.tokensIn + x.tokensIn, tokensOut: a.tokensOut + x.tokensOut, costUsd: Math.round((a.costUsd + x.costUsd) * 1e6) / 1e6 }), { requests: 0, tokensIn: 0, tokensOut: 0, costUsd: 0 });
      await recordRead(deps, actor, 'audit.usage', { type: 'audit', id: 'usage', tenantId: tenantIds?.length === 1 ? tenantIds[0] : null }, { filters: filters(q), rows: rows.length });
      return { object: 'usage', timeZone: deps.store.timeZone, groupBy, data: rows, total };
    },
  },
];

/** Runs a route for an admin: role check (denials recorded), then the handler. */
export async function runAuditRoute(route: AuditRoute, deps: AuditApiDeps, admin: AdminPrincipal, actor: AuditActor, params: Record<string, string>, query: Record<string, unknown>): Promise<unknown> {
  if (!route.roles.includes(admin.role)) {
    await recordAdminEvent(deps.db, actor, 'admin.denied', { type: 'route', id: route.id }, { role: admin.role, ...(params.id ? { target: params.id } : {}) }).catch(() => {});
    throw new GatewayError('PCL_FORBIDDEN', { message: `The ${admin.role} role may not use ${route.id}.` });
  }
  return route.handler(deps, admin, actor, params, query);
}

/** Finds a route by method and path. */
export function matchAuditRoute(method: string, path: string): { route: AuditRoute; params: Record<string, string> } | null {
  return matchRoute(AUDIT_ROUTES, method, path);
}
