#!/usr/bin/env node
// Copies the non-TypeScript files the sources load at run time (models, probe data, fixtures)
// from src/ to dist/, keeping their relative paths. Runs after tsc in `npm run build`.
import { cpSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const src = join(root, 'src');
const dist = join(root, 'dist');
let n = 0;
(function walk(dir) {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p);
    else if (/\.(json|jsonl|md|txt)$/.test(name)) {
      const to = join(dist, relative(src, p));
      mkdirSync(dirname(to), { recursive: true });
      cpSync(p, to);
      n++;
    }
  }
})(src);
console.log(`copied ${n} asset file(s) to dist/`);
