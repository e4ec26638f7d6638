/**
 * Feature hashing for the injection classifier: word unigrams and bigrams, character 3- and
 * 4-grams, and character-class ("shape") 3- and 4-grams of the folded matching view, hashed into
 * a fixed number of buckets, log-scaled counts, L2-normalised. Shared by training
 * (scripts/train-injection.ts) and inference.
 */

import { KERNEL, KERNEL_PREP_MAX, type Kernel } from '../kernel.js';
import { BIGRAM_MUL, BUCKET_MIX, CHAR3_SALT, CHAR4_SALT, CHAR_SEED, FEATURE_BITS, FNV_OFFSET, FNV_PRIME, SHAPE3_SALT, SHAPE4_SALT, SHAPE_SEED } from '../feature-hash.js';

/** Number of hash bits (2^18 buckets). */
export { FEATURE_BITS };
const MASK = (1 << FEATURE_BITS) - 1;

/** A sparse feature vector: parallel arrays of bucket indices and values. */
export interface SparseVector {
  idx: Uint32Array;
  val: Float32Array;
}


function hashString(s: string, seed: number): number {
  let h = (FNV_OFFSET ^ seed) >>> 0;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, FNV_PRIME);
  }
  return h >>> 0;
}

// Reusable accumulator (single-threaded JS: safe to share between calls). Counts are integers:
// a Uint16Array (saturating) is a quarter of the size of a Float32Array, which keeps the random
// accesses of feature hashing in cache.
const ACC = new Uint16Array(1 << FEATURE_BITS);
let TOUCHED = new Uint32Array(1 << 14);
let nTouched = 0;

function bump(h: number, w: number): void {
  const k = h & MASK;
  const c = ACC[k];
  // Branch-free: k is written at the end of TOUCHED and kept only when the bucket was empty
  // ((c - 1) >>> 31 is 1 for c = 0, else 0): whether a bucket is new is unpredictable.
  TOUCHED[nTouched] = k;
  nTouched += (c - 1) >>> 31;
  ACC[k] = c + w > 0xffff ? 0xffff : c + w;
}

function ensureTouched(extra: number): void {
  if (nTouched + extra <= TOUCHED.length) return;
  const t = new Uint32Array(Math.max(TOUCHED.length * 2, nTouched + extra));
  t.set(TOUCHED.subarray(0, nTouched));
  TOUCHED = t;
}

function isWordCode(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c === 39 || (c >= 0xc0 && c !== 0xd7 && c !== 0xf7 && !(c >= 0x2000 && c <= 0x2bff) && !(c >= 0x3000 && c <= 0x303f) && !(c >= 0xd800 && c <= 0xdfff) && !(c >= 0xfe00 && c <= 0xfe6f));
}

function isSpace(c: number): boolean {
  return c === 32 || c === 10 || c === 9 || c === 13;
}

/**
 * Hashes the features of `fold[start, end)` into ACC/TOUCHED (exactly the features of
 * `fold.slice(start, end)`), without allocating.
 */
