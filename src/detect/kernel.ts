/**
 * The detectors' innermost loops as one small WebAssembly module, shared by the injection
 * detector and the secrets keyword scan (pure: text in, numbers out, no I/O). Four functions:
 *
 * - `dot`: count a window's feature buckets (a 2^18-entry u16 table) in order, recording first
 *   touches, then the normalised dot product of 1 + ln(count) with int8 weights over the touched
 *   buckets in first-touch order, clearing the counts — `bumpRange` + `touchedDot` of
 *   injection/features.ts step for step (f64 multiply and add in the same order, the same
 *   1 + ln(c) values from a table filled by Math.log, a correctly rounded square root);
 * - `prepare`: injection/features.ts' prepareText hashing pass (tokens, word buckets, units,
 *   n-gram buckets) for texts up to KERNEL_PREP_MAX code units;
 * - `words`: injection/rules.ts' word-index scan over the rule-key trie that rules.ts loads;
 * - `scan`: walks the built-in secrets keyword automaton (secrets/keywords.ts).
 *
 * Each gives bit-identical results to the JavaScript code it replaces (which stays, and runs
 * where WebAssembly cannot, e.g. `--jitless`, and for inputs over the kernel's limits); the tests
 * compare the two. WebAssembly only drops the JavaScript overheads of these loops (bounds
 * checks, typed-array dispatch). The module is assembled here from its instructions (no binary
 * file); `KERNEL` is undefined when WebAssembly is unavailable.
 */
import { BIGRAM_MUL, BUCKET_MIX, CHAR3_SALT, CHAR4_SALT, CHAR_SEED, FEATURE_BITS, FNV_OFFSET, FNV_PRIME, SHAPE3_SALT, SHAPE4_SALT, SHAPE_SEED } from './feature-hash.js';

/** Largest count the kernel's log table covers: windows of at most WINDOW (1024) units count at most 6 * 1024 + 4. */
export const KERNEL_MAX_COUNT = 8191;

// Memory layout (byte offsets).
const LOG_OFF = 0; // f64 × 8192: 1 + ln(c), 0 for c = 0
const TOUCH_OFF = 65_536; // u32 × 8192: touched buckets in first-touch order
const STAGE_OFF = 98_304; // i32 × 8192: the window's buckets, in bump order
const ACC_OFF = 131_072; // u16 × 2^18: counts (zero between calls)
const Q_OFF = [655_360, 917_504]; // two slots of int8 × 2^18 weights
// prepareText's part (texts of at most KERNEL_PREP_MAX code units).
/** Longest text `prepare` takes (longer ones are prepared in JavaScript). */
export const KERNEL_PREP_MAX = 16_384;
const CLS_OFF = 1_179_648; // u8 × 65536: 1 whitespace, 2 word code, 0 other
const SHAPE_OFF = CLS_OFF + 65_536; // u8 × 128: shape class of an ASCII code unit
const RES_OFF = SHAPE_OFF + 128; // i32 × 2: tokens, units
const TEXT_OFF = RES_OFF + 64; // u16 × KERNEL_PREP_MAX
const CAP = KERNEL_PREP_MAX + 1;
const TOKS_OFF = TEXT_OFF + 2 * KERNEL_PREP_MAX; // i32 × CAP each: token start, end, hash
const TOKE_OFF = TOKS_OFF + 4 * CAP;
const TOKH_OFF = TOKE_OFF + 4 * CAP;
const WL_OFF = TOKH_OFF + 4 * CAP; // i32 × 2 CAP
const UPOS_OFF = WL_OFF + 8 * CAP; // i32 × CAP
const UOFF_OFF = UPOS_OFF + 4 * CAP; // i32 × CAP
const CL_OFF = UOFF_OFF + 4 * CAP; // i32 × 4 CAP
// The rules' word index (rules.ts): a trie over the rule keys, and the events it emits.
/** Most trie nodes the kernel holds (37 children each, u16). */
const TRIE_MAX_NODES = 3_500;
const CHILD_OFF = CL_OFF + 16 * CAP; // u16 × 37 × TRIE_MAX_NODES: child node (0 none)
const PKEY_OFF = CHILD_OFF + 2 * 37 * TRIE_MAX_NODES; // u16 × TRIE_MAX_NODES: prefix key + 1 (0 none)
const WKEY_OFF = PKEY_OFF + 2 * TRIE_MAX_NODES; // u16 × TRIE_MAX_NODES: word key + 1 (0 none)
const SYM_OFF = WKEY_OFF + 2 * TRIE_MAX_NODES; // i8 × 128: symbol of an ASCII code unit (-1 none)
const EVT_OFF = SYM_OFF + 128; // i32 × 4 CAP: events (key << 16 | word start; automaton states)
// One keyword automaton (secrets/keywords.ts): rows of DFA_STRIDE u16 next states per state.
/** Most states and character classes (class 0 included) of the automaton the kernel holds. */
export const KERNEL_DFA_MAX_STATES = 3_072;
export const KERNEL_DFA_STRIDE = 64;
const DFA_OFF = EVT_OFF + 16 * CAP; // u16 × DFA_STRIDE × DFA_MAX_STATES
const DFA_OUT_OFF = DFA_OFF + 2 * KERNEL_DFA_STRIDE * KERNEL_DFA_MAX_STATES; // u8 × DFA_MAX_STATES: 1 when the state has output
const DFA_CLS_OFF = DFA_OUT_OFF + KERNEL_DFA_MAX_STATES; // u8 × 128: character class of an ASCII code unit
const PAGES = Math.ceil((DFA_CLS_OFF + 128) / 65_536);

