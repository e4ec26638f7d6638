/**
 * `portcullis audit …`: search, show, export (JSON lines), decrypt and purge the audit trail —
 * offline against the data dir / database, or with --url against a running gateway's admin API.
 */
import { createWriteStream } from 'node:fs';
import type { Command } from 'commander';
import { CLI_ADMIN, cliActor, httpAdminClient } from '../server/admin/client.js';
import { openDb } from '../store/db.js';
import { loadMasterKey, TenantKeys } from '../audit/crypto.js';
import { matchAuditRoute, runAuditRoute, type AuditApiDeps } from '../audit/routes.js';
import { AuditStore } from '../audit/store.js';
import { configFromOptions } from './common.js';
import { adminOptions, printTable, type AdminCliOptions } from './keys.js';
import { fail } from './common.js';

/** Calls the audit/usage routes over HTTP or offline. */
export interface AuditClient {
  get(path: string, query?: Record<string, string | undefined>): Promise<any>;
  post(path: string): Promise<any>;
  close(): Promise<void>;
}

/** Opens an audit client for the CLI options (offline runs as the owner `cli`, audited as such). */
export async function auditClientFor(o: AdminCliOptions): Promise<AuditClient> {
  if (o.url) {
    const key = o.adminKey ?? process.env.PORTCULLIS_ADMIN_KEY;
    if (!key) throw new Error('--url needs --admin-key or PORTCULLIS_ADMIN_KEY');
    const c = httpAdminClient(o.url, key);
    return { get: (p, q) => c.call('GET', p, { query: q ?? {} }), post: (p) => c.call('POST', p, { body: {} }), close: () => c.close() };
  }
  const config = configFromOptions(o);
  const db = await openDb(config.store.kind === 'cluster' ? { postgresUrl: config.store.postgresUrl! } : { dataDir: config.dataDir });
  const master = loadMasterKey({ env: process.env, envName: config.audit.payloads.masterKeyEnv, ...(config.audit.payloads.masterKeyFile ? { file: config.audit.payloads.masterKeyFile } : {}) });
  const deps: AuditApiDeps = { store: new AuditStore(db.kysely, config.limits.timeZone), db: db.kysely, ...(master ? { keys: new TenantKeys(db.kysely, master) } : {}), maxPageSize: 10_000, retentionDays: config.audit.retentionDays, recordReads: config.audit.recordReads };
  const admin = CLI_ADMIN;
  const actor = cliActor();
  const call = async (method: 'GET' | 'POST', path: string, query: Record<string, string | undefined> = {}) => {
    const m = matchAuditRoute(method, path);
    if (!m) throw new Error(`unknown route ${method} ${path}`);
    const q = Object.fromEntries(Object.entries(query).filter(([, v]) => v !== undefined));
    return runAuditRoute(m.route, deps, admin, actor, m.params, q);
  };
  return { get: (p, q) => call('GET', p, q), post: (p) => call('POST', p), close: () => db.close() };
}

async function withAudit(o: AdminCliOptions, fn: (c: AuditClient) => Promise<void>): Promise<void> {
  let c: AuditClient | undefined;
  try {
    c = await auditClientFor(o);
    await fn(c);
  } catch (e) {
    await c?.close().catch(() => {});
    fail(e);
  }
  await c?.close();
}

type SearchOpts = AdminCliOptions & { tenant?: string; key?: string; since?: string; until?: string; category?: string; status?: string; kind?: string; requestId?: string; action?: string; limit: string; cursor?: string };

function searchOptions(c: Command): Command {
  return adminOptions(c)
    .option('--tenant <tenant>', 'tenant id or name')
    .option('--key <id>', 'API key id')
    .option('--since <time>', 'ISO time, epoch ms or an age such as 24h, 7d')
    .option('--until <time>', 'ISO time, epoch ms or an age')
    .option('--category <c>', 'finding category (e.g. EMAIL, instruction_override)')
    .option('--status <s>', 'status code (403), class (4xx), ok or error')
    .option('--kind <k>', 'request | admin')
    .option('--request-id <id>', 'request id')
    .option('--action <a>', 'admin action (e.g. key.revoke)');
}

