/**
 * Admin API of approvals (under /admin/v1/approvals), authenticated with admin keys like the
 * rest of the admin API: owners see and decide everything, operators only their tenants'
 * tickets, auditors may only read.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Kysely } from 'kysely';
import { z } from 'zod';
import { GatewayError } from '../../errors.js';
import type { Identity } from '../../identity/service.js';
import type { AdminPrincipal } from '../../identity/types.js';
import type { Database } from '../../store/schema.js';
import { ApprovalStateError, decideTicket, getTicket, listTickets, viewOf } from './store.js';
import { authenticateAdminRequest } from '../../server/admin/auth.js';

const listQuery = z
  .object({
    status: z.enum(['pending', 'approved', 'denied', 'used', 'expired']).optional(),
    tenant: z.string().max(64).optional(),
    limit: z.coerce.number().int().min(1).max(1000).optional(),
  })
  .strict();
const decisionBody = z.object({ reason: z.string().max(500).optional() }).strict();

function canSee(admin: AdminPrincipal, tenantId: string): boolean {
  return admin.tenants === null || admin.tenants.includes(tenantId);
}

/** Maps a store state error to the client error. */
export function approvalHttpError(e: unknown): unknown {
  if (e instanceof ApprovalStateError) {
    if (e.reason === 'not_found') return new GatewayError('PCL_NOT_FOUND', { message: 'No such approval ticket.' });
    return new GatewayError('PCL_CONFLICT', { message: e.reason === 'expired' ? 'The approval ticket has expired.' : 'The approval ticket is no longer pending.' });
  }
  return e;
}

/** Registers the approvals admin routes. */
export function registerApprovalRoutes(app: FastifyInstance, deps: { db: Kysely<Database>; identity: Identity; enabled: boolean }): void {
  if (!deps.enabled) return;
  const { db, identity } = deps;
  const authenticate = (req: FastifyRequest) => authenticateAdminRequest(identity, req);
  const parse = <T>(schema: z.ZodType<T>, v: unknown): T => {
    const r = schema.safeParse(v ?? {});
    if (!r.success) throw new GatewayError('PCL_INVALID_REQUEST', { message: r.error.issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`).join('; ') });
    return r.data;
  };

  app.get('/admin/v1/approvals', async (req, reply) => {
    const admin = await authenticate(req);
    const q = parse(listQuery, req.query);
    let tenantIds: string[] | null = admin.tenants;
    if (q.tenant) tenantIds = tenantIds === null || tenantIds.includes(q.tenant) ? [q.tenant] : [];
    reply.header('cache-control', 'no-store');
    return { data: await listTickets(db, { tenantIds, ...(q.status ? { status: q.status } : {}), ...(q.limit ? { limit: q.limit } : {}) }) };
  });
  app.get('/admin/v1/approvals/:id', async (req, reply) => {
    const admin = await authenticate(req);
    const row = await getTicket(db, (req.params as { id: string }).id);
    if (!row || !canSee(admin, row.tenant_id)) throw new GatewayError('PCL_NOT_FOUND', { message: 'No such approval ticket.' });
    reply.header('cache-control', 'no-store');
    return viewOf(row);
  });
  for (const [verb, decision] of [
    ['approve', 'approved'],
    ['deny', 'denied'],
  ] as const) {
    app.post(`/admin/v1/approvals/:id/${verb}`, async (req, reply) => {
      const admin = await authenticate(req);
      if (admin.role === 'auditor') throw new GatewayError('PCL_FORBIDDEN', { message: 'Auditors may not decide approvals.' });
      const id = (req.params as { id: string }).id;
      const body = parse(decisionBody, req.body);
      const row = await getTicket(db, id);
      if (!row || !canSee(admin, row.tenant_id)) throw new GatewayError('PCL_NOT_FOUND', { message: 'No such approval ticket.' });
      try {
        const v = await decideTicket(db, id, decision, { id: admin.id, role: admin.role, source: req.ip, requestId: String(req.id) }, body.reason);
        reply.header('cache-control', 'no-store');
        return v;
      } catch (e) {
        throw approvalHttpError(e);
      }
    });
  }
}