/** Most buckets one call takes (the staging area). */
export const KERNEL_MAX_BUCKETS = 8192;

function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}

function section(id: number, body: number[]): number[] {
  return [id, ...uleb(body.length), ...body];
}

function name(s: string): number[] {
  return [...uleb(s.length), ...Array.from(s, (c) => c.charCodeAt(0))];
}

const get = (x: number) => [0x20, x];
const set = (x: number) => [0x21, x];
const tee = (x: number) => [0x22, x];
const i32 = (x: number) => [0x41, ...sleb(x | 0)];
const mem = (op: number, align: number, offset: number) => [op, align, ...uleb(offset)];
const I32_LOAD = 0x28, I32_LOAD8_S = 0x2c, I32_LOAD8_U = 0x2d, I32_LOAD16_U = 0x2f, F64_LOAD = 0x2b, I32_STORE = 0x36, I32_STORE16 = 0x3b;
const EQZ = 0x45, EQ = 0x46, NE = 0x47, LT_U = 0x49, GE_U = 0x4f;
const ADD = 0x6a, SUB = 0x6b, MUL = 0x6c, AND = 0x71, OR = 0x72, XOR = 0x73, SHL = 0x74, SHR_U = 0x76, SELECT = 0x1b;
const F_ADD = 0xa0, F_MUL = 0xa2, F_DIV = 0xa3, F_SQRT = 0x9f, F_GT = 0x64, F_FROM_I32 = 0xb7;
const IF = [0x04, 0x40], ELSE = [0x05], END = [0x0b];
/** i32 store of `value` at `base + 4 * index`. */
const store32 = (base: number, index: number[], value: number[]) => [...index, ...i32(2), SHL, ...value, ...mem(I32_STORE, 2, base)];

/**
 * `dot(q, a1, n1, a2, n2, a3, n3, a4, n4)`: bumpRange over four runs of i32 buckets (byte
 * address, count) in order, then touchedDot with the weights at q.
 */