function accumulate(fold: string, start: number, end: number): void {
  nTouched = 0;
  // At most one unigram + one bigram per word/mark, two char n-grams and two shape n-grams per code unit.
  ensureTouched(6 * (end - start) + 16);
  // Words (runs of letters/digits/apostrophes, max 24 chars hashed) and single punctuation marks: unigrams and bigrams.
  let prev = 0;
  let havePrev = false;
  let i = start;
  while (i < end) {
    const c = fold.charCodeAt(i);
    if (isSpace(c)) {
      i++;
      continue;
    }
    let h = (FNV_OFFSET ^ 1) >>> 0;
    if (isWordCode(c)) {
      let len = 0;
      while (i < end) {
        const d = fold.charCodeAt(i);
        if (!isWordCode(d)) break;
        if (len < 24) {
          h ^= d;
          h = Math.imul(h, FNV_PRIME);
        }
        len++;
        i++;
      }
    } else {
      h ^= c;
      h = Math.imul(h, FNV_PRIME);
      i++;
    }
    h >>>= 0;
    bump(h, 1);
    if (havePrev) bump(bigramBucket(prev, h), 1);
    prev = h;
    havePrev = true;
  }
  // Char 3- and 4-grams over the text with whitespace runs collapsed to one space (a rolling window
  // of the last four collapsed code units; the n-grams starting at each position). Alongside,
  // character-class ("shape") 3- and 4-grams: every letter is `a`, every digit `0`, a space is a
  // space and any other character stands for itself, so "x({[" and "q=[{" share the shape "a({[".
  // Only shapes with at least one character that is not a letter or a space are counted: prose
  // adds almost nothing, token soup (adversarial suffixes), code and markup do. The shapes
  // generalise over optimised suffixes whose exact characters never repeat.
  let c0 = 0, c1 = 0, c2 = 0, c3 = 0;
  let k0 = 0, k1 = 0, k2 = 0, k3 = 0;
  let have = 0;
  let lastSpace = true;
  const gram = (a: number, b: number, c: number, d: number, k: number): void => {
    const h = fnv3(CHAR_SEED, a, b, c);
    bump(gramBucket(h, CHAR3_SALT), 1);
    if (k >= 4) bump(gramBucket(fnvStep(h, d), CHAR4_SALT), 1);
  };
  for (let j = start; j < end; j++) {
    let c = fold.charCodeAt(j);
    const space = isSpace(c);
    if (space) {
      if (lastSpace) continue;
      c = 32;
    }
    lastSpace = space;
    // Shift in c; once four units are buffered, emit the grams starting at the oldest one.
    c0 = c1; c1 = c2; c2 = c3; c3 = c;
    const k = (c >= 97 && c <= 122) || c >= 0xc0 ? 97 : c >= 48 && c <= 57 ? 48 : c;
    k0 = k1; k1 = k2; k2 = k3; k3 = k;
    if (++have >= 4) {
      gram(c0, c1, c2, c3, 4);
      const plain3 = (k0 === 97 || k0 === 32) && (k1 === 97 || k1 === 32) && (k2 === 97 || k2 === 32);
      if (!plain3 || (k3 !== 97 && k3 !== 32)) {
        const g = fnv3(SHAPE_SEED, k0, k1, k2);
        if (!plain3) bump(gramBucket(g, SHAPE3_SALT), 1);
        bump(gramBucket(fnvStep(g, k3), SHAPE4_SALT), 1);
      }
    }
  }
  // The last start position with three units left has a 3-gram (and no 4-gram).
  if (have >= 3) gram(c1, c2, c3, 0, 3);
}

