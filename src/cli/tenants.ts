/** `portcullis tenants …`: tenants offline against the data dir or with --url against a running gateway. */
import type { Command } from 'commander';
import { adminOptions, printTable, withClient, type AdminCliOptions } from './keys.js';

function scopesOpt(v: string | undefined): unknown {
  if (v === undefined) return undefined;
  if (v === 'null') return null;
  try {
    return JSON.parse(v);
  } catch {
    throw new Error('--scopes: expected JSON (or null to clear)');
  }
}

function show(o: AdminCliOptions, t: any): void {
  if (o.json) process.stdout.write(JSON.stringify(t) + '\n');
  else process.stdout.write(`${t.name} (${t.id}) status=${t.status} tier=${t.tier ?? '-'} scopes=${t.scopes ? JSON.stringify(t.scopes) : '-'}\n`);
}

/** Registers `tenants`. */
export function registerTenantsCommand(program: Command): void {
  const t = program.command('tenants').description('manage tenants (offline, or --url against a running gateway)');
  adminOptions(t.command('list').description('list tenants').option('--limit <n>', 'page size', '100').option('--cursor <c>', 'continue after')).action((o: AdminCliOptions & { limit: string; cursor?: string }) =>
    withClient(o, async (c) => {
      const page = await c.call('GET', '/admin/v1/tenants', { query: { limit: o.limit, cursor: o.cursor } });
      if (o.json) return void process.stdout.write(JSON.stringify(page) + '\n');
      printTable(page.data.map((x: any) => ({ ...x, tier: x.tier ?? '-', created: new Date(x.createdAt).toISOString() })), ['id', 'name', 'status', 'tier', 'created']);
    }),
  );
  adminOptions(t.command('create').argument('<name>').description('create a tenant').option('--tier <tier>', 'tier').option('--scopes <json>', 'tenant-wide scopes')).action(
    (name: string, o: AdminCliOptions & { tier?: string; scopes?: string }) =>
      withClient(o, async (c) => {
        const scopes = scopesOpt(o.scopes);
        show(o, await c.call('POST', '/admin/v1/tenants', { body: { name, ...(o.tier ? { tier: o.tier } : {}), ...(scopes != null ? { scopes } : {}) } }));
      }),
  );
  adminOptions(t.command('show').argument('<tenant>', 'name or id').description('show a tenant')).action((ref: string, o: AdminCliOptions) =>
    withClient(o, async (c) => show(o, await c.call('GET', `/admin/v1/tenants/${encodeURIComponent(ref)}`))),
  );
  adminOptions(
    t
      .command('set')
      .argument('<tenant>', 'name or id')
      .description('change tier or scopes')
      .option('--tier <tier>', 'tier name, or "none" to clear')
      .option('--scopes <json>', 'tenant-wide scopes JSON, or null to clear'),
  ).action((ref: string, o: AdminCliOptions & { tier?: string; scopes?: string }) =>
    withClient(o, async (c) => {
      const scopes = scopesOpt(o.scopes);
      const body = { ...(o.tier !== undefined ? { tier: o.tier === 'none' ? null : o.tier } : {}), ...(scopes !== undefined ? { scopes } : {}) };
      show(o, await c.call('PATCH', `/admin/v1/tenants/${encodeURIComponent(ref)}`, { body }));
    }),
  );
  for (const [cmd, status, what] of [
    ['suspend', 'suspended', 'refuse every key of a tenant (reversible)'],
    ['activate', 'active', 'let a suspended tenant in again'],
  ] as const) {
    adminOptions(t.command(cmd).argument('<tenant>', 'name or id').description(what)).action((ref: string, o: AdminCliOptions) =>
      withClient(o, async (c) => show(o, await c.call('PATCH', `/admin/v1/tenants/${encodeURIComponent(ref)}`, { body: { status } }))),
    );
  }
  adminOptions(t.command('revoke-keys').argument('<tenant>', 'name or id').description('incident response: revoke every key of a tenant').option('--reason <text>', 'why (recorded)')).action(
    (ref: string, o: AdminCliOptions & { reason?: string }) =>
      withClient(o, async (c) => {
        const r = await c.call('POST', `/admin/v1/tenants/${encodeURIComponent(ref)}/revoke-keys`, { body: o.reason ? { reason: o.reason } : {} });
        process.stdout.write(o.json ? JSON.stringify(r) + '\n' : `Revoked ${r.revoked} key(s) of tenant "${r.tenant.name}".\n`);
      }),
  );
}
