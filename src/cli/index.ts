#!/usr/bin/env node
/** The `portcullis` command. */
import { Command } from 'commander';
import { registerApprovalsCommand } from './approvals.js';
import { registerCheckCommand } from './check.js';
import { registerConfigCommand } from './config.js';
import { registerDemoCommand } from './demo.js';
import { registerKeysCommand } from './keys.js';
import { registerPolicyCommand } from './policy.js';
import { registerTenantsCommand } from './tenants.js';
import { registerServeCommand } from './serve.js';

const program = new Command();
program.name('portcullis').description('Portcullis: a security gateway for AI APIs').version('0.1.0');
registerServeCommand(program);
registerKeysCommand(program);
registerTenantsCommand(program);
registerPolicyCommand(program);
registerConfigCommand(program);
registerDemoCommand(program);
registerCheckCommand(program);
registerApprovalsCommand(program);

program.parseAsync(process.argv).catch((e) => {
  process.stderr.write(`portcullis: ${(e as Error).message}\n`);
  process.exit(2);
});
