/**
 * `portcullis approvals list|approve|deny`: the human-in-the-loop queue of tool calls, offline
 * against the data dir / database, or with `--url` and an admin key against a running gateway.
 */
import type { Command } from 'commander';
import { decideTicket, listTickets, type ApprovalView } from '../guards/approvals/store.js';
import { cliActor, httpAdminClient } from '../server/admin/client.js';
import { openDb } from '../store/db.js';
import { configFromOptions, fail } from './common.js';
import { adminOptions, printTable, type AdminCliOptions } from './keys.js';

const STATUSES = ['pending', 'approved', 'denied', 'used', 'expired'] as const;

/** The operations the command needs, over HTTP or offline. */
interface ApprovalsClient {
  list(q: { status?: string; tenant?: string; limit?: number }): Promise<ApprovalView[]>;
  decide(id: string, decision: 'approved' | 'denied', reason?: string): Promise<ApprovalView>;
  close(): Promise<void>;
}

async function clientFor(o: AdminCliOptions): Promise<ApprovalsClient> {
  if (o.url) {
    const key = o.adminKey ?? process.env.PORTCULLIS_ADMIN_KEY;
    if (!key) throw new Error('--url needs --admin-key or PORTCULLIS_ADMIN_KEY');
    const c = httpAdminClient(o.url, key);
    return {
      list: async (q) => (await c.call('GET', '/admin/v1/approvals', { query: q })).data,
      decide: (id, d, reason) => c.call('POST', `/admin/v1/approvals/${encodeURIComponent(id)}/${d === 'approved' ? 'approve' : 'deny'}`, { body: reason ? { reason } : {} }),
      close: () => c.close(),
    };
  }
  const config = configFromOptions(o);
  const db = await openDb(config.store.kind === 'cluster' ? { postgresUrl: config.store.postgresUrl! } : { dataDir: config.dataDir });
  const actor = cliActor();
  return {
    list: (q) => listTickets(db.kysely, { tenantIds: q.tenant ? [q.tenant] : null, ...(q.status ? { status: q.status as (typeof STATUSES)[number] } : {}), ...(q.limit ? { limit: q.limit } : {}) }),
    decide: (id, d, reason) => decideTicket(db.kysely, id, d, actor, reason),
    close: () => db.close(),
  };
}

async function withApprovals(o: AdminCliOptions, fn: (c: ApprovalsClient) => Promise<void>): Promise<void> {
  let c: ApprovalsClient | undefined;
  try {
    c = await clientFor(o);
    await fn(c);
  } catch (e) {
    await c?.close().catch(() => {});
    fail(e);
  }
  await c?.close();
}

const iso = (ms: number | null) => (ms ? new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z') : '-');

function show(o: AdminCliOptions, v: ApprovalView): void {
  if (o.json) process.stdout.write(JSON.stringify(v) + '\n');
  else process.stdout.write(`${v.id} ${v.status} tool=${v.tool} tenant=${v.tenantId} reason=${v.reason}${v.decidedBy ? ` by=${v.decidedBy}` : ''}\n`);
}

/** Registers `approvals`. */
export function registerApprovalsCommand(program: Command): void {
  const a = program.command('approvals').description('tool calls waiting for a human (offline, or --url against a running gateway)');
  adminOptions(
    a
      .command('list')
      .description('list approval tickets (default: pending)')
      .option('--status <status>', STATUSES.join(' | '), 'pending')
      .option('--tenant <id>', 'only this tenant id')
      .option('--limit <n>', 'at most this many', '100'),
  ).action((o: AdminCliOptions & { status: string; tenant?: string; limit: string }) =>
    withApprovals(o, async (c) => {
      if (!(STATUSES as readonly string[]).includes(o.status)) throw new Error(`--status: expected one of ${STATUSES.join('|')}`);
      const limit = Number(o.limit);
      if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new Error('--limit: expected 1-1000');
      const rows = await c.list({ status: o.status, ...(o.tenant ? { tenant: o.tenant } : {}), limit });
      if (o.json) return void process.stdout.write(JSON.stringify({ data: rows }) + '\n');
      printTable(
        rows.map((r) => ({ ...r, arguments: (r.arguments ?? '-').slice(0, 60), created: iso(r.createdAt), expires: iso(r.expiresAt) })),
        ['id', 'status', 'tenantId', 'tool', 'reason', 'arguments', 'created', 'expires'],
      );
    }),
  );
  for (const [verb, decision] of [
    ['approve', 'approved'],
    ['deny', 'denied'],
  ] as const) {
    adminOptions(a.command(verb).argument('<ticket>', 'ticket id (apr_…)').description(`${verb} a pending tool call`).option('--reason <text>', 'why (audited)')).action((id: string, o: AdminCliOptions & { reason?: string }) =>
      withApprovals(o, async (c) => show(o, await c.decide(id, decision, o.reason))),
    );
  }
}
