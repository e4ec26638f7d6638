/**
 * Approval tickets (the `approvals` table): created when a response carries a tool call that
 * needs a human, decided by an admin (approve/deny), and used once by a retry of the same
 * request carrying the same call. Every transition is also written to `admin_events`.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Kysely, Selectable } from 'kysely';
import type { ApprovalsTable, Database } from '../../store/schema.js';

/** A stored ticket. */
export type ApprovalRow = Selectable<ApprovalsTable>;

/** Ticket states. */
export type ApprovalStatus = 'pending' | 'approved' | 'denied' | 'used';

/** A ticket as shown to admins (arguments included, request hash omitted). */
export interface ApprovalView {
  id: string;
  tenantId: string;
  keyId: string | null;
  subject: string | null;
  requestId: string;
  api: string;
  model: string | null;
  tool: string;
  arguments: string | null;
  reason: string;
  categories: string[];
  status: ApprovalStatus | 'expired';
  createdAt: number;
  expiresAt: number;
  decidedAt: number | null;
  decidedBy: string | null;
  decisionReason: string | null;
  usedAt: number | null;
}

/** sha256 hex of a string. */
export function sha256(s: string): string {
  return createHash('sha256').update(s).digest('hex');
}

function canonical(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(canonical);
  if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return Object.fromEntries(Object.keys(o).sort().map((k) => [k, canonical(o[k])]));
  }
  return v;
}

/** Hash of a request body that identifies "the same request" (stream flags ignored, key order irrelevant). */
export function requestHash(api: string, body: Record<string, unknown>): string {
  const { stream: _s, stream_options: _so, ...rest } = body;
  return sha256(api + '\n' + JSON.stringify(canonical(rest)));
}

/** Hash of a tool call's identity: name and canonical arguments. */
export function callHash(name: string, args: string): string {
  let norm = args;
  try {
    norm = JSON.stringify(canonical(JSON.parse(args)));
  } catch {
    /* keep the raw text */
  }
  return sha256(name + '\n' + norm);
}

/** Public view of a row (expired pending/approved tickets show as `expired`). */
export function viewOf(r: ApprovalRow, now = Date.now()): ApprovalView {
  let cats: string[] = [];
  try {
    cats = JSON.parse(r.categories);
  } catch {
    cats = [];
  }
  const expired = (r.status === 'pending' || r.status === 'approved') && Number(r.expires_at) <= now;
  return {
    id: r.id,
    tenantId: r.tenant_id,
    keyId: r.key_id,
    subject: r.subject,
    requestId: r.request_id,
    api: r.api,
    model: r.model,
    tool: r.tool,
    arguments: r.arguments,
    reason: r.reason,
    categories: cats,
    status: expired ? 'expired' : (r.status as ApprovalStatus),
    createdAt: Number(r.created_at),
    expiresAt: Number(r.expires_at),
    decidedAt: r.decided_at === null ? null : Number(r.decided_at),
    decidedBy: r.decided_by,
    decisionReason: r.decision_reason,
    usedAt: r.used_at === null ? null : Number(r.used_at),
  };
}

/** What a new ticket records. */
export interface NewTicket {
  tenantId: string;
  keyId?: string;
  subject?: string;
  requestId: string;
  requestHash: string;
  api: string;
  model?: string;
  tool: string;
  argumentsHash: string;
  arguments: string;
  reason: string;
  categories: readonly string[];
  ttlMs: number;
  maxStoredArgumentChars: number;
}

/** Who acted on a ticket (for the audit trail). */
export interface ApprovalActor {
  id: string;
  role?: string;
  source?: string;
  requestId?: string;
}

async function audit(db: Kysely<Database>, actor: ApprovalActor, action: string, r: { id: string; tenant_id: string }, detail?: Record<string, unknown>): Promise<void> {
  await db
    .insertInto('admin_events')
    .values({
      ts: Date.now(),
      actor: actor.id.slice(0, 200),
      actor_role: actor.role ?? null,
      action,
      target_type: 'approval',
      target_id: r.id,
      tenant_id: r.tenant_id,
      source: actor.source?.slice(0, 200) ?? null,
      request_id: actor.requestId?.slice(0, 200) ?? null,
      detail: detail === undefined ? null : JSON.stringify(detail),
    })
    .execute();
}

/** Number of pending, unexpired tickets of a tenant. */
export async function countPending(db: Kysely<Database>, tenantId: string, now = Date.now()): Promise<number> {
  const r = await db.selectFrom('approvals').select((eb) => eb.fn.countAll<number>().as('n')).where('tenant_id', '=', tenantId).where('status', '=', 'pending').where('expires_at', '>', now).executeTakeFirst();
  return Number(r?.n ?? 0);
}

