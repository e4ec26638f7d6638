/**
 * Which build a bench measures: the compiled `dist/` that `npm start` runs (built first when it is
 * missing or older than `src/`), or the TypeScript sources through tsx with PCL_BENCH_FROM_SOURCE=1
 * or when the build fails. From the sources, tsx (esbuild with keep-names) wraps every function
 * and closure it creates in a naming helper, which made the guard pipeline ~6–8 % slower than the
 * shipped build in paired runs — so in-process benches load their modules from here.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Newest modification time of a non-test `.ts` file under `dir`. */
export function newestMtime(dir: string): number {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) t = Math.max(t, newestMtime(p));
    else if (e.name.endsWith('.ts') && !e.name.endsWith('.test.ts')) t = Math.max(t, statSync(p).mtimeMs);
  }
  return t;
}

export interface Built {
  /** Directory the modules come from: `<root>/dist` or `<root>/src`. */
  dir: string;
  from: 'dist' | 'source';
  /** Why the sources were measured, or that dist/ was rebuilt. */
  note?: string;
}

let cached: Built | undefined;

/** The build to measure (see the module comment); runs `npm run build` at most once per process. */
export function built(): Built {
  if (cached) return cached;
  const dist = join(ROOT, 'dist');
  const src = join(ROOT, 'src');
  if (process.env.PCL_BENCH_FROM_SOURCE === '1') return (cached = { dir: src, from: 'source', note: 'PCL_BENCH_FROM_SOURCE=1: the TypeScript sources were measured through tsx' });
  const marker = join(dist, 'index.js');
  if (existsSync(marker) && statSync(marker).mtimeMs >= newestMtime(src)) return (cached = { dir: dist, from: 'dist' });
  process.stdout.write('  dist/ is missing or older than src/: running `npm run build` first…\n');
  if (spawnSync('npm', ['run', 'build'], { cwd: ROOT, stdio: 'ignore' }).status !== 0) {
    return (cached = { dir: src, from: 'source', note: '`npm run build` failed: the TypeScript sources were measured through tsx (~6–8 % slower than the compiled build)' });
  }
  return (cached = { dir: dist, from: 'dist', note: 'dist/ was rebuilt from the current sources before measuring' });
}

/** Imports `rel` (e.g. `guards/engine.js`) from the measured build. */
export function importBuilt<T>(rel: string): Promise<T> {
  return import(pathToFileURL(join(built().dir, rel)).href) as Promise<T>;
}