function dotBody(): number[] {
  // Locals: 0 q, 1-8 the runs (params); 9 j, 10 nt, 11 k, 12 a, 13 c (i32); 14 s, 15 norm, 16 v (f64).
  const [q, j, nt, k, a, c, s, norm, v] = [0, 9, 10, 11, 12, 13, 14, 15, 16];
  const f64zero = [0x44, 0, 0, 0, 0, 0, 0, 0, 0];
  // for (j = 0; j < count; j++): k = run[j]; c = acc[k]; touch[nt] = k; nt += (c - 1) >>> 31; acc[k] = c + 1
  const bump = (addr: number, count: number) => [
    ...i32(0), ...set(j),
    0x02, 0x40, 0x03, 0x40,
    ...get(j), ...get(count), GE_U, 0x0d, 1,
    ...get(addr), ...get(j), ...i32(2), SHL, ADD, ...mem(I32_LOAD, 2, 0), ...set(k),
    ...get(k), ...i32(1), SHL, ...tee(a), ...mem(I32_LOAD16_U, 1, ACC_OFF), ...set(c),
    ...store32(TOUCH_OFF, get(nt), get(k)),
    ...get(nt), ...get(c), ...i32(1), SUB, ...i32(31), SHR_U, ADD, ...set(nt),
    ...get(a), ...get(c), ...i32(1), ADD, ...mem(I32_STORE16, 1, ACC_OFF),
    ...get(j), ...i32(1), ADD, ...set(j),
    0x0c, 0, 0x0b, 0x0b,
  ];
  const code = [
    ...bump(1, 2), ...bump(3, 4), ...bump(5, 6), ...bump(7, 8),
    // for (j = 0; j < nt; j++): k = touch[j]; c = acc[k]; acc[k] = 0; v = log[c]; norm += v * v; s += q[k] * v
    ...i32(0), ...set(j),
    0x02, 0x40, 0x03, 0x40,
    ...get(j), ...get(nt), GE_U, 0x0d, 1,
    ...get(j), ...i32(2), SHL, ...mem(I32_LOAD, 2, TOUCH_OFF), ...set(k),
    ...get(k), ...i32(1), SHL, ...tee(a), ...mem(I32_LOAD16_U, 1, ACC_OFF), ...set(c),
    ...get(a), ...i32(0), ...mem(I32_STORE16, 1, ACC_OFF),
    ...get(c), ...i32(3), SHL, ...mem(F64_LOAD, 3, LOG_OFF), ...set(v),
    ...get(norm), ...get(v), ...get(v), F_MUL, F_ADD, ...set(norm),
    ...get(s), ...get(q), ...get(k), ADD, ...mem(I32_LOAD8_S, 0, 0), F_FROM_I32, ...get(v), F_MUL, F_ADD, ...set(s),
    ...get(j), ...i32(1), ADD, ...set(j),
    0x0c, 0, 0x0b, 0x0b,
    // norm > 0 ? s / sqrt(norm) : 0
    ...get(norm), ...f64zero, F_GT,
    0x04, 0x7c, ...get(s), ...get(norm), F_SQRT, F_DIV, 0x05, ...f64zero, 0x0b,
    0x0b,
  ];
  return [0x02, 5, 0x7f, 3, 0x7c, ...code];
}

/**
 * `prepare(n)`: prepareText of features.ts over the n code units at TEXT_OFF, step for step (the
 * same hashes, lists and counts), writing the token, word-bucket, unit and n-gram lists and the
 * numbers of tokens and units (RES_OFF).
 */
