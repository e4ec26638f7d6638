/** `portcullis demo`: serves the demo upstream alone (no gateway, no auth) for direct scans. */
import type { Command } from 'commander';
import { startDemoServer } from '../providers/demo-server.js';
import { fail } from './common.js';

/** Registers `demo`. */
export function registerDemoCommand(program: Command): void {
  program
    .command('demo')
    .description('serve the built-in demo upstream (models demo, demo-vulnerable) without the gateway; loopback only')
    .option('-p, --port <port>', 'port (default 8081)', '8081')
    .option('--host <host>', 'address (default 127.0.0.1)', '127.0.0.1')
    .action(async (o: { port: string; host: string }) => {
      try {
        const s = await startDemoServer({ port: Number(o.port), host: o.host });
        process.stdout.write(`demo upstream listening on ${s.url} (no authentication; do not expose)\n`);
      } catch (e) {
        fail(e);
      }
    });
}
