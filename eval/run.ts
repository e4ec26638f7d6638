/**
 * `npm run eval`: runs every evaluation suite under eval/suites/ (each a standalone
 * script), one after another, so each prints its own tables and writes its JSON under
 * eval/results/. Pass suite names to run only some: `npm run eval -- injection pii`.
 * Options (anything starting with `--`, with the value after `--split`) are passed to every suite
 * that runs, e.g. `npm run eval -- injection --split validation --no-peers`.
 */
import { readdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const here = dirname(fileURLToPath(import.meta.url));
const argv = process.argv.slice(2);
/** Suite options: `--flag`, and `--split <value>` with its value. */
const passThrough: string[] = [];
const only: string[] = [];
for (let i = 0; i < argv.length; i++) {
  const a = argv[i]!;
  if (a === '--split' && i + 1 < argv.length) passThrough.push(a, argv[++i]!);
  else if (a.startsWith('--')) passThrough.push(a);
  else only.push(a);
}
const suites = readdirSync(join(here, 'suites'))
  .filter((f) => f.endsWith('.ts'))
  .filter((f) => only.length === 0 || only.some((o) => f.startsWith(o)))
  .sort();
let failed = 0;
for (const suite of suites) {
  console.log(`\n=== eval suite: ${suite} ===`);
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(here, 'suites', suite), ...passThrough], { stdio: 'inherit' });
  if (r.status !== 0) failed++;
}
if (failed > 0) {
  console.error(`${failed} suite(s) failed`);
  process.exit(1);
}