function prepareBody(): number[] {
  const [n, j, c, cls, t, w, prev, inWord, wh, wlen, c0, c1, c2, c3, k, k0, k1, k2, k3, np, have, lastSpace, o, h, g] = Array.from({ length: 25 }, (_, i) => i);
  const MASK = (1 << FEATURE_BITS) - 1;
  const P = FNV_PRIME;
  const SEED1 = FNV_OFFSET ^ 1;
  const MIX = BUCKET_MIX;
  /** The token of hash `h` ending at `end`: hash, word buckets (unigram, bigram with the previous token). */
  const emit = (end: number[]) => [
    ...store32(TOKE_OFF, get(t), end),
    ...store32(TOKH_OFF, get(t), get(h)),
    ...store32(WL_OFF, get(w), [...get(h), ...i32(MASK), AND]),
    ...get(w), ...i32(1), ADD, ...set(w),
    ...get(t), ...IF,
    ...store32(WL_OFF, get(w), [...get(prev), ...get(h), ...i32(BIGRAM_MUL), MUL, XOR, ...i32(MIX), MUL, ...i32(MASK), AND]),
    ...get(w), ...i32(1), ADD, ...set(w),
    ...END,
    ...get(h), ...set(prev),
    ...get(t), ...i32(1), ADD, ...set(t),
  ];
  /** cList[o++] = imul(x ^ salt, MIX) & MASK */
  const gram = (x: number, salt: number) => [...store32(CL_OFF, get(o), [...get(x), ...i32(salt), XOR, ...i32(MIX), MUL, ...i32(MASK), AND]), ...get(o), ...i32(1), ADD, ...set(o)];
  /** x = imul(x ^ y, P) */
  const fnv = (x: number, y: number) => [...get(x), ...get(y), XOR, ...i32(P), MUL, ...set(x)];
  const code = [
    ...i32(1), ...set(lastSpace),
    0x02, 0x40, 0x03, 0x40, // block $exit, loop $next
    ...get(j), ...get(n), GE_U, 0x0d, 1,
    0x02, 0x40, // block $skip: leaving it skips the unit part
    ...get(j), ...i32(1), SHL, ...mem(I32_LOAD16_U, 1, TEXT_OFF), ...set(c),
    ...get(c), ...mem(I32_LOAD8_U, 0, CLS_OFF), ...set(cls),
    // Tokens: words (max 24 code units hashed) and single marks.
    ...get(cls), ...i32(2), EQ, ...IF,
    ...get(inWord), EQZ, ...IF,
    ...i32(1), ...set(inWord),
    ...store32(TOKS_OFF, get(t), get(j)),
    ...i32(SEED1), ...set(wh),
    ...i32(0), ...set(wlen),
    ...END,
    ...get(wlen), ...i32(24), LT_U, ...IF, ...fnv(wh, c), ...END,
    ...get(wlen), ...i32(1), ADD, ...set(wlen),
    ...ELSE,
    ...get(inWord), ...IF,
    ...i32(0), ...set(inWord),
    ...get(wh), ...set(h),
    ...emit(get(j)),
    ...END,
    ...get(cls), ...i32(1), NE, ...IF,
    ...i32(SEED1), ...get(c), XOR, ...i32(P), MUL, ...set(h),
    ...store32(TOKS_OFF, get(t), get(j)),
    ...emit([...get(j), ...i32(1), ADD]),
    ...END,
    ...END,
    // Collapsed units: a whitespace run is one space.
    ...get(cls), ...i32(1), EQ, ...IF,
    ...get(lastSpace), 0x0d, 1, // br_if $skip
    ...i32(32), ...set(c),
    ...i32(1), ...set(lastSpace),
    ...ELSE,
    ...i32(0), ...set(lastSpace),
    ...END,
    ...store32(UPOS_OFF, get(have), get(j)),
    ...get(c1), ...set(c0), ...get(c2), ...set(c1), ...get(c3), ...set(c2), ...get(c), ...set(c3),
    // k = c < 128 ? SHAPE[c] : c >= 0xc0 ? 97 : c
    ...get(c), ...i32(127), AND, ...mem(I32_LOAD8_U, 0, SHAPE_OFF),
    ...i32(97), ...get(c), ...get(c), ...i32(0xc0), GE_U, SELECT,
    ...get(c), ...i32(128), LT_U, SELECT, ...set(k),
    ...get(k1), ...set(k0), ...get(k2), ...set(k1), ...get(k3), ...set(k2), ...get(k), ...set(k3),
    // np = ((np << 1) | (k is neither a letter nor a space)) & 15
    ...get(np), ...i32(1), SHL, ...get(k), ...i32(97), NE, ...get(k), ...i32(32), NE, AND, OR, ...i32(15), AND, ...set(np),
    ...get(have), ...i32(1), ADD, ...tee(have), ...i32(4), GE_U, ...IF,
    ...store32(UOFF_OFF, [...get(have), ...i32(4), SUB], get(o)),
    ...i32(CHAR_SEED), ...set(h), ...fnv(h, c0), ...fnv(h, c1), ...fnv(h, c2),
    ...gram(h, CHAR3_SALT),
    ...fnv(h, c3),
    ...gram(h, CHAR4_SALT),
    ...get(np), ...IF,
    ...i32(SHAPE_SEED), ...set(g), ...fnv(g, k0), ...fnv(g, k1), ...fnv(g, k2),
    ...get(np), ...i32(14), AND, ...IF, ...gram(g, SHAPE3_SALT), ...END,
    ...fnv(g, k3),
    ...gram(g, SHAPE4_SALT),
    ...END,
    ...END,
    ...END, // $skip
    ...get(j), ...i32(1), ADD, ...set(j),
    0x0c, 0, 0x0b, 0x0b, // br $next; end loop; end block
    // A word running to the end; the 3-gram of the last three units.
    ...get(inWord), ...IF, ...get(wh), ...set(h), ...emit(get(n)), ...END,
    ...get(have), ...i32(3), GE_U, ...IF,
    ...store32(UOFF_OFF, [...get(have), ...i32(3), SUB], get(o)),
    ...i32(CHAR_SEED), ...set(h), ...fnv(h, c1), ...fnv(h, c2), ...fnv(h, c3),
    ...gram(h, CHAR3_SALT),
    ...END,
    ...i32(0), ...get(t), ...mem(I32_STORE, 2, RES_OFF),
    ...i32(0), ...get(have), ...mem(I32_STORE, 2, RES_OFF + 4),
    0x0b,
  ];
  return [0x01, 24, 0x7f, ...code];
}

