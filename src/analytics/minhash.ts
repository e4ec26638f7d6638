/**
 * MinHash signatures over word shingles and LSH banding, for finding near-duplicate prompts
 * (the same template with a few words changed) without storing the prompts themselves.
 */

/** Lower-cases each code point on its own (so a token's length and spans do not depend on its neighbours). */
function lowerEach(word: string): string {
  if (/^[\x00-\x7f]*$/.test(word)) return word.toLowerCase();
  let out = '';
  for (const ch of word) out += ch.toLowerCase();
  return out;
}

/** Word tokens of a text (runs of letters and digits, each character lower-cased; at most `max`). */
export function tokenize(text: string, max = 256): string[] {
  const out: string[] = [];
  const re = /[\p{L}\p{N}]+/gu;
  let m: RegExpExecArray | null;
  while (out.length < max && (m = re.exec(text)) !== null) out.push(lowerEach(m[0]));
  return out;
}

const WORD_CHAR = /^[\p{L}\p{N}]$/u;

/** Word tokens of a text as hashes, with their UTF-16 spans in the text (no strings built). */
export interface TokenHashes {
  /** `fnv1a` of each lower-cased token (equal to `fnv1a` of the token `tokenize` returns). */
  hashes: Uint32Array;
  starts: Uint32Array;
  ends: Uint32Array;
}

/**
 * The tokens of `tokenize` (runs of letters and digits, lower-cased, at most `max`), hashed in one
 * pass over the text: ASCII is classified and lower-cased inline; other characters go through the
 * Unicode letter/number class and `toLowerCase` one at a time. `hashes` is a fresh array; `starts`
 * and `ends` are views of buffers that the next call reuses (read them before tokenizing again).
 */
export function tokenHashes(text: string, max = 256): TokenHashes {
  const t = tokenHashesView(text, max);
  return { hashes: t.hashes.slice(), starts: t.starts, ends: t.ends };
}

/**
 * Like `tokenHashes`, but `hashes` too is a view of a buffer the next call reuses: nothing is
 * allocated outside the JS heap (a typed array of over 64 bytes has its memory from malloc, and
 * one per request kept for a while fragments the process's malloc heap).
 */
export function tokenHashesView(text: string, max = 256): TokenHashes {
  const t = scratchTokens(max);
  const n = scanTokens(text, max, t.hashes, t.starts, t.ends);
  return { hashes: t.hashes.subarray(0, n), starts: t.starts.subarray(0, n), ends: t.ends.subarray(0, n) };
}

let scratch: { hashes: Uint32Array; starts: Uint32Array; ends: Uint32Array } | undefined;
function scratchTokens(max: number): { hashes: Uint32Array; starts: Uint32Array; ends: Uint32Array } {
  if (!scratch || scratch.hashes.length < max) scratch = { hashes: new Uint32Array(max), starts: new Uint32Array(max), ends: new Uint32Array(max) };
  return scratch;
}

/** Fills `hashes`/`starts`/`ends` with up to `max` tokens of `text`; returns how many. */
function scanTokens(text: string, max: number, hashes: Uint32Array, starts: Uint32Array, ends: Uint32Array): number {
  let n = 0;
  let h = 0;
  let start = -1;
  const len = text.length;
  for (let i = 0; i <= len && n < max; ) {
    const c = i < len ? text.charCodeAt(i) : 32;
    let step = 1;
    let word = false;
    if (c < 128) {
      if ((c >= 97 && c <= 122) || (c >= 48 && c <= 57)) {
        word = true;
        if (start < 0) {
          start = i;
          h = 0x811c9dc5;
        }
        h = Math.imul(h ^ c, 0x01000193);
      } else if (c >= 65 && c <= 90) {
        word = true;
        if (start < 0) {
          start = i;
          h = 0x811c9dc5;
        }
        h = Math.imul(h ^ (c | 0x20), 0x01000193);
      }
    } else {
      const cp = text.codePointAt(i)!;
      step = cp > 0xffff ? 2 : 1;
      const ch = String.fromCodePoint(cp);
      if (WORD_CHAR.test(ch)) {
        word = true;
        if (start < 0) {
          start = i;
          h = 0x811c9dc5;
        }
        const lower = ch.toLowerCase();
        for (let j = 0; j < lower.length; j++) h = Math.imul(h ^ lower.charCodeAt(j), 0x01000193);
      }
    }
    if (!word && start >= 0) {
      hashes[n] = h >>> 0;
      starts[n] = start;
      ends[n] = i;
      n++;
      start = -1;
    }
    i += step;
  }
  return n;
}

/** Marks an empty bin of a one-permutation signature (and the all-empty signature of no text). */
const EMPTY = 0xffffffff;