/** Creates a pending ticket; returns it. */
export async function createTicket(db: Kysely<Database>, t: NewTicket, now = Date.now()): Promise<ApprovalRow> {
  const row: ApprovalRow = {
    id: 'apr_' + randomBytes(12).toString('hex'),
    tenant_id: t.tenantId,
    key_id: t.keyId ?? null,
    subject: t.subject?.slice(0, 256) ?? null,
    request_id: t.requestId.slice(0, 128),
    request_hash: t.requestHash,
    api: t.api,
    model: t.model?.slice(0, 200) ?? null,
    tool: t.tool.slice(0, 128),
    arguments_hash: t.argumentsHash,
    arguments: t.maxStoredArgumentChars > 0 ? t.arguments.slice(0, t.maxStoredArgumentChars) : null,
    reason: t.reason,
    categories: JSON.stringify(t.categories.slice(0, 50)),
    status: 'pending',
    created_at: now,
    expires_at: now + t.ttlMs,
    decided_at: null,
    decided_by: null,
    decision_reason: null,
    used_at: null,
    used_request_id: null,
  };
  await db.insertInto('approvals').values(row).execute();
  await audit(db, { id: t.subject ?? t.keyId ?? 'gateway', source: 'gateway', requestId: t.requestId }, 'approval.request', row, { tool: row.tool, reason: row.reason });
  return row;
}

/** One ticket by id, or undefined. */
export async function getTicket(db: Kysely<Database>, id: string): Promise<ApprovalRow | undefined> {
  if (!/^apr_[0-9a-f]{24}$/.test(id)) return undefined;
  return db.selectFrom('approvals').selectAll().where('id', '=', id).executeTakeFirst();
}

/** Lists tickets, newest first; `tenantIds` null = all tenants. */
export async function listTickets(db: Kysely<Database>, opts: { tenantIds?: readonly string[] | null; status?: ApprovalStatus | 'expired'; limit?: number } = {}, now = Date.now()): Promise<ApprovalView[]> {
  let q = db.selectFrom('approvals').selectAll().orderBy('created_at', 'desc').limit(Math.min(Math.max(opts.limit ?? 100, 1), 1000));
  if (opts.tenantIds) {
    if (opts.tenantIds.length === 0) return [];
    q = q.where('tenant_id', 'in', [...opts.tenantIds]);
  }
  if (opts.status === 'expired') q = q.where('status', 'in', ['pending', 'approved']).where('expires_at', '<=', now);
  else if (opts.status === 'pending' || opts.status === 'approved') q = q.where('status', '=', opts.status).where('expires_at', '>', now);
  else if (opts.status) q = q.where('status', '=', opts.status);
  return (await q.execute()).map((r) => viewOf(r, now));
}

/** Why a decision was refused. */
export class ApprovalStateError extends Error {
  constructor(readonly reason: 'not_found' | 'not_pending' | 'expired') {
    super(reason === 'not_found' ? 'no such approval ticket' : reason === 'expired' ? 'the approval ticket has expired' : 'the approval ticket is no longer pending');
    this.name = 'ApprovalStateError';
  }
}

/** Approves or denies a pending, unexpired ticket (atomically); returns the updated view. */
export async function decideTicket(db: Kysely<Database>, id: string, decision: 'approved' | 'denied', actor: ApprovalActor, reason?: string, now = Date.now()): Promise<ApprovalView> {
  const row = await getTicket(db, id);
  if (!row) throw new ApprovalStateError('not_found');
  if (row.status !== 'pending') throw new ApprovalStateError('not_pending');
  if (Number(row.expires_at) <= now) throw new ApprovalStateError('expired');
  const res = await db
    .updateTable('approvals')
    .set({ status: decision, decided_at: now, decided_by: actor.id.slice(0, 200), decision_reason: reason?.slice(0, 500) ?? null })
    .where('id', '=', id)
    .where('status', '=', 'pending')
    .where('expires_at', '>', now)
    .executeTakeFirst();
  if (Number(res.numUpdatedRows) !== 1) throw new ApprovalStateError('not_pending');
  await audit(db, actor, decision === 'approved' ? 'approval.approve' : 'approval.deny', row, reason ? { reason: reason.slice(0, 500) } : undefined);
  return viewOf((await getTicket(db, id))!, now);
}

/** The result of presenting a ticket with a retried request (`pending`: this very call, still waiting). */
export type ConsumeResult = 'used' | 'unknown' | 'pending' | 'denied' | 'expired' | 'already_used' | 'mismatch';

/**
 * Uses an approved ticket for exactly this call: same tenant and key, same request, same tool
 * name and arguments, within the TTL, once. Returns `used` when the call may be released.
 */
export async function consumeTicket(
  db: Kysely<Database>,
  id: string,
  m: { tenantId: string; keyId?: string; requestHash: string; tool: string; argumentsHash: string; requestId: string },
  now = Date.now(),
): Promise<ConsumeResult> {
  const row = await getTicket(db, id);
  if (!row || row.tenant_id !== m.tenantId || (row.key_id ?? undefined) !== m.keyId) return 'unknown';
  if (row.status === 'used') return 'already_used';
  if (row.status === 'denied') return 'denied';
  if (Number(row.expires_at) <= now) return 'expired';
  if (row.request_hash !== m.requestHash || row.tool !== m.tool || row.arguments_hash !== m.argumentsHash) return 'mismatch';
  if (row.status === 'pending') return 'pending';
  const res = await db
    .updateTable('approvals')
    .set({ status: 'used', used_at: now, used_request_id: m.requestId.slice(0, 128) })
    .where('id', '=', id)
    .where('status', '=', 'approved')
    .where('expires_at', '>', now)
    .executeTakeFirst();
  if (Number(res.numUpdatedRows) !== 1) return 'already_used';
  await audit(db, { id: row.subject ?? row.key_id ?? 'gateway', source: 'gateway', requestId: m.requestId }, 'approval.use', row, { tool: row.tool });
  return 'used';
}