/**
 * `words(n)`: the scan of rules.ts's wordIndex over the n code units at TEXT_OFF: for every word
 * (a run of [a-z0-9'] starting with [a-z0-9]) walked down the trie, an event per prefix key of
 * its first six characters and for the whole-word key (words of at most 24 characters), and a
 * marker (key 0xffff) after a word holding an apostrophe, whose parts rules.ts indexes itself.
 * Events are `key << 16 | start`, in the order wordIndex adds them; returns their number.
 */
function wordsBody(): number[] {
  const [n, i, c, sym, start, at, apos, e, pk] = Array.from({ length: 9 }, (_, x) => x);
  const LT_S = 0x48, LE_U = 0x4d;
  const isWordChar = [...get(c), ...i32(97), SUB, ...i32(26), LT_U, ...get(c), ...i32(48), SUB, ...i32(10), LT_U, OR];
  const loadChar = [...get(i), ...i32(1), SHL, ...mem(I32_LOAD16_U, 1, TEXT_OFF), ...set(c)];
  const emit = (key: number[]) => [...store32(EVT_OFF, get(e), [...key, ...i32(16), SHL, ...get(start), OR]), ...get(e), ...i32(1), ADD, ...set(e)];
  const code = [
    0x02, 0x40, 0x03, 0x40, // block $exit, loop $next
    ...get(i), ...get(n), GE_U, 0x0d, 1,
    ...loadChar,
    ...isWordChar, EQZ, ...IF, ...get(i), ...i32(1), ADD, ...set(i), 0x0c, 1, ...END,
    ...get(i), ...set(start), ...i32(0), ...set(at), ...i32(0), ...set(apos),
    // The word's symbols down the trie while it has a path for them.
    0x02, 0x40, 0x03, 0x40,
    ...get(i), ...get(n), GE_U, 0x0d, 1,
    ...loadChar,
    ...get(c), ...i32(127), AND, ...mem(I32_LOAD8_S, 0, SYM_OFF), ...i32(-1), ...get(c), ...i32(128), LT_U, SELECT, ...tee(sym),
    ...i32(0), LT_S, 0x0d, 1,
    ...get(apos), ...get(sym), ...i32(36), EQ, OR, ...set(apos),
    ...get(at), ...i32(37), MUL, ...get(sym), ADD, ...i32(1), SHL, ...mem(I32_LOAD16_U, 1, CHILD_OFF), ...tee(at),
    EQZ, 0x0d, 1,
    ...get(i), ...get(start), SUB, ...i32(6), LT_U, ...IF,
    ...get(at), ...i32(1), SHL, ...mem(I32_LOAD16_U, 1, PKEY_OFF), ...tee(pk), ...IF, ...emit([...get(pk), ...i32(1), SUB]), ...END,
    ...END,
    ...get(i), ...i32(1), ADD, ...set(i),
    0x0c, 0, 0x0b, 0x0b,
    ...get(at), ...IF,
    // The trie walked the whole word.
    ...get(i), ...get(start), SUB, ...i32(24), LE_U, ...IF,
    ...get(at), ...i32(1), SHL, ...mem(I32_LOAD16_U, 1, WKEY_OFF), ...tee(pk), ...IF, ...emit([...get(pk), ...i32(1), SUB]), ...END,
    ...END,
    ...ELSE,
    // The rest of the word.
    ...get(i), ...i32(1), ADD, ...set(i),
    0x02, 0x40, 0x03, 0x40,
    ...get(i), ...get(n), GE_U, 0x0d, 1,
    ...loadChar,
    ...isWordChar, ...IF, ...get(i), ...i32(1), ADD, ...set(i), 0x0c, 1, ...END,
    ...get(c), ...i32(39), NE, 0x0d, 1,
    ...i32(1), ...set(apos),
    ...get(i), ...i32(1), ADD, ...set(i),
    0x0c, 0, 0x0b, 0x0b,
    ...END,
    ...get(apos), ...IF, ...emit(i32(0xffff)), ...END,
    0x0c, 0, 0x0b, 0x0b, // br $next; end loop; end block
    ...get(e),
    0x0b,
  ];
  return [0x01, 8, 0x7f, ...code];
}

