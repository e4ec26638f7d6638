/** A tiny CLI entry used by the scanner tests: registers only `scan` (the lead wires it into src/cli/index.ts). */
import { Command } from 'commander';
import { registerScanCommand } from '../../src/cli/scan.js';

const program = new Command();
program.name('portcullis');
registerScanCommand(program);
program.parseAsync(process.argv).catch(() => process.exit(2));