/** MurmurHash3's 32-bit finaliser: spreads every input bit over the whole word. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** 32-bit FNV-1a of a string. */
export function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** A MinHash family with `bands × rows` hash functions (seeded, deterministic). */
export class MinHasher {
  readonly size: number;
  private readonly a: Uint32Array;
  private readonly b: Uint32Array;
  constructor(
    readonly bands = 16,
    readonly rows = 4,
    readonly shingle = 2,
    seed = 0x5eed,
  ) {
    this.size = bands * rows;
    this.a = new Uint32Array(this.size);
    this.b = new Uint32Array(this.size);
    let x = seed >>> 0;
    const next = () => {
      x ^= x << 13;
      x >>>= 0;
      x ^= x >>> 17;
      x ^= x << 5;
      return x >>> 0;
    };
    for (let i = 0; i < this.size; i++) {
      this.a[i] = next() | 1;
      this.b[i] = next();
    }
  }

  /** The signature of a token list (empty input → all-max signature). */
  signature(tokens: readonly string[]): Uint32Array {
    const hashes = new Uint32Array(tokens.length);
    for (let i = 0; i < tokens.length; i++) hashes[i] = fnv1a(tokens[i]!);
    return this.signatureOfHashes(hashes);
  }

  /**
   * The signature of a list of token hashes (`fnv1a` of each token), by one-permutation hashing
   * (Li, Owen & Zhang 2012): each shingle of `shingle` consecutive tokens is hashed once (from its
   * tokens' hashes, no strings built), the hash picks one of `size` bins and the smallest value per
   * bin is kept; empty bins borrow from the next non-empty bin to their right, offset by the
   * distance (rotation densification, Shrivastava & Li 2014). Two signatures agree in a bin with
   * probability ≈ the Jaccard similarity of the shingle sets — like `size` independent hash
   * functions, at the cost of one hash per shingle instead of `size`.
   */
  signatureOfHashes(tokens: Uint32Array): Uint32Array {
    return this.signatureInto(tokens, new Uint32Array(this.size));
  }

  /** `signatureOfHashes` written into `sig` (`size` words, e.g. a view of a larger buffer); returns `sig`. */
  signatureInto(tokens: Uint32Array, sig: Uint32Array): Uint32Array {
    const n = this.size;
    sig.fill(EMPTY);
    const k = Math.min(this.shingle, Math.max(1, tokens.length));
    const seed = this.b[0]!;
    let filled = 0;
    for (let i = 0; i + k <= tokens.length; i++) {
      let h = 0x811c9dc5;
      for (let t = 0; t < k; t++) h = Math.imul(h ^ tokens[i + t]!, 0x01000193);
      const bin = Math.floor(((fmix32(h) >>> 0) * n) / 0x1_0000_0000);
      const v = fmix32(h ^ seed) >>> 1; // 31 bits: room for the densification offsets below EMPTY
      if (sig[bin] === EMPTY) filled++;
      if (v < sig[bin]!) sig[bin] = v;
    }
    if (filled === 0 || filled === n) return sig;
    for (let i = 0; i < n; i++) {
      if (sig[i] !== EMPTY) continue;
      let d = 1;
      while (sig[(i + d) % n] === EMPTY || sig[(i + d) % n]! >= 0x8000_0000) d++;
      sig[i] = (0x8000_0000 + ((sig[(i + d) % n]! + Math.imul(d, 0x9e3779b1)) & 0x7fff_ffff)) >>> 0;
    }
    return sig;
  }

  /**
   * The LSH band keys of a signature (equal keys in any band → candidate near-duplicates): the
   * band number times 2^32 plus the band's 32-bit hash, a safe integer (cheap Map key, no string).
   */
  bandKeys(sig: Uint32Array): number[] {
    const keys: number[] = new Array<number>(this.bands);
    for (let b = 0; b < this.bands; b++) {
      let h = 0x811c9dc5 ^ b;
      for (let r = 0; r < this.rows; r++) h = Math.imul(h ^ sig[b * this.rows + r]!, 0x01000193);
      keys[b] = b * 0x1_0000_0000 + (h >>> 0);
    }
    return keys;
  }

  /** Estimated Jaccard similarity of two signatures. */
  static similarity(x: Uint32Array, y: Uint32Array): number {
    return MinHasher.similarityAt(x, 0, y, 0, x.length);
  }

  /** `similarity` of the `n`-word signatures at `xo` in `x` and at `yo` in `y` (no views made). */
  static similarityAt(x: Uint32Array, xo: number, y: Uint32Array, yo: number, n: number): number {
    let eq = 0;
    for (let i = 0; i < n; i++) if (x[xo + i] === y[yo + i]) eq++;
    return eq / n;
  }
}
