/**
 * Shared dataset helpers for the evaluation suites: a JSONL loader, the shared data root,
 * the prompt-set listing and the fixed train/validation split rule used by trained models.
 */
import { readFileSync, readdirSync, existsSync, statSync } from 'node:fs';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));

/** Root of the shared data sets (`../shared/datasets` relative to the repo), overridable with PORTCULLIS_DATASETS. */
export const DATASETS_DIR: string =
  process.env.PORTCULLIS_DATASETS ?? resolve(here, '..', '..', '..', 'shared', 'datasets');

/** Reads a JSON-lines file; blank lines are skipped, a bad line throws with its line number. */
export function loadJsonl<T = Record<string, unknown>>(path: string): T[] {
  const out: T[] = [];
  const lines = readFileSync(path, 'utf8').split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line === '') continue;
    try {
      out.push(JSON.parse(line) as T);
    } catch (err) {
      throw new Error(`${path}:${i + 1}: invalid JSON (${(err as Error).message})`);
    }
  }
  return out;
}

/** A labelled prompt row (shared schema: text, label, category, plus extra fields). */
export interface PromptRow {
  text: string;
  label: 'attack' | 'benign' | string;
  category?: string;
  id?: string;
  source?: string;
  [k: string]: unknown;
}

/** A labelled PII/secret row (shared schema: text plus spans). */
export interface SpanRow {
  text: string;
  spans: { start: number; end: number; type: string }[];
  label?: string;
  id?: string;
  [k: string]: unknown;
}

/** One JSONL file of a data set folder. */
export interface DatasetFile {
  /** Folder name, e.g. `bipia`. */
  set: string;
  /** File stem, e.g. `bipia_attack_instructions`. */
  name: string;
  path: string;
}

/** Lists every normalised `*.jsonl` file under the data root (one folder per set). */
export function listDatasetFiles(root: string = DATASETS_DIR): DatasetFile[] {
  if (!existsSync(root)) return [];
  const out: DatasetFile[] = [];
  for (const set of readdirSync(root).sort()) {
    const dir = join(root, set);
    if (!statSync(dir).isDirectory()) continue;
    for (const f of readdirSync(dir).sort()) {
      if (f.endsWith('.jsonl')) out.push({ set, name: f.slice(0, -'.jsonl'.length), path: join(dir, f) });
    }
  }
  return out;
}

/** Lists the files whose rows are labelled prompts (`label` is `attack` or `benign`). */
export function listPromptFiles(root: string = DATASETS_DIR): DatasetFile[] {
  return listDatasetFiles(root).filter((f) => {
    const first = readFileSync(f.path, 'utf8').split('\n', 1)[0];
    try {
      const r = JSON.parse(first) as PromptRow;
      return typeof r.text === 'string' && (r.label === 'attack' || r.label === 'benign');
    } catch {
      return false;
    }
  });
}

/** Lowercases and collapses whitespace: the key used for the split and for duplicate checks. */
export function canonicalText(text: string): string {
  return text.toLowerCase().replace(/\s+/g, ' ').trim();
}

/** FNV-1a 32-bit hash over UTF-16 code units. */
export function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/**
 * The fixed split rule for trained detectors: FNV-1a of the canonical text (lowercased,
 * whitespace collapsed) mod 5; bucket 0 is held out for validation/evaluation (20 %),
 * buckets 1–4 are training. Duplicates across sets therefore always land on the same side.
 */
export function splitOf(text: string): 'train' | 'heldout' {
  return fnv1a(canonicalText(text)) % 5 === 0 ? 'heldout' : 'train';
}

/**
 * The grouping key of a prompt row for the split: rows sharing a key always fall on the same
 * side. JailbreakBench rows group by `goal` (so held-out goals are unseen), everything else
 * by canonical text.
 */
export function splitKeyOf(set: string, row: PromptRow): string {
  if (set === 'jailbreakbench_artifacts' && typeof row.goal === 'string') return `goal:${canonicalText(row.goal)}`;
  return canonicalText(row.text);
}

/**
 * Bucket 0–4 of a prompt row. Rule: FNV-1a(split key) mod 5, except BIPIA, whose own
 * train/test split is used (test → bucket 0, train → bucket 1) because its injected documents
 * reuse each attack instruction many times; BIPIA's contexts (CC BY-SA) are never trained on,
 * its train split only serves threshold calibration. Bucket 0 is held out for evaluation, bucket 1 is
 * the validation bucket for threshold calibration, buckets 2–4 are training.
 */
export function bucketOf(set: string, row: PromptRow): number {
  if (set === 'bipia' && (row.split === 'test' || row.split === 'train')) return row.split === 'test' ? 0 : 1;
  return fnv1a(splitKeyOf(set, row)) % 5;
}

/** True when a row is in the held-out evaluation bucket (bucket 0). */
export function isHeldOut(set: string, row: PromptRow): boolean {
  return bucketOf(set, row) === 0;
}

/** True for rows that must be kept out of injection scoring (`harmful_request/*` are harmful asks, not injections). */
export function isHarmfulRequest(row: PromptRow): boolean {
  return typeof row.category === 'string' && row.category.startsWith('harmful_request/');
}

/** Maps code-point offsets (as the span data sets count) to UTF-16 offsets (as JavaScript strings do) for one text. */
export function cpToUtf16(text: string): (cp: number) => number {
  if (!/[\uD800-\uDFFF]/.test(text)) return (cp) => cp;
  const map: number[] = [];
  let u = 0;
  for (const ch of text) {
    map.push(u);
    u += ch.length;
  }
  map.push(u);
  return (cp) => map[cp] ?? u;
}
