#!/usr/bin/env node
/** The `portcullis` command. */
import { Command } from 'commander';
import { registerApprovalsCommand } from './approvals.js';
import { registerCheckCommand } from './check.js';
import { registerIncidentCommand } from './incident.js';
import { registerConfigCommand } from './config.js';
import { registerDemoCommand } from './demo.js';
import { registerKeysCommand } from './keys.js';
import { registerPolicyCommand } from './policy.js';
import { registerTenantsCommand } from './tenants.js';
import { registerScanCommand } from './scan.js';
import { registerServeCommand } from './serve.js';
import { registerAuditCommand } from './audit.js';
import { registerUsageCommand } from './usage.js';

const program = new Command();
program.name('portcullis').description('Portcullis: a security gateway for AI APIs').version('0.1.0');
registerServeCommand(program);
registerKeysCommand(program);
registerTenantsCommand(program);
registerPolicyCommand(program);
registerConfigCommand(program);
registerDemoCommand(program);
registerCheckCommand(program);
registerAuditCommand(program);
registerUsageCommand(program);
registerIncidentCommand(program);
registerApprovalsCommand(program);
registerScanCommand(program);

program.parseAsync(process.argv).catch((e) => {
  // Commander already printed its own usage errors.
  const code = (e as { code?: unknown }).code;
  if (!(typeof code === 'string' && code.startsWith('commander.'))) process.stderr.write(`portcullis: ${(e as Error).message}\n`);
  process.exit(typeof (e as { exitCode?: unknown }).exitCode === 'number' ? (e as { exitCode: number }).exitCode : 2);
});
