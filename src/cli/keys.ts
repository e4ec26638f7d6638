/**
 * `portcullis keys …` and `portcullis admin-keys …`: key lifecycle offline against the data dir,
 * or against a running gateway with `--url` and `--admin-key` / PORTCULLIS_ADMIN_KEY.
 */
import type { Command } from 'commander';
import { httpAdminClient, offlineAdminClient, type AdminClient } from '../server/admin/client.js';
import { configFromOptions, fail, type CommonOptions } from './common.js';

/** Options shared by admin-backed commands. */
export interface AdminCliOptions extends CommonOptions {
  url?: string;
  adminKey?: string;
  json?: boolean;
}

/** Adds --config/--data-dir/--url/--admin-key/--json to a command. */
export function adminOptions(c: Command): Command {
  return c
    .option('-c, --config <file>', 'YAML config file (or PORTCULLIS_CONFIG)')
    .option('--data-dir <dir>', 'data directory (default ./data)')
    .option('--url <url>', 'use a running gateway\'s admin API instead of the local store')
    .option('--admin-key <key>', 'admin key for --url (or PORTCULLIS_ADMIN_KEY)')
    .option('--json', 'print JSON');
}

/** Opens the right client for the options. */
export async function adminClientFor(o: AdminCliOptions): Promise<AdminClient> {
  if (o.url) {
    const key = o.adminKey ?? process.env.PORTCULLIS_ADMIN_KEY;
    if (!key) throw new Error('--url needs --admin-key or PORTCULLIS_ADMIN_KEY');
    return httpAdminClient(o.url, key);
  }
  return offlineAdminClient(configFromOptions(o));
}

/** Runs an action with a client, printing failures cleanly. */
export async function withClient(o: AdminCliOptions, fn: (c: AdminClient) => Promise<void>): Promise<void> {
  let client: AdminClient | undefined;
  try {
    client = await adminClientFor(o);
    await fn(client);
  } catch (e) {
    await client?.close().catch(() => {});
    fail(e);
  }
  await client?.close();
}

