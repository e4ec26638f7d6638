/**
 * `portcullis incident …`: credential-leak response and key actions — offline against the store,
 * or with --url against a running gateway's admin API (which adds its in-memory usage summary).
 */
import type { Command } from 'commander';
import { ActionBook } from '../analytics/actions.js';
import { revokeTenant, type IncidentResult } from '../analytics/incident.js';
import { auditUsageSummary } from '../analytics/usage.js';
import { loadPepper } from '../identity/keys.js';
import { Lifecycle } from '../identity/lifecycle.js';
import { openDb } from '../store/db.js';
import { cliActor, httpAdminClient } from '../server/admin/client.js';
import { configFromOptions, fail } from './common.js';
import { adminOptions, type AdminCliOptions } from './keys.js';

async function offline<T>(o: AdminCliOptions, fn: (lc: Lifecycle) => Promise<T>): Promise<T> {
  const config = configFromOptions(o);
  const db = await openDb(config.store.kind === 'cluster' ? { postgresUrl: config.store.postgresUrl! } : { dataDir: config.dataDir });
  try {
    return await fn(new Lifecycle(db, loadPepper(config.dataDir)));
  } finally {
    await db.close();
  }
}

function http(o: AdminCliOptions) {
  const key = o.adminKey ?? process.env.PORTCULLIS_ADMIN_KEY;
  if (!key) throw new Error('--url needs --admin-key or PORTCULLIS_ADMIN_KEY');
  return httpAdminClient(o.url!, key);
}

/**
 * Prints an incident result: new keys once, then the summary. When the audit trail could not be
 * read, says so on stderr and sets a non-zero exit code (the keys are revoked and the new ones
 * printed all the same).
 */
export function printIncident(r: IncidentResult, json = false): void {
  if (r.usageError) {
    process.stderr.write(`portcullis: incident summary incomplete: ${r.usageError}\n`);
    process.exitCode = 1;
  }
  if (json) return void process.stdout.write(JSON.stringify(r) + '\n');
  const out: string[] = [];
  out.push(`tenant ${r.tenant.name} (${r.tenant.id}): revoked ${r.revoked.length} key(s), issued ${r.reissued.length} replacement(s)`);
  if (r.reissued.length) out.push('', 'New keys (shown once — hand them to their owners now):');
  for (const k of r.reissued) out.push(`  ${k.name}  ${k.id}  (replaces ${k.oldKeyId})  ${k.key}`);
  out.push('', 'Last 24 h:');
  if (r.usageError) out.push(`  usage: ERROR — ${r.usageError}${r.usage ? ' (showing the fallback below)' : ''}`);
  if (r.usage) {
    const u = r.usage;
    out.push(`  source: ${u.source}`);
    out.push(`  requests ${u.requests}, errors ${u.errors}, blocked ${u.blocked}, tokens in ${u.inputTokens} / out ${u.outputTokens}, cost $${u.costUsd}`);
    out.push(`  models: ${u.models.join(', ') || '-'}${u.distinctClientAddresses >= 0 ? `; distinct client addresses: ${u.distinctClientAddresses}` : ''}`);
    for (const [k, n] of Object.entries(u.keys)) out.push(`  key ${k}: ${n} requests`);
  } else if (!r.usageError) {
    out.push('  usage: no audit events for this tenant in the last 24 h (run with --url against the gateway for its in-memory summary)');
  }
  const ev = Object.entries(r.adminEvents);
  out.push(`  admin events (source: admin_events table): ${ev.length ? ev.map(([a, n]) => `${a} ×${n}`).join(', ') : 'none'}`);
  process.stdout.write(out.join('\n') + '\n');
}

/** Registers `incident`. */
export function registerIncidentCommand(program: Command): void {
  const inc = program.command('incident').description('incident response: revoke and reissue a tenant\'s keys; throttle, suspend or clear a key');
  adminOptions(
    inc
      .command('revoke-tenant')
      .argument('<tenant>', 'tenant name or id')
      .description('revoke every key of a tenant, issue replacements (printed once) and summarise the last 24 h')
      .option('--reason <text>', 'reason recorded with the revocation')
      .option('--no-reissue', 'revoke only'),
  ).action(async (tenant: string, o: AdminCliOptions & { reason?: string; reissue: boolean }) => {
    try {
      const r: IncidentResult = o.url
        ? await http(o).call('POST', `/admin/v1/incident/revoke-tenant/${encodeURIComponent(tenant)}`, { body: { reissue: o.reissue, ...(o.reason ? { reason: o.reason } : {}) } })
        : await offline(o, (lc) => revokeTenant(lc, cliActor(), tenant, { reissue: o.reissue, ...(o.reason ? { reason: o.reason } : {}), usage: (id) => auditUsageSummary(lc.db.kysely, id) }));
      printIncident(r, o.json);
    } catch (e) {
      fail(e);
    }
  });
  for (const kind of ['throttle', 'suspend', 'clear'] as const) {
    adminOptions(
      inc
        .command(`${kind}-key`)
        .argument('<keyId>', 'API key id')
        .description(kind === 'clear' ? 'lift a throttle or suspension (reverses automatic actions)' : `${kind} a key now`)
        .option('--reason <text>', 'reason recorded with the action')
        .option('--duration <ms>', 'how long (default: throttle 1 h, suspend until cleared)')
        .option('--rpm <n>', 'requests per minute a throttled key keeps'),
    ).action(async (keyId: string, o: AdminCliOptions & { reason?: string; duration?: string; rpm?: string }) => {
      try {
        const body = { ...(o.reason ? { reason: o.reason } : {}), ...(o.duration ? { durationMs: Number(o.duration) } : {}), ...(o.rpm ? { rpm: Number(o.rpm) } : {}) };
        const r = o.url
          ? await http(o).call('POST', `/admin/v1/analytics/keys/${encodeURIComponent(keyId)}/${kind}`, { body })
          : await offline(o, async (lc) => {
              const k = await lc.mustKey(keyId);
              const book = new ActionBook(lc.db.kysely, lc);
              await book.refresh();
              const until = kind === 'clear' ? null : body.durationMs ? Date.now() + body.durationMs : kind === 'throttle' ? Date.now() + 3_600_000 : null;
              return book.apply(cliActor(), { keyId: k.id, tenantId: k.tenantId, kind, until, ...(kind === 'throttle' ? { rpm: body.rpm ?? 10 } : {}), reason: body.reason ?? `manual ${kind} (cli)` });
            });
        process.stdout.write(o.json ? JSON.stringify(r) + '\n' : `key ${keyId}: ${r.kind}${r.until ? ` until ${new Date(r.until).toISOString()}` : ''}\n`);
      } catch (e) {
        fail(e);
      }
    });
  }
}