/** Hashes a folded text (already lowercased and folded) into a sparse vector. */
export function featurize(fold: string, extra: string[] = []): SparseVector {
  accumulate(fold, 0, fold.length);
  ensureTouched(extra.length);
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

/** 1 + ln(count) for small counts. */
const LOG_TABLE = Float64Array.from({ length: 256 }, (_, c) => (c === 0 ? 0 : 1 + Math.log(c)));

/**
 * Dot product of the (normalised) features of `fold[start, end)` with int8 weights, i.e.
 * `dot(featurize(fold.slice(start, end)), q)` computed without allocating. Multiply by the
 * head's scale to get the logit contribution.
 */
export function windowDot(fold: string, start: number, end: number, q: Int8Array): number {
  accumulate(fold, start, end);
  return touchedDot(q);
}

/**
 * The normalised dot product of the counts accumulated in ACC (the touched buckets) with `q`,
 * clearing them for the next window. Module arrays are read through locals in the loop.
 */
function touchedDot(q: Int8Array): number {
  const acc = ACC;
  const touched = TOUCHED;
  const nt = nTouched;
  let norm = 0;
  let s = 0;
  for (let j = 0; j < nt; j++) {
    const k = touched[j];
    const c = acc[k];
    acc[k] = 0;
    const v = c < LOG_TABLE.length ? LOG_TABLE[c]! : 1 + Math.log(c);
    norm += v * v;
    s += q[k] * v;
  }
  return norm > 0 ? s / Math.sqrt(norm) : 0;
}

// --- Many windows of one text --------------------------------------------------------------
// Overlapping windows (long texts, and the indirect head's line windows beside the direct head's
// windows) would hash every n-gram once per window. `prepareText` hashes the whole text once,
// recording the bucket of every feature in the order `accumulate` bumps them, and
// `preparedWindowDot` then scores a window by bumping a contiguous run of those buckets, hashing
// only the words cut by the window's edges. The buckets bumped, their order (first-touch order
// decides the floating-point summation order) and so the result are exactly those of
// `windowDot(fold, start, end, q)`. Buffers are module-level and reused (single-threaded JS):
// a prepared text is valid until the next `prepareText` call.

let P_FOLD = '';
let P_TOKENS = 0;
let P_UNITS = 0;
let TOK_START: Int32Array = new Int32Array(1024);
let TOK_END: Int32Array = new Int32Array(1024);
/** Token hash (before masking), as int32. */
let TOK_HASH: Int32Array = new Int32Array(1024);
/** Word buckets in bump order: unigram(t0), unigram(t1), bigram(t0, t1), unigram(t2), bigram(t1, t2), … */
let W_LIST: Int32Array = new Int32Array(2048);
/** Per collapsed unit: its position in the text. */
let UNIT_POS: Int32Array = new Int32Array(1024);
/** Per unit m: offset in C_LIST of the n-grams starting at m (char 3-, 4-gram, shape 3-, 4-gram when counted). */
let UNIT_OFF: Int32Array = new Int32Array(1024);
let C_LIST: Int32Array = new Int32Array(4096);
/** The lists prepareText fills in JavaScript (texts longer than KERNEL_PREP_MAX, or without the kernel). */
let JS_LISTS = { tokStart: TOK_START, tokEnd: TOK_END, tokHash: TOK_HASH, wList: W_LIST, unitPos: UNIT_POS, unitOff: UNIT_OFF, cList: C_LIST };

function wordHash(fold: string, start: number, end: number): number {
  let h = (FNV_OFFSET ^ 1) >>> 0;
  const stop = Math.min(end, start + 24);
  for (let i = start; i < stop; i++) {
    h ^= fold.charCodeAt(i);
    h = Math.imul(h, FNV_PRIME);
  }
  return h >>> 0;
}

function bigramBucket(prev: number, h: number): number {
  return (Math.imul(prev ^ Math.imul(h, BIGRAM_MUL), BUCKET_MIX) >>> 0) & MASK;
}

// The n-gram hashes, shared by `accumulate` (training, reference) and `prepareText` (and mirrored
// step for step by the WebAssembly kernel's prepare, from the same constants). Hashes are int32:
// xor and Math.imul see the same 32 bits as on uint32, and buckets take the low FEATURE_BITS bits.

/** FNV-1a over three code units from `seed`; one more unit is `fnvStep`. */
function fnv3(seed: number, a: number, b: number, c: number): number {
  return Math.imul(Math.imul(Math.imul(seed ^ a, FNV_PRIME) ^ b, FNV_PRIME) ^ c, FNV_PRIME);
}

function fnvStep(h: number, d: number): number {
  return Math.imul(h ^ d, FNV_PRIME);
}

/** The bucket of an n-gram hash under a salt. */
function gramBucket(h: number, salt: number): number {
  return Math.imul(h ^ salt, BUCKET_MIX) & MASK;
}

/** First index i in [0, n) with a[i] >= x (n when none). */
function lowerBound(a: Int32Array, n: number, x: number): number {
  let lo = 0;
  let hi = n;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (a[mid] < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Per ASCII code unit: 1 = whitespace (isSpace), 2 = word code (isWordCode), 0 = other. */
const CHAR_CLASS = Uint8Array.from({ length: 128 }, (_, c) => (isSpace(c) ? 1 : isWordCode(c) ? 2 : 0));
/** Per ASCII code unit: its shape class (97 letters, 48 digits, else itself). */
const SHAPE_CLASS = Uint8Array.from({ length: 128 }, (_, c) => ((c >= 97 && c <= 122) ? 97 : c >= 48 && c <= 57 ? 48 : c));
// The kernel's prepare classifies every code unit as this file does.
KERNEL?.setTables(
  Uint8Array.from({ length: 0x10000 }, (_, c) => (c < 128 ? CHAR_CLASS[c]! : isWordCode(c) ? 2 : 0)),
  SHAPE_CLASS,
);

/** Points the prepared-text bindings at one set of lists (the kernel's memory or JS_LISTS). */
function useLists(l: typeof JS_LISTS): void {
  TOK_START = l.tokStart;
  TOK_END = l.tokEnd;
  TOK_HASH = l.tokHash;
  W_LIST = l.wList;
  UNIT_POS = l.unitPos;
  UNIT_OFF = l.unitOff;
  C_LIST = l.cList;
}

/**
 * Hashes every feature of `fold` once, for `preparedWindowDot` on windows of it: the tokens and
 * the collapsed units of `accumulate` run from position 0, in one pass over the text. (The same
 * hashes as `accumulate`, computed as int32: xor and Math.imul see the same 32 bits, and the
 * buckets are the low FEATURE_BITS bits, so no `>>> 0` is needed on the way.)
 */
export function prepareText(fold: string): void {
  const n = fold.length;
  P_FOLD = fold;
  if (KERNEL !== undefined && n <= KERNEL_PREP_MAX) {
    // The same pass in WebAssembly, into lists in its memory (the windows read them from there).
    useLists(KERNEL.lists);
    const r = KERNEL.prepare(fold);
    P_TOKENS = r[0];
    P_UNITS = r[1];
    return;
  }
  if (JS_LISTS.tokStart.length < n + 1) {
    const cap = Math.max(n + 1, JS_LISTS.tokStart.length * 2);
    JS_LISTS = {
      tokStart: new Int32Array(cap),
      tokEnd: new Int32Array(cap),
      tokHash: new Int32Array(cap),
      wList: new Int32Array(2 * cap),
      unitPos: new Int32Array(cap),
      unitOff: new Int32Array(cap),
      cList: new Int32Array(4 * cap),
    };
  }
  useLists(JS_LISTS);
  // Locals: the hot loop then indexes the arrays without reloading the module bindings.
  const tokStart = TOK_START;
  const tokEnd = TOK_END;
  const tokHash = TOK_HASH;
  const wList = W_LIST;
  const unitPos = UNIT_POS;
  const unitOff = UNIT_OFF;
  const cList = C_LIST;
  let t = 0;
  let w = 0;
  let prev = 0;
  let inWord = false;
  let wh = 0;
  let wlen = 0;
  let c0 = 0, c1 = 0, c2 = 0, c3 = 0;
  let k0 = 0, k1 = 0, k2 = 0, k3 = 0;
  let np = 0;
  let have = 0;
  let lastSpace = true;
  let o = 0;
  for (let j = 0; j < n; j++) {
    let c = fold.charCodeAt(j);
    const cls = c < 128 ? CHAR_CLASS[c] : isWordCode(c) ? 2 : 0;
    const space = cls === 1;
    // Tokens: words (max 24 code units hashed) and single marks.
    if (cls === 2) {
      if (!inWord) {
        inWord = true;
        tokStart[t] = j;
        wh = (FNV_OFFSET ^ 1) >>> 0;
        wlen = 0;
      }
      if (wlen < 24) {
        wh ^= c;
        wh = Math.imul(wh, FNV_PRIME);
      }
      wlen++;
    } else {
      if (inWord) {
        inWord = false;
        const h = wh >>> 0;
        tokEnd[t] = j;
        tokHash[t] = h;
        wList[w++] = h & MASK;
        if (t > 0) wList[w++] = bigramBucket(prev, h);
        prev = h;
        t++;
      }
      if (!space) {
        let h = (FNV_OFFSET ^ 1) >>> 0;
        h ^= c;
        h = Math.imul(h, FNV_PRIME);
        tokStart[t] = j;
        tokEnd[t] = j + 1;
        tokHash[t] = h;
        wList[w++] = h & MASK;
        if (t > 0) wList[w++] = bigramBucket(prev, h);
        prev = h;
        t++;
      }
    }
    // Collapsed units and the n-grams starting at each.
    if (space) {
      if (lastSpace) continue;
      c = 32;
    }
    lastSpace = space;
    unitPos[have] = j;
    c0 = c1; c1 = c2; c2 = c3; c3 = c;
    const k = c < 128 ? SHAPE_CLASS[c] : c >= 0xc0 ? 97 : c;
    k0 = k1; k1 = k2; k2 = k3; k3 = k;
    // Bit 0: k3 is neither a letter nor a space; bits 1-3: the same for k2, k1, k0.
    np = ((np << 1) | (k !== 97 && k !== 32 ? 1 : 0)) & 15;
    if (++have >= 4) {
      unitOff[have - 4] = o;
      const h = fnv3(CHAR_SEED, c0, c1, c2);
      cList[o++] = gramBucket(h, CHAR3_SALT);
      cList[o++] = gramBucket(fnvStep(h, c3), CHAR4_SALT);
      if (np !== 0) {
        const g = fnv3(SHAPE_SEED, k0, k1, k2);
        if ((np & 14) !== 0) cList[o++] = gramBucket(g, SHAPE3_SALT);
        cList[o++] = gramBucket(fnvStep(g, k3), SHAPE4_SALT);
      }
    }
  }
  if (inWord) {
    const h = wh >>> 0;
    tokEnd[t] = n;
    tokHash[t] = h;
    wList[w++] = h & MASK;
    if (t > 0) wList[w++] = bigramBucket(prev, h);
    t++;
  }
  // The 3-gram of the last three units (a window ending there counts it; no 4-gram follows).
  if (have >= 3) {
    unitOff[have - 3] = o;
    cList[o++] = gramBucket(fnv3(CHAR_SEED, c1, c2, c3), CHAR3_SALT);
  }
  P_TOKENS = t;
  P_UNITS = have;
}

/** Bumps the buckets `list[from, to)` in order (as `bump(k, 1)`). */
function bumpRange(list: Int32Array, from: number, to: number): void {
  const acc = ACC;
  const touched = TOUCHED;
  let nt = nTouched;
  for (let j = from; j < to; j++) {
    const k = list[j];
    const c = acc[k];
    touched[nt] = k;
    nt += (c - 1) >>> 31;
    acc[k] = c + 1 > 0xffff ? 0xffff : c + 1;
  }
  nTouched = nt;
}

// A window [start, end) of the prepared text, set by windowSpan: its whole tokens are
// WS_TA..WS_TB-1; WS_HEAD is the hash of a word cut by the window's start (-1 for none), WS_CUT_END
// whether token WS_TB is cut by its end; its collapsed units are WS_UA..WS_UB-1 (a leading
// collapsed space skipped, as `accumulate` skips leading whitespace).
let WS_TA = 0;
let WS_TB = 0;
let WS_HEAD = -1;
let WS_CUT_END = false;
let WS_UA = 0;
let WS_UB = 0;

function windowSpan(fold: string, start: number, end: number): void {
  const ta = lowerBound(TOK_START, P_TOKENS, start);
  WS_HEAD = ta > 0 && TOK_END[ta - 1] > start ? wordHash(fold, start, Math.min(TOK_END[ta - 1], end)) : -1;
  const te = lowerBound(TOK_START, P_TOKENS, end);
  WS_CUT_END = te - 1 >= ta && TOK_END[te - 1] > end;
  WS_TA = ta;
  WS_TB = WS_CUT_END ? te - 1 : te;
  let a = lowerBound(UNIT_POS, P_UNITS, start);
  const b = lowerBound(UNIT_POS, P_UNITS, end);
  if (a < b && isSpace(fold.charCodeAt(UNIT_POS[a]))) a++;
  WS_UA = a;
  WS_UB = b;
}

/**
 * `windowDot(fold, start, end, q)` for the text of the last `prepareText(fold)` call, from its
 * precomputed buckets (identical result: the same buckets bumped in the same order).
 */
export function preparedWindowDot(start: number, end: number, q: Int8Array): number {
  nTouched = 0;
  if (end <= start) return 0;
  if (KERNEL !== undefined && end - start <= WINDOW && q.length === 1 << FEATURE_BITS) return preparedKernelDot(KERNEL, start, end, q);
  const fold = P_FOLD;
  ensureTouched(6 * (end - start) + 16);
  // Words: a word cut by the window's start or end is hashed from its part inside the window;
  // the tokens wholly inside are the text's tokens, bumped from W_LIST.
  windowSpan(fold, start, end);
  const ta = WS_TA;
  const tb = WS_TB;
  const cutEnd = WS_CUT_END;
  let prev = 0;
  let havePrev = false;
  if (WS_HEAD >= 0) {
    const h = WS_HEAD;
    bump(h, 1);
    prev = h;
    havePrev = true;
  }
  if (ta < tb) {
    bump(W_LIST[ta === 0 ? 0 : 2 * ta - 1], 1);
    if (havePrev) bump(bigramBucket(prev, TOK_HASH[ta] >>> 0), 1);
    bumpRange(W_LIST, 2 * ta + 1, 2 * tb - 1);
    prev = TOK_HASH[tb - 1] >>> 0;
    havePrev = true;
  }
  if (cutEnd) {
    const h = wordHash(fold, TOK_START[tb], end);
    bump(h, 1);
    if (havePrev) bump(bigramBucket(prev, h), 1);
  }
  // Character and shape n-grams: the window's collapsed units are the text's units a..b-1 (a
  // leading collapsed space is skipped, as `accumulate` skips leading whitespace).
  const a = WS_UA;
  const b = WS_UB;
  if (b - a >= 3) {
    const last = UNIT_OFF[b - 3];
    bumpRange(C_LIST, UNIT_OFF[a], last + 1);
  }
  return touchedDot(q);
}

/**
 * `preparedWindowDot` for a window of at most WINDOW units by the WebAssembly kernel: the same
 * buckets in the same order are written to its staging area, then counted and dotted there (at
 * most 6 * WINDOW + 4 buckets, no count reaches the kernel's table end or 0xffff).
 */
function preparedKernelDot(kernel: Kernel, start: number, end: number, q: Int8Array): number {
  const fold = P_FOLD;
  const stage = kernel.stage;
  // Lists prepared by the kernel are read where they are; lists prepared in JavaScript (long
  // texts) are copied into the staging area.
  const inKernel = W_LIST === kernel.lists.wList;
  windowSpan(fold, start, end);
  const ta = WS_TA;
  const tb = WS_TB;
  const cutEnd = WS_CUT_END;
  let n = 0;
  let prev = 0;
  let havePrev = false;
  if (WS_HEAD >= 0) {
    const h = WS_HEAD;
    stage[n++] = h & MASK;
    prev = h;
    havePrev = true;
  }
  let w0 = 0;
  let w1 = 0;
  if (ta < tb) {
    stage[n++] = W_LIST[ta === 0 ? 0 : 2 * ta - 1];
    if (havePrev) stage[n++] = bigramBucket(prev, TOK_HASH[ta] >>> 0);
    w0 = 2 * ta + 1;
    w1 = Math.max(w0, 2 * tb - 1);
    prev = TOK_HASH[tb - 1] >>> 0;
    havePrev = true;
  }
  const e1 = n;
  if (!inKernel && w1 > w0) {
    stage.set(W_LIST.subarray(w0, w1), n);
    n += w1 - w0;
  }
  if (cutEnd) {
    const h = wordHash(fold, TOK_START[tb], end);
    stage[n++] = h & MASK;
    if (havePrev) stage[n++] = bigramBucket(prev, h);
  }
  const a = WS_UA;
  const b = WS_UB;
  let c0 = 0;
  let c1 = 0;
  if (b - a >= 3) {
    c0 = UNIT_OFF[a];
    c1 = UNIT_OFF[b - 3] + 1;
  }
  if (inKernel) return kernel.dotLists(q, e1, w0, w1, n, c0, c1);
  if (c1 > c0) {
    stage.set(C_LIST.subarray(c0, c1), n);
    n += c1 - c0;
  }
  return kernel.dot(n, q);
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

/** Lines shorter than this (code units) are merged with the following ones into one indirect window. */
export const LINE_MIN = 64;
/** A run of short lines of at least this many units before a long line is a window of its own (about three words). */
export const LINE_ALONE = 16;
/**
 * Windows of the indirect head: one per line (a planted instruction is usually its own line or
 * paragraph, so its window is not diluted by the surrounding data). Short lines are merged with
 * the following ones until the window reaches LINE_MIN units, except that a run of short lines
 * (at least LINE_ALONE units) right before a long line stays a window of its own (a one-line
 * question above a table is not merged into the table). Lines longer than INDIRECT_WINDOW are
 * cut into INDIRECT_WINDOW/INDIRECT_STRIDE windows, so an instruction in the middle of a long line
 * is still scored in 256-unit windows; a fenced code block counts as one long line; a short tail
 * joins the previous window. Each code unit lies in at most two windows, as with the fixed
 * windows before.
 */
export function indirectWindows(fold: string): [number, number][] {
  const out: [number, number][] = [];
  const n = fold.length;
  const emit = (start: number, e: number) => {
    if (e - start <= INDIRECT_WINDOW) out.push([start, e]);
    else for (const [a, b] of windows(e - start, INDIRECT_WINDOW, INDIRECT_STRIDE)) out.push([start + a, start + b]);
  };
  let i = 0;
  let pend = -1;
  let pendEnd = -1;
  let fence = -1; // start of an open fenced code block
  while (i < n) {
    let j = fold.indexOf('\n', i);
    if (j < 0) j = n;
    let s = i;
    let e = j;
    while (s < e && isSpace(fold.charCodeAt(s))) s++;
    while (e > s && isSpace(fold.charCodeAt(e - 1))) e--;
    i = j + 1;
    if (e === s) continue;
    // A fenced code block (``` … ```) is one segment, like one long line: its short lines are not
    // windows of their own.
    const isFence = e - s >= 3 && fold.charCodeAt(s) === 96 && fold.charCodeAt(s + 1) === 96 && fold.charCodeAt(s + 2) === 96;
    if (fence < 0 && isFence && fold.indexOf('```', e) >= 0) {
      fence = s;
      continue;
    }
    if (fence >= 0) {
      if (!isFence && j < n) continue;
      s = fence;
      fence = -1;
    }
    if (pend >= 0 && e - s >= LINE_MIN && pendEnd - pend >= LINE_ALONE) {
      out.push([pend, pendEnd]);
      pend = -1;
    }
    pendEnd = e;
    const start = pend >= 0 ? pend : s;
    if (e - start < LINE_MIN && j < n) pend = start;
    else {
      pend = -1;
      emit(start, e);
    }
  }
  if (fence >= 0) {
    // Unclosed at the end cannot happen (a fence opens only when a closing one follows); kept for safety.
    emit(pend >= 0 ? pend : fence, n);
    pend = -1;
  }
  // A short tail (a signature, a last short line) joins the previous window; only a tail of at
  // least LINE_ALONE units is a window of its own.
  if (pend >= 0) {
    const last = out[out.length - 1];
    if (last !== undefined && pendEnd - pend < LINE_ALONE) last[1] = pendEnd;
    else out.push([pend, pendEnd]);
  }
  if (out.length === 0) out.push([0, n]);
  return out;
}