const iso = (ms: number | null | undefined) => (ms ? new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z') : '-');

/** Prints rows as an aligned table. */
export function printTable(rows: Array<Record<string, unknown>>, cols: string[]): void {
  const cells = rows.map((r) => cols.map((c) => String(r[c] ?? '-')));
  const w = cols.map((c, i) => Math.max(c.length, ...cells.map((r) => r[i]!.length)));
  const line = (xs: string[]) => xs.map((x, i) => x.padEnd(w[i]!)).join('  ').trimEnd() + '\n';
  process.stdout.write(line(cols.map((c) => c.toUpperCase())));
  for (const r of cells) process.stdout.write(line(r));
}

function printKey(k: any): void {
  const rows: Array<[string, unknown]> = [
    ['id', k.id],
    ['tenant', `${k.tenant} (${k.tenantId})`],
    ['name', k.name],
    ['owner', k.owner ?? '-'],
    ['status', k.status],
    ['tier', k.tier ?? '-'],
    ['scopes', k.scopes ? JSON.stringify(k.scopes) : '-'],
    ['created', `${iso(k.createdAt)} by ${k.createdBy ?? '-'}`],
    ['expires', iso(k.expiresAt)],
    ['last used', iso(k.lastUsedAt)],
  ];
  if (k.successorId) rows.push(['successor', `${k.successorId} (grace until ${iso(k.graceUntil)})`]);
  if (k.revokedAt) rows.push(['revoked', `${iso(k.revokedAt)}${k.revokedReason ? ` (${k.revokedReason})` : ''}`]);
  for (const [a, b] of rows) process.stdout.write(`${a.padEnd(10)} ${String(b)}\n`);
}

function parseJsonOption(name: string, v: string | undefined): unknown {
  if (v === undefined) return undefined;
  try {
    return JSON.parse(v);
  } catch {
    throw new Error(`${name}: expected JSON, e.g. '{"models":{"allow":["gpt-4o*"]},"operations":["chat"]}'`);
  }
}

function intOpt(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new Error(`${name}: expected a non-negative integer, got ${JSON.stringify(v)}`);
  return n;
}

/** Registers `keys` and `admin-keys`. */
export function registerKeysCommand(program: Command): void {
  const keys = program.command('keys').description('manage API keys (offline, or --url against a running gateway)');

  adminOptions(
    keys
      .command('create')
      .description('create an API key (prints it once)')
      .requiredOption('--tenant <name>', 'tenant name (created if missing, offline/owner)')
      .requiredOption('--name <name>', 'key name (the calling service)')
      .option('--owner <team>', 'owning service or team')
      .option('--tier <tier>', 'tier (from the config `tiers:`)')
      .option('--scopes <json>', 'scopes as JSON (models, operations, tools, maxOutputTokens, dataBoundaries)')
      .option('--expires-in <seconds>', 'expire after this many seconds'),
  ).action((o: AdminCliOptions & { tenant: string; name: string; owner?: string; tier?: string; scopes?: string; expiresIn?: string }) =>
    withClient(o, async (c) => {
      if (!o.tenant.trim() || o.tenant.length > 200) throw new Error('--tenant must be 1-200 characters');
      if (!o.name.trim() || o.name.length > 200) throw new Error('--name must be 1-200 characters');
      const scopes = parseJsonOption('--scopes', o.scopes);
      const expiresInSeconds = intOpt('--expires-in', o.expiresIn);
      const k = await c.call('POST', '/admin/v1/keys', {
        body: {
          tenant: o.tenant,
          name: o.name,
          ...(o.owner ? { owner: o.owner } : {}),
          ...(o.tier ? { tier: o.tier } : {}),
          ...(scopes !== undefined ? { scopes } : {}),
          ...(expiresInSeconds ? { expiresInSeconds } : {}),
        },
      });
      if (o.json) process.stdout.write(JSON.stringify({ id: k.id, key: k.key, tenant: k.tenant }) + '\n');
      else process.stdout.write(`Created key ${k.id} for tenant "${k.tenant}" (shown once):\n${k.key}\n`);
    }),
  );

  adminOptions(
    keys
      .command('list')
      .description('list keys')
      .option('--tenant <tenant>', 'only this tenant (name or id)')
      .option('--status <status>', 'active | grace | rotated | revoked | expired')
      .option('--limit <n>', 'page size', '100')
      .option('--cursor <cursor>', 'continue after this cursor'),
  ).action((o: AdminCliOptions & { tenant?: string; status?: string; limit: string; cursor?: string }) =>
    withClient(o, async (c) => {
      const page = await c.call('GET', '/admin/v1/keys', { query: { tenant: o.tenant, status: o.status, limit: o.limit, cursor: o.cursor } });
      if (o.json) return void process.stdout.write(JSON.stringify(page) + '\n');
      printTable(
        page.data.map((k: any) => ({ ...k, created: iso(k.createdAt), expires: iso(k.expiresAt), lastUsed: iso(k.lastUsedAt), tier: k.tier ?? '-' })),
        ['id', 'tenant', 'name', 'status', 'tier', 'created', 'expires', 'lastUsed'],
      );
      if (page.nextCursor) process.stdout.write(`(more: --cursor ${page.nextCursor})\n`);
    }),
  );

  adminOptions(keys.command('show').argument('<id>', 'key id (the part after pcl_)').description('show one key (never its secret)')).action((id: string, o: AdminCliOptions) =>
    withClient(o, async (c) => {
      const k = await c.call('GET', `/admin/v1/keys/${encodeURIComponent(id)}`);
      if (o.json) process.stdout.write(JSON.stringify(k) + '\n');
      else printKey(k);
    }),
  );

  adminOptions(
    keys
      .command('rotate')
      .argument('<id>', 'key id')
      .description('issue a successor key (printed once); the old key keeps working until the grace deadline')
      .option('--grace <seconds>', 'overlap in seconds (default identity.rotationGraceSeconds, 86400)'),
  ).action((id: string, o: AdminCliOptions & { grace?: string }) =>
    withClient(o, async (c) => {
      const grace = intOpt('--grace', o.grace);
      const k = await c.call('POST', `/admin/v1/keys/${encodeURIComponent(id)}/rotate`, { body: grace !== undefined ? { graceSeconds: grace } : {} });
      if (o.json) process.stdout.write(JSON.stringify({ id: k.id, key: k.key, tenant: k.tenant, previous: k.previous.id, graceUntil: k.previous.graceUntil }) + '\n');
      else process.stdout.write(`Rotated ${id} → ${k.id}; ${id} keeps working until ${iso(k.previous.graceUntil)}.\nNew key (shown once):\n${k.key}\n`);
    }),
  );

  adminOptions(keys.command('revoke').argument('<id>', 'key id').description('revoke a key now (all instances within ~1 s)').option('--reason <text>', 'why (recorded)')).action(
    (id: string, o: AdminCliOptions & { reason?: string }) =>
      withClient(o, async (c) => {
        const k = await c.call('POST', `/admin/v1/keys/${encodeURIComponent(id)}/revoke`, { body: o.reason ? { reason: o.reason } : {} });
        if (o.json) process.stdout.write(JSON.stringify(k) + '\n');
        else process.stdout.write(`Revoked ${k.id} (tenant "${k.tenant}").\n`);
      }),
  );

  adminOptions(keys.command('expire').argument('<id>', 'key id').description('set the expiry of a key (now by default)').option('--at <iso>', 'expiry time (ISO-8601)')).action(
    (id: string, o: AdminCliOptions & { at?: string }) =>
      withClient(o, async (c) => {
        const k = await c.call('POST', `/admin/v1/keys/${encodeURIComponent(id)}/expire`, { body: o.at ? { at: o.at } : {} });
        if (o.json) process.stdout.write(JSON.stringify(k) + '\n');
        else process.stdout.write(`Key ${k.id} expires at ${iso(k.expiresAt)} (now ${k.status}).\n`);
      }),
  );

  adminOptions(
    keys
      .command('events')
      .description('admin events (who, when, what, from where), newest first')
      .option('--tenant <tenant>', 'only this tenant')
      .option('--target <id>', 'only events about this key/tenant id')
      .option('--limit <n>', 'how many', '50'),
  ).action((o: AdminCliOptions & { tenant?: string; target?: string; limit: string }) =>
    withClient(o, async (c) => {
      const page = await c.call('GET', '/admin/v1/events', { query: { tenant: o.tenant, target: o.target, limit: o.limit } });
      if (o.json) return void process.stdout.write(JSON.stringify(page) + '\n');
      printTable(page.data.map((e: any) => ({ ...e, when: iso(e.ts), detail: e.detail ? JSON.stringify(e.detail).slice(0, 80) : '-' })), ['when', 'actor', 'action', 'targetId', 'source', 'detail']);
    }),
  );

  const admin = program.command('admin-keys').description('manage admin keys (roles owner, operator, auditor)');
  adminOptions(
    admin
      .command('create')
      .description('create an admin key (printed once). The first owner key is created offline: portcullis admin-keys create --role owner')
      .requiredOption('--role <role>', 'owner | operator | auditor')
      .option('--name <name>', 'label', 'admin')
      .option('--tenant <tenant...>', 'tenants an operator manages (repeatable)'),
  ).action((o: AdminCliOptions & { role: string; name: string; tenant?: string[] }) =>
    withClient(o, async (c) => {
      const k = await c.call('POST', '/admin/v1/admin-keys', { body: { name: o.name, role: o.role, ...(o.tenant ? { tenants: o.tenant } : {}) } });
      if (o.json) process.stdout.write(JSON.stringify(k) + '\n');
      else process.stdout.write(`Created ${k.role} admin key ${k.id} (shown once):\n${k.key}\n`);
    }),
  );
  adminOptions(admin.command('list').description('list admin keys')).action((o: AdminCliOptions) =>
    withClient(o, async (c) => {
      const page = await c.call('GET', '/admin/v1/admin-keys');
      if (o.json) return void process.stdout.write(JSON.stringify(page) + '\n');
      printTable(page.data.map((k: any) => ({ ...k, tenants: k.tenants ? k.tenants.join(',') : 'all', created: iso(k.createdAt), lastUsed: iso(k.lastUsedAt) })), ['id', 'name', 'role', 'tenants', 'status', 'created', 'lastUsed']);
    }),
  );
  adminOptions(admin.command('revoke').argument('<id>', 'admin key id').description('revoke an admin key')).action((id: string, o: AdminCliOptions) =>
    withClient(o, async (c) => {
      await c.call('POST', `/admin/v1/admin-keys/${encodeURIComponent(id)}/revoke`, { body: {} });
      process.stdout.write(o.json ? JSON.stringify({ id, status: 'revoked' }) + '\n' : `Revoked admin key ${id}.\n`);
    }),
  );
}
