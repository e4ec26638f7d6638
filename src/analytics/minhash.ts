/**
 * MinHash signatures over word shingles and LSH banding, for finding near-duplicate prompts
 * (the same template with a few words changed) without storing the prompts themselves.
 */

/** Lower-cased word tokens of a text (letters, digits; at most `max`). */
export function tokenize(text: string, max = 256): string[] {
  const out: string[] = [];
  const re = /[\p{L}\p{N}]+/gu;
  const lower = text.toLowerCase();
  let m: RegExpExecArray | null;
  while (out.length < max && (m = re.exec(lower)) !== null) out.push(m[0]);
  return out;
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
   * The signature of a list of token hashes (`fnv1a` of each token): each shingle of `shingle`
   * consecutive tokens is hashed from its tokens' hashes, so no shingle string is built.
   */
  signatureOfHashes(tokens: Uint32Array): Uint32Array {
    const sig = new Uint32Array(this.size).fill(0xffffffff);
    const k = Math.min(this.shingle, Math.max(1, tokens.length));
    const a = this.a;
    const b = this.b;
    const n = this.size;
    for (let i = 0; i + k <= tokens.length; i++) {
      let h = 0x811c9dc5;
      for (let t = 0; t < k; t++) h = Math.imul(h ^ tokens[i + t]!, 0x01000193);
      h >>>= 0;
      for (let j = 0; j < n; j++) {
        const v = (Math.imul(a[j]!, h) + b[j]!) >>> 0;
        if (v < sig[j]!) sig[j] = v;
      }
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
    let eq = 0;
    for (let i = 0; i < x.length; i++) if (x[i] === y[i]) eq++;
    return eq / x.length;
  }
}
