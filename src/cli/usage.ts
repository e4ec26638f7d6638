/** `portcullis usage`: requests, tokens and cost per day/tenant/key/model from the audit trail (offline or --url). */
import type { Command } from 'commander';
import { auditClientFor } from './audit.js';
import { fail } from './common.js';
import { adminOptions, printTable, type AdminCliOptions } from './keys.js';

type UsageOpts = AdminCliOptions & { tenant?: string; key?: string; model?: string; since?: string; until?: string; groupBy: string };

/** Registers `usage`. */
export function registerUsageCommand(program: Command): void {
  adminOptions(program.command('usage').description('tokens, requests and cost per day/tenant/key/model (from the audit trail)'))
    .option('--tenant <tenant>', 'tenant id or name')
    .option('--key <id>', 'API key id')
    .option('--model <model>', 'model as requested')
    .option('--since <time>', 'ISO time, epoch ms or an age such as 7d', '30d')
    .option('--until <time>', 'ISO time, epoch ms or an age')
    .option('--group-by <list>', 'comma list of day, tenant, key, model', 'day')
    .action(async (o: UsageOpts) => {
      let c: Awaited<ReturnType<typeof auditClientFor>> | undefined;
      try {
        c = await auditClientFor(o);
        const r = await c.get('/admin/v1/usage', { tenant: o.tenant, key: o.key, model: o.model, since: o.since, until: o.until, groupBy: o.groupBy });
        if (o.json) process.stdout.write(JSON.stringify(r) + '\n');
        else {
          const cols = [...(r.groupBy as string[]).map((g) => (g === 'tenant' ? 'tenantId' : g === 'key' ? 'keyId' : g)), 'requests', 'tokensIn', 'tokensOut', 'costUsd'];
          printTable([...r.data, { ...Object.fromEntries(cols.map((x) => [x, ''])), [cols[0]!]: 'TOTAL', requests: r.total.requests, tokensIn: r.total.tokensIn, tokensOut: r.total.tokensOut, costUsd: r.total.costUsd }], cols);
          process.stdout.write(`(days in ${r.timeZone})\n`);
        }
      } catch (e) {
        await c?.close().catch(() => {});
        fail(e);
      }
      await c?.close();
    });
}