/**
 * `scan(n)`: the keyword automaton over the n code units at TEXT_OFF, as secrets/keywords.ts
 * walks it (a code unit from 128 on returns to the root): every state reached that has output
 * is written to EVT_OFF in order; returns their number.
 */
function scanBody(): number[] {
  const [n, i, c, st, e] = Array.from({ length: 5 }, (_, x) => x);
  const code = [
    0x02, 0x40, 0x03, 0x40,
    ...get(i), ...get(n), GE_U, 0x0d, 1,
    ...get(i), ...i32(1), SHL, ...mem(I32_LOAD16_U, 1, TEXT_OFF), ...set(c),
    ...get(i), ...i32(1), ADD, ...set(i),
    ...get(c), ...i32(128), GE_U, ...IF, ...i32(0), ...set(st), 0x0c, 1, ...END,
    ...get(st), ...i32(6), SHL, ...get(c), ...mem(I32_LOAD8_U, 0, DFA_CLS_OFF), OR, ...i32(1), SHL, ...mem(I32_LOAD16_U, 1, DFA_OFF), ...tee(st),
    ...mem(I32_LOAD8_U, 0, DFA_OUT_OFF), ...IF, ...store32(EVT_OFF, get(e), get(st)), ...get(e), ...i32(1), ADD, ...set(e), ...END,
    0x0c, 0, 0x0b, 0x0b,
    ...get(e),
    0x0b,
  ];
  return [0x01, 4, 0x7f, ...code];
}

/** The module's bytes. */
function assemble(): Uint8Array {
  const bodies = [dotBody(), prepareBody(), wordsBody(), scanBody()];
  const bytes = [
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    // Types: (i32 × 9) -> f64; (i32) -> (); (i32) -> i32
    ...section(1, [3, 0x60, 9, ...Array(9).fill(0x7f), 1, 0x7c, 0x60, 1, 0x7f, 0, 0x60, 1, 0x7f, 1, 0x7f]),
    ...section(3, [4, 0, 1, 2, 2]),
    ...section(5, [1, 0x00, ...uleb(PAGES)]),
    ...section(7, [5, ...name('mem'), 0x02, 0, ...name('dot'), 0x00, 0, ...name('prepare'), 0x00, 1, ...name('words'), 0x00, 2, ...name('scan'), 0x00, 3]),
    ...section(10, [4, ...bodies.flatMap((b) => [...uleb(b.length), ...b])]),
  ];
  return Uint8Array.from(bytes);
}

