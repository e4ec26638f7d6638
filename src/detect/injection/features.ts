/**
 * Feature hashing for the injection classifier: word unigrams and bigrams plus character
 * 3–5-grams of the folded matching view, hashed into a fixed number of buckets, log-scaled
 * counts, L2-normalised. Shared by training (scripts/train-injection.ts) and inference.
 */

/** Number of hash bits (2^18 buckets). */
export const FEATURE_BITS = 18;
const MASK = (1 << FEATURE_BITS) - 1;

/** A sparse feature vector: parallel arrays of bucket indices and values. */
export interface SparseVector {
  idx: Uint32Array;
  val: Float32Array;
}


function hashString(s: string, seed: number): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

// Reusable accumulator (single-threaded JS: safe to share between calls).
const ACC = new Float32Array(1 << FEATURE_BITS);
let TOUCHED = new Uint32Array(1 << 14);
let nTouched = 0;

function bump(h: number, w: number): void {
  const k = h & MASK;
  if (ACC[k] === 0) {
    if (nTouched === TOUCHED.length) {
      const t = new Uint32Array(TOUCHED.length * 2);
      t.set(TOUCHED);
      TOUCHED = t;
    }
    TOUCHED[nTouched++] = k;
  }
  ACC[k] += w;
}

function isWordCode(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c === 39 || (c >= 0xc0 && c !== 0xd7 && c !== 0xf7 && !(c >= 0x2000 && c <= 0x2bff) && !(c >= 0x3000 && c <= 0x303f) && !(c >= 0xd800 && c <= 0xdfff) && !(c >= 0xfe00 && c <= 0xfe6f));
}

/** Hashes a folded text (already lowercased and folded) into a sparse vector. */
export function featurize(fold: string, extra: string[] = []): SparseVector {
  nTouched = 0;
  const n = fold.length;
  // Words (runs of letters/digits/apostrophes, max 24 chars hashed) and single punctuation marks: unigrams and bigrams.
  let prev = 0;
  let havePrev = false;
  let i = 0;
  while (i < n) {
    const c = fold.charCodeAt(i);
    if (c === 32 || c === 10 || c === 9 || c === 13) {
      i++;
      continue;
    }
    let h = (0x811c9dc5 ^ 1) >>> 0;
    if (isWordCode(c)) {
      let len = 0;
      while (i < n && isWordCode(fold.charCodeAt(i))) {
        if (len < 24) {
          h ^= fold.charCodeAt(i);
          h = Math.imul(h, 0x01000193);
        }
        len++;
        i++;
      }
    } else {
      h ^= c;
      h = Math.imul(h, 0x01000193);
      i++;
    }
    h >>>= 0;
    bump(h, 1);
    if (havePrev) bump(Math.imul(prev ^ Math.imul(h, 0x9e3779b1), 0x85ebca6b) >>> 0, 1);
    prev = h;
    havePrev = true;
  }
  // Char 3–5-grams over the text with whitespace runs collapsed to one space.
  const buf = new Uint16Array(n);
  let m = 0;
  let lastSpace = true;
  for (let j = 0; j < n; j++) {
    const c = fold.charCodeAt(j);
    const space = c === 32 || c === 10 || c === 9 || c === 13;
    if (space) {
      if (lastSpace) continue;
      buf[m++] = 32;
    } else buf[m++] = c;
    lastSpace = space;
  }
  for (let j = 0; j < m; j++) {
    let h = 0x9e3779b9 >>> 0;
    for (let k = 0; k < 5 && j + k < m; k++) {
      h ^= buf[j + k];
      h = Math.imul(h, 0x01000193) >>> 0;
      if (k >= 2) bump(Math.imul(h ^ (k * 0x27d4eb2d), 0x85ebca6b) >>> 0, 1);
    }
  }
  for (const e of extra) bump(hashString('__' + e, 3), 2);
  const idx = new Uint32Array(nTouched);
  const val = new Float32Array(nTouched);
  let norm = 0;
  for (let j = 0; j < nTouched; j++) {
    const k = TOUCHED[j];
    const v = 1 + Math.log(ACC[k]);
    ACC[k] = 0;
    idx[j] = k;
    val[j] = v;
    norm += v * v;
  }
  norm = Math.sqrt(norm) || 1;
  for (let j = 0; j < val.length; j++) val[j] /= norm;
  return { idx, val };
}

/** Dot product of a sparse vector with dense weights. */
export function dot(v: SparseVector, w: ArrayLike<number>): number {
  let s = 0;
  for (let k = 0; k < v.idx.length; k++) s += w[v.idx[k]] * v.val[k];
  return s;
}

/** Logistic function. */
export function sigmoid(z: number): number {
  return z >= 0 ? 1 / (1 + Math.exp(-z)) : Math.exp(z) / (1 + Math.exp(z));
}

/** Window length and stride (code units of the matching view) of the direct head. */
export const WINDOW = 1024;
export const STRIDE = 512;
/** Smaller windows for the indirect head, so one planted sentence dominates its window in a long document. */
export const INDIRECT_WINDOW = 256;
export const INDIRECT_STRIDE = 128;

/** Window spans [start, end) of a view of length `n`: one span when it fits, otherwise overlapping windows. */
export function windows(n: number, size = WINDOW, stride = STRIDE): [number, number][] {
  if (n <= size) return [[0, n]];
  const out: [number, number][] = [];
  for (let s = 0; ; s += stride) {
    const e = Math.min(n, s + size);
    out.push([s, e]);
    if (e >= n) break;
  }
  return out;
}
