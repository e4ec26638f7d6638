/** `portcullis config check FILE`: validates a config file without starting anything. */
import type { Command } from 'commander';
import { loadConfig } from '../config/load.js';
import { fail } from './common.js';

/** Registers `config`. */
export function registerConfigCommand(program: Command): void {
  const c = program.command('config').description('configuration tools');
  c.command('check')
    .argument('<file>', 'YAML config file')
    .description('validate a config file (exit 0 when valid, 2 with the failing paths otherwise)')
    .action((file: string) => {
      try {
        const cfg = loadConfig({ file });
        process.stdout.write(`${file}: valid (${Object.keys(cfg.providers).length} providers, ${cfg.routes.length} routes)\n`);
      } catch (e) {
        fail(e);
      }
    });
}