/** The instantiated kernel and views of its memory. */
export interface Kernel {
  /** The window's buckets, in bump order, go here (at most KERNEL_MAX_BUCKETS). */
  stage: Int32Array;
  /** `dot(n, weights)`: counts stage[0, n) and returns the normalised dot product with the weights. */
  dot(n: number, weights: Int8Array): number;
  /**
   * The same over stage[0, e1), lists.wList[w0, w1), stage[e1, e2), lists.cList[c0, c1) in that
   * order (the lists of the last `prepare`), without copying the list runs.
   */
  dotLists(weights: Int8Array, e1: number, w0: number, w1: number, e2: number, c0: number, c1: number): number;
  /**
   * Sets prepare's tables (features.ts does, from its own definitions): per code unit 1
   * whitespace, 2 word code, 0 other (65,536 entries); per ASCII code unit its shape class.
   */
  setTables(classes: Uint8Array, shapes: Uint8Array): void;
  /** prepareText's lists, written by `prepare` (capacity KERNEL_PREP_MAX + 1 tokens/units). */
  lists: { tokStart: Int32Array; tokEnd: Int32Array; tokHash: Int32Array; wList: Int32Array; unitPos: Int32Array; unitOff: Int32Array; cList: Int32Array };
  /** Prepares `fold` (at most KERNEL_PREP_MAX code units) into `lists`; returns [tokens, units]. */
  prepare(fold: string): [number, number];
  /**
   * Loads rules.ts's word-index trie (child nodes per symbol, prefix and word key per node, -1 for
   * none; the symbol of each ASCII code unit); false when it is too large for the kernel.
   */
  setTrie(child: Int32Array, pKey: Int32Array, wKey: Int32Array, symbols: Int8Array): boolean;
  /** Scans `fold` (at most KERNEL_PREP_MAX code units) for rules.ts's word index: events[0, returned) (see wordsBody). */
  words(fold: string): number;
  events: Int32Array;
  /**
   * Loads a keyword automaton (secrets/keywords.ts) once: next states (rows of KERNEL_DFA_STRIDE
   * per state, by character class), 1 per state with output, the class of each ASCII code unit.
   * Returns a scanner of texts of at most KERNEL_PREP_MAX code units (events[0, returned) are
   * the states with output reached, in order), or undefined when the kernel already holds one or
   * the automaton is too large.
   */
  loadAutomaton(next: Uint16Array, hasOut: Uint8Array, classes: Uint8Array): ((text: string) => number) | undefined;
}

/** The part of the WebAssembly API used here (the project's TypeScript libs do not declare it). */
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object) => { exports: Record<string, unknown> };
}

