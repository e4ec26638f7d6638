/**
 * `npm run eval`: runs every evaluation suite under eval/suites/ (each a standalone
 * script), one after another, so each prints its own tables and writes its JSON under
 * eval/results/. Pass suite names to run only some: `npm run eval -- injection pii`.
 */
import { readdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const here = dirname(fileURLToPath(import.meta.url));
const only = process.argv.slice(2);
const suites = readdirSync(join(here, 'suites'))
  .filter((f) => f.endsWith('.ts'))
  .filter((f) => only.length === 0 || only.some((o) => f.startsWith(o)))
  .sort();
let failed = 0;
for (const suite of suites) {
  console.log(`\n=== eval suite: ${suite} ===`);
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(here, 'suites', suite)], { stdio: 'inherit' });
  if (r.status !== 0) failed++;
}
if (failed > 0) {
  console.error(`${failed} suite(s) failed`);
  process.exit(1);
}
