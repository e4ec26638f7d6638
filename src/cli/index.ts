#!/usr/bin/env node
/** The `portcullis` command. */
import { Command } from 'commander';

/**
 * The commands, in the order `--help` lists them. Each module is imported only when needed: for
 * `portcullis serve …` only the serve command's (the scanner, the report writers and the offline
 * tools stay unloaded, which keeps the gateway's memory down); for help, an unknown command or
 * no command, all of them.
 */
const COMMANDS: Array<[string[], () => Promise<(p: Command) => void>]> = [
  [['serve'], async () => (await import('./serve.js')).registerServeCommand],
  [['keys', 'admin-keys'], async () => (await import('./keys.js')).registerKeysCommand],
  [['tenants'], async () => (await import('./tenants.js')).registerTenantsCommand],
  [['policy'], async () => (await import('./policy.js')).registerPolicyCommand],
  [['config'], async () => (await import('./config.js')).registerConfigCommand],
  [['demo'], async () => (await import('./demo.js')).registerDemoCommand],
  [['check'], async () => (await import('./check.js')).registerCheckCommand],
  [['audit'], async () => (await import('./audit.js')).registerAuditCommand],
  [['usage'], async () => (await import('./usage.js')).registerUsageCommand],
  [['incident'], async () => (await import('./incident.js')).registerIncidentCommand],
  [['approvals'], async () => (await import('./approvals.js')).registerApprovalsCommand],
  [['scan'], async () => (await import('./scan.js')).registerScanCommand],
];

const program = new Command();
program.name('portcullis').description('Portcullis: a security gateway for AI APIs').version('0.1.0');
// The program has no options of its own besides --help/--version: the first other argument names the command.
const first = process.argv.slice(2).find((a) => !a.startsWith('-'));
const wanted = COMMANDS.filter(([names]) => first !== undefined && names.includes(first));
for (const [, load] of wanted.length === 1 ? wanted : COMMANDS) (await load())(program);

program.parseAsync(process.argv).catch((e) => {
  // Commander already printed its own usage errors.
  const code = (e as { code?: unknown }).code;
  if (!(typeof code === 'string' && code.startsWith('commander.'))) process.stderr.write(`portcullis: ${(e as Error).message}\n`);
  process.exit(typeof (e as { exitCode?: unknown }).exitCode === 'number' ? (e as { exitCode: number }).exitCode : 2);
});