function instantiate(wasm: WasmApi): Kernel {
  const instance = new wasm.Instance(new wasm.Module(assemble()));
  const wasmDot = instance.exports.dot as (q: number, a1: number, n1: number, a2: number, n2: number, a3: number, n3: number, a4: number, n4: number) => number;
  const buffer = (instance.exports.mem as { buffer: ArrayBuffer }).buffer;
  const log = new Float64Array(buffer, LOG_OFF, KERNEL_MAX_COUNT + 1);
  for (let i = 1; i <= KERNEL_MAX_COUNT; i++) log[i] = 1 + Math.log(i);
  const bytes = new Int8Array(buffer);
  // Weight tables copied into the two slots (the classifier has two heads); a third table
  // (tests) replaces the slot used least recently.
  const slots: (Int8Array | undefined)[] = [undefined, undefined];
  let older = 0;
  /** The address of a weight table in the kernel's memory (copied into a slot on first use). */
  const weightsAt = (weights: Int8Array): number => {
    let slot = slots[0] === weights ? 0 : slots[1] === weights ? 1 : -1;
    if (slot < 0) {
      slot = older;
      bytes.set(weights, Q_OFF[slot]!);
      slots[slot] = weights;
    }
    older = 1 - slot;
    return Q_OFF[slot]!;
  };
  const wasmPrepare = instance.exports.prepare as (n: number) => void;
  const text = Buffer.from(buffer, TEXT_OFF, 2 * KERNEL_PREP_MAX);
  const res = new Int32Array(buffer, RES_OFF, 2);
  let tables = false;
  let trie = false;
  let automaton = false;
  const wasmScan = instance.exports.scan as (n: number) => number;
  const wasmWords = instance.exports.words as (n: number) => number;
  /** The text whose code units are at TEXT_OFF (the word index and prepare read the same fold). */
  let loaded: string | undefined;
  const loadText = (fold: string): void => {
    if (fold.length > KERNEL_PREP_MAX) throw new Error('kernel: text longer than KERNEL_PREP_MAX');
    if (fold === loaded) return;
    // UTF-16 code units as they are (lone surrogates included).
    text.write(fold, 0, 'utf16le');
    loaded = fold;
  };
  return {
    setTables(classes: Uint8Array, shapes: Uint8Array): void {
      if (classes.length !== 65_536 || shapes.length !== 128) throw new Error('kernel tables: 65,536 classes and 128 shapes');
      new Uint8Array(buffer, CLS_OFF, 65_536).set(classes);
      new Uint8Array(buffer, SHAPE_OFF, 128).set(shapes);
      tables = true;
    },
    lists: {
      tokStart: new Int32Array(buffer, TOKS_OFF, CAP),
      tokEnd: new Int32Array(buffer, TOKE_OFF, CAP),
      tokHash: new Int32Array(buffer, TOKH_OFF, CAP),
      wList: new Int32Array(buffer, WL_OFF, 2 * CAP),
      unitPos: new Int32Array(buffer, UPOS_OFF, CAP),
      unitOff: new Int32Array(buffer, UOFF_OFF, CAP),
      cList: new Int32Array(buffer, CL_OFF, 4 * CAP),
    },
    prepare(fold: string): [number, number] {
      if (!tables) throw new Error('kernel: setTables first');
      loadText(fold);
      wasmPrepare(fold.length);
      return [res[0]!, res[1]!];
    },
    setTrie(child: Int32Array, pKey: Int32Array, wKey: Int32Array, symbols: Int8Array): boolean {
      const nodes = pKey.length;
      if (nodes > TRIE_MAX_NODES || child.length !== 37 * nodes || wKey.length !== nodes || symbols.length !== 128) return false;
      for (let x = 0; x < child.length; x++) if (child[x]! < 0 || child[x]! >= nodes) return false;
      new Uint16Array(buffer, CHILD_OFF, child.length).set(child);
      new Uint16Array(buffer, PKEY_OFF, nodes).set(pKey.map((k) => k + 1));
      new Uint16Array(buffer, WKEY_OFF, nodes).set(wKey.map((k) => k + 1));
      new Int8Array(buffer, SYM_OFF, 128).set(symbols);
      trie = true;
      return true;
    },
    words(fold: string): number {
      if (!trie) throw new Error('kernel: setTrie first');
      loadText(fold);
      return wasmWords(fold.length);
    },
    events: new Int32Array(buffer, EVT_OFF, 4 * CAP),
    loadAutomaton(next: Uint16Array, hasOut: Uint8Array, classes: Uint8Array): ((text: string) => number) | undefined {
      const states = hasOut.length;
      if (automaton || states > KERNEL_DFA_MAX_STATES || next.length !== states * KERNEL_DFA_STRIDE || classes.length !== 128) return undefined;
      for (let x = 0; x < next.length; x++) if (next[x]! >= states) return undefined;
      for (let x = 0; x < 128; x++) if (classes[x]! >= KERNEL_DFA_STRIDE) return undefined;
      new Uint16Array(buffer, DFA_OFF, next.length).set(next);
      new Uint8Array(buffer, DFA_OUT_OFF, states).set(hasOut);
      new Uint8Array(buffer, DFA_CLS_OFF, 128).set(classes);
      automaton = true;
      return (input: string): number => {
        loadText(input);
        return wasmScan(input.length);
      };
    },
    stage: new Int32Array(buffer, STAGE_OFF, KERNEL_MAX_BUCKETS),
    dot(count: number, weights: Int8Array): number {
      return wasmDot(weightsAt(weights), STAGE_OFF, count, 0, 0, 0, 0, 0, 0);
    },
    dotLists(weights: Int8Array, e1: number, w0: number, w1: number, e2: number, c0: number, c1: number): number {
      return wasmDot(weightsAt(weights), STAGE_OFF, e1, WL_OFF + 4 * w0, w1 - w0, STAGE_OFF + 4 * e1, e2 - e1, CL_OFF + 4 * c0, c1 - c0);
    },
  };
}

/** The kernel, or undefined where WebAssembly cannot run. */
export const KERNEL: Kernel | undefined = (() => {
  const wasm = (globalThis as { WebAssembly?: WasmApi }).WebAssembly;
  try {
    return wasm === undefined ? undefined : instantiate(wasm);
  } catch {
    return undefined;
  }
})();