const queryOf = (o: SearchOpts) => ({ tenant: o.tenant, key: o.key, since: o.since, until: o.until, category: o.category, status: o.status, kind: o.kind, requestId: o.requestId, action: o.action });
const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');

/** Registers `audit`. */
export function registerAuditCommand(program: Command): void {
  const a = program.command('audit').description('search and export the audit trail (offline, or --url against a running gateway)');
  searchOptions(a.command('search').description('search audit events, newest first'))
    .option('--limit <n>', 'page size', '50')
    .option('--cursor <c>', 'continue after a previous page')
    .action((o: SearchOpts) =>
      withAudit(o, async (c) => {
        const page = await c.get('/admin/v1/audit', { ...queryOf(o), limit: o.limit, cursor: o.cursor });
        if (o.json) return void process.stdout.write(JSON.stringify(page) + '\n');
        printTable(
          page.data.map((e: any) => ({
            time: iso(e.ts),
            kind: e.kind,
            tenant: e.tenantId,
            key: e.keyId,
            what: e.kind === 'admin' ? `${e.action} ${e.targetId ?? ''}`.trim() : `${e.api ?? ''} ${e.model ?? ''}`.trim(),
            status: e.status,
            guard: e.guardAction,
            categories: (e.categories ?? []).join(',') || undefined,
            tokens: e.tokensIn !== undefined ? `${e.tokensIn}/${e.tokensOut}` : undefined,
            id: e.id,
          })),
          ['time', 'kind', 'tenant', 'key', 'what', 'status', 'guard', 'categories', 'tokens', 'id'],
        );
        if (page.nextCursor) process.stdout.write(`next page: --cursor ${page.nextCursor}\n`);
      }),
    );
  searchOptions(a.command('export').description('export matching events as JSON lines (all pages)'))
    .option('--format <f>', 'jsonl', 'jsonl')
    .option('--out <file>', 'write to a file instead of stdout')
    .action((o: SearchOpts & { format: string; out?: string }) =>
      withAudit(o, async (c) => {
        if (o.format !== 'jsonl') throw new Error('--format: only jsonl is supported');
        const out = o.out ? createWriteStream(o.out, { flags: 'w', mode: 0o600 }) : process.stdout;
        let cursor: string | undefined;
        let n = 0;
        do {
          const page = await c.get('/admin/v1/audit', { ...queryOf(o), limit: '1000', cursor });
          const chunk = page.data.map((e: unknown) => JSON.stringify(e) + '\n').join('');
          if (chunk && !out.write(chunk)) await new Promise<void>((r) => out.once('drain', () => r()));
          n += page.data.length;
          cursor = page.nextCursor ?? undefined;
        } while (cursor);
        if (o.out) {
          await new Promise<void>((r) => (out as ReturnType<typeof createWriteStream>).end(() => r()));
          process.stderr.write(`exported ${n} events to ${o.out}\n`);
        }
      }),
    );
  adminOptions(a.command('show').argument('<id>', 'event id').description('show one event as JSON')).action((id: string, o: AdminCliOptions) =>
    withAudit(o, async (c) => void process.stdout.write(JSON.stringify(await c.get(`/admin/v1/audit/${encodeURIComponent(id)}`), null, 2) + '\n')),
  );
  adminOptions(a.command('decrypt').argument('<id>', 'event id').description('decrypt a captured payload (owner/auditor; the decryption is audited)')).action((id: string, o: AdminCliOptions) =>
    withAudit(o, async (c) => void process.stdout.write(JSON.stringify(await c.get(`/admin/v1/audit/${encodeURIComponent(id)}/payload`), null, 2) + '\n')),
  );
  adminOptions(a.command('purge').description('delete expired payloads and events past audit.retentionDays')).action((o: AdminCliOptions) =>
    withAudit(o, async (c) => {
      const r = await c.post('/admin/v1/audit/purge');
      process.stdout.write(o.json ? JSON.stringify(r) + '\n' : `purged ${r.payloads} payloads, ${r.events} events\n`);
    }),
  );
}
