/**
 * `npm run bench [-- NAME…]`: runs the gateway overhead bench, then every other `bench/*.ts`
 * module that exports `async function run(): Promise<object>`, in name order. A module that
 * fails is skipped with its reason printed. Results go to `bench/results/<timestamp>.json`
 * and `bench/results/latest.json`. With NAMEs (file names without `.ts`, e.g. `gateway`),
 * only those modules run. Exit status 1 when any module failed.
 */
import { mkdirSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const RESULTS = join(HERE, 'results');

/** Outcome of one bench module in the results file. */
export interface ModuleOutcome {
  module: string;
  ok: boolean;
  seconds: number;
  result?: unknown;
  error?: string;
}

/** The bench modules found next to this file: `gateway` first, then the others by name. */
export function benchModules(): string[] {
  const names = readdirSync(HERE)
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts') && !f.endsWith('.d.ts') && f !== 'run.ts')
    .map((f) => f.slice(0, -3))
    .sort();
  return [...names.filter((n) => n === 'gateway'), ...names.filter((n) => n !== 'gateway')];
}

async function main(): Promise<void> {
  const wanted = process.argv.slice(2).filter((a) => !a.startsWith('-'));
  const all = benchModules();
  const unknown = wanted.filter((w) => !all.includes(w));
  if (unknown.length) {
    process.stderr.write(`bench: unknown module(s) ${unknown.join(', ')}; available: ${all.join(', ')}\n`);
    process.exit(2);
  }
  const selected = wanted.length ? all.filter((n) => wanted.includes(n)) : all;
  const startedAt = new Date();
  const outcomes: ModuleOutcome[] = [];
  for (const name of selected) {
    const t0 = performance.now();
    process.stdout.write(`\n### bench: ${name}\n`);
    try {
      const mod = (await import(pathToFileURL(join(HERE, `${name}.ts`)).href)) as { run?: () => Promise<unknown> };
      if (typeof mod.run !== 'function') {
        process.stdout.write(`  skipped: ${name}.ts does not export run()\n`);
        continue;
      }
      // Count what the module prints; a module that prints nothing gets its result shown as JSON.
      let printed = 0;
      const write = process.stdout.write.bind(process.stdout);
      process.stdout.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
        printed += chunk.length;
        return (write as (...a: unknown[]) => boolean)(chunk, ...rest);
      }) as typeof process.stdout.write;
      let result: unknown;
      try {
        result = await mod.run();
      } finally {
        process.stdout.write = write;
      }
      const seconds = Math.round((performance.now() - t0) / 100) / 10;
      outcomes.push({ module: name, ok: true, seconds, result });
      if (printed === 0) {
        const text = JSON.stringify(result, null, 1);
        process.stdout.write(`${text.length > 3000 ? text.slice(0, 3000) + '\n  … (full result in the JSON file)' : text}\n`);
      }
      process.stdout.write(`  ${name}: done in ${seconds}s\n`);
    } catch (e) {
      const seconds = Math.round((performance.now() - t0) / 100) / 10;
      const error = ((e as Error)?.stack ?? String(e)).split('\n').slice(0, 4).join(' | ').slice(0, 800);
      outcomes.push({ module: name, ok: false, seconds, error });
      process.stdout.write(`  skipped: ${name} failed after ${seconds}s: ${error}\n`);
    }
  }
  mkdirSync(RESULTS, { recursive: true });
  const doc = { startedAt: startedAt.toISOString(), finishedAt: new Date().toISOString(), modules: outcomes };
  const text = JSON.stringify(doc, null, 2) + '\n';
  const stamp = startedAt.toISOString().replace(/[:.]/g, '-');
  const file = join(RESULTS, `${stamp}${wanted.length ? '-' + selected.join('+') : ''}.json`);
  writeFileSync(file, text);
  const tmp = join(RESULTS, 'latest.json.tmp');
  writeFileSync(tmp, text);
  renameSync(tmp, join(RESULTS, 'latest.json'));
  process.stdout.write(`\nbench results: ${file}\n               ${join(RESULTS, 'latest.json')}\n`);
  // Child processes are stopped; make sure stray handles (agents, timers) do not keep us alive.
  process.exit(outcomes.some((o) => !o.ok) ? 1 : 0);
}

await main();
