/** `portcullis keys …`: key management offline against the data dir. */
import type { Command } from 'commander';
import { openDb } from '../store/db.js';
import { createKey, loadPepper } from '../identity/keys.js';
import { configFromOptions, fail, type CommonOptions } from './common.js';

/** Registers `keys`. */
export function registerKeysCommand(program: Command): void {
  const keys = program.command('keys').description('manage API keys');
  keys
    .command('create')
    .description('create an API key (prints it once)')
    .requiredOption('--tenant <name>', 'tenant name (created if missing)')
    .requiredOption('--name <name>', 'key name (the calling service)')
    .option('--json', 'print {"id","key","tenant"} as JSON')
    .option('-c, --config <file>', 'YAML config file')
    .option('--data-dir <dir>', 'data directory (default ./data)')
    .action(async (o: CommonOptions & { tenant: string; name: string; json?: boolean }) => {
      try {
        if (!o.tenant.trim() || o.tenant.length > 200) throw new Error('--tenant must be 1-200 characters');
        if (!o.name.trim() || o.name.length > 200) throw new Error('--name must be 1-200 characters');
        const config = configFromOptions(o);
        const db = await openDb(config.store.kind === 'cluster' ? { postgresUrl: config.store.postgresUrl! } : { dataDir: config.dataDir });
        try {
          const k = await createKey(db.kysely, loadPepper(config.dataDir), { tenant: o.tenant, name: o.name, createdBy: 'cli' });
          if (o.json) process.stdout.write(JSON.stringify({ id: k.id, key: k.key, tenant: k.tenant }) + '\n');
          else process.stdout.write(`Created key ${k.id} for tenant "${k.tenant}" (shown once):\n${k.key}\n`);
        } finally {
          await db.close();
        }
      } catch (e) {
        fail(e);
      }
    });
}
