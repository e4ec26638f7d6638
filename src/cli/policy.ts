/** `portcullis policy check`: explains whether a key may call a model/operation, and why. Exit 0 allowed, 1 denied, 2 error. */
import type { Command } from 'commander';
import { adminOptions, withClient, type AdminCliOptions } from './keys.js';

/** Registers `policy`. */
export function registerPolicyCommand(program: Command): void {
  const p = program.command('policy').description('authorization tools');
  adminOptions(
    p
      .command('check')
      .description('explain whether a key may perform an operation on a model (exit 0 allowed, 1 denied)')
      .requiredOption('--key-id <id>', 'key id (the part after pcl_)')
      .requiredOption('--operation <op>', 'chat | completions | embeddings | responses | messages | models:list | files | …')
      .option('--model <model>', 'model name')
      .option('--tool <name...>', 'tool names the request would offer (repeatable)')
      .option('--max-output-tokens <n>', 'requested output cap'),
  ).action((o: AdminCliOptions & { keyId: string; operation: string; model?: string; tool?: string[]; maxOutputTokens?: string }) =>
    withClient(o, async (c) => {
      const n = o.maxOutputTokens !== undefined ? Number(o.maxOutputTokens) : undefined;
      if (n !== undefined && (!Number.isInteger(n) || n <= 0)) throw new Error('--max-output-tokens: expected a positive integer');
      const r = await c.call('POST', '/admin/v1/policy/check', {
        body: { keyId: o.keyId, operation: o.operation, ...(o.model ? { model: o.model } : {}), ...(o.tool ? { tools: o.tool } : {}), ...(n !== undefined ? { maxOutputTokens: n } : {}) },
      });
      if (o.json) process.stdout.write(JSON.stringify(r) + '\n');
      else {
        process.stdout.write(`${r.allowed ? 'ALLOW' : 'DENY'}  key ${r.keyId} (tenant "${r.tenant}", tier ${r.tier ?? '-'}, key ${r.keyStatus}, tenant ${r.tenantStatus})\n`);
        process.stdout.write(`  ${r.explanation}\n`);
        if (!r.decision.allow) process.stdout.write(`  reason: ${r.decision.reason}  layer: ${r.decision.layer}\n`);
        if (r.decision.allow && r.decision.maxOutputTokens) process.stdout.write(`  output-token cap: ${r.decision.maxOutputTokens}\n`);
        process.stdout.write(`  layers: ${r.decision.layers.join(' → ') || '-'}\n`);
      }
      if (!r.allowed) process.exitCode = 1;
    }),
  );
}
