/**
 * Text normalisation before detection (pure, linear-time).
 *
 * `normalize(text)` returns:
 * - `text`: the cleaned view — NFKC per character cluster, zero-width/bidi/tag/variation
 *   characters removed (and flagged);
 * - `fold`: a matching view of exactly the same length — lowercased, diacritics stripped,
 *   homoglyphs folded with the `confusables` table (inside tokens that already contain
 *   ASCII letters, so genuine Cyrillic/Greek words are left alone), leetspeak folded inside
 *   tokens that mix letters and digits/symbols;
 * - `starts`/`ends`: for every code unit of the view, the span it came from in the original;
 * - `decoded`: payloads found and decoded (Unicode tags, base64, hex, URL-encoding, ROT13),
 *   each with its span in the original text and its own normalised view (bounded depth/size);
 * - `flags`: counts of what was removed, folded or decoded.
 *
 * Offsets always refer to the original text: use `toOriginal()` to map a view span.
 */
import { isUtf8 } from 'node:buffer';
import { confusablesMap } from 'confusables';

/** Kinds of decoded payloads. */
export type PayloadKind = 'tags' | 'base64' | 'hex' | 'url' | 'rot13';

/** A decoded payload found inside the text. */
export interface DecodedPayload {
  kind: PayloadKind;
  /** Span of the encoded payload in the original text. */
  start: number;
  end: number;
  /** Nesting depth (1 = found in the input, 2 = found inside a decoded payload …). */
  depth: number;
  /** The normalised view of the decoded text (its own offsets are relative to the decoded text). */
  view: NormalizedText;
}

/** Counts of what normalisation changed. */
export interface NormalizeFlags {
  zeroWidth: number;
  bidi: number;
  tags: number;
  variationSelectors: number;
  confusables: number;
  leet: number;
  nfkc: number;
  decoded: Partial<Record<PayloadKind, number>>;
}

/** A normalised view of a text plus the map back to the original. */
export interface NormalizedText {
  /** The original text. */
  original: string;
  /** Cleaned view (NFKC, invisible characters removed). */
  text: string;
  /** Matching view: same length as `text`, lowercased, diacritics, homoglyphs and leetspeak folded. */
  fold: string;
  /** Original start offset of each code unit of `text`/`fold` (read only: may be a view of a shared array). */
  readonly starts: Uint32Array;
  /** Original end offset (exclusive) of each code unit of `text`/`fold` (read only, like `starts`). */
  readonly ends: Uint32Array;
  /** Decoded payloads (nested ones are listed flat, with spans in this text's original). */
  decoded: DecodedPayload[];
  flags: NormalizeFlags;
}

/** Options of `normalize`. */
export interface NormalizeOptions {
  /** Maximum nesting depth of decoding (default 2). */
  maxDepth?: number;
  /** Maximum total decoded characters per call (default 65 536). */
  maxDecodedChars?: number;
  /** Maximum number of decoded payloads per call (default 32). */
  maxPayloads?: number;
  /** Disable payload decoding. */
  decode?: boolean;
}

const ZERO_WIDTH = new Set([0x200b, 0x200c, 0x200d, 0x2060, 0x2061, 0x2062, 0x2063, 0x2064, 0xfeff, 0x00ad, 0x180e, 0x034f, 0x115f, 0x1160, 0x3164, 0xffa0]);
const BIDI = new Set([0x200e, 0x200f, 0x061c, 0x202a, 0x202b, 0x202c, 0x202d, 0x202e, 0x2066, 0x2067, 0x2068, 0x2069]);

function isTag(cp: number): boolean {
  return cp >= 0xe0000 && cp <= 0xe007f;
}
function isVariationSelector(cp: number): boolean {
  return (cp >= 0xfe00 && cp <= 0xfe0f) || (cp >= 0xe0100 && cp <= 0xe01ef);
}
/** A character outside the 1:1 fast path of normalizeAt (U+00A0 and above). */
const BEYOND_FAST = /[^\u0000-\u009f]/;
/** Texts shorter than this take their 1:1 offset maps as views of IOTA (at most 256 KiB kept). */
const IOTA_MAX = 65_536;
let IOTA = new Uint32Array(0);
/** A shared array holding 0, 1, 2 … up to at least `n` - 1 (read only: normalized texts hold views of it; a larger one replaces it, never written to). */
function iotaOf(n: number): Uint32Array {
  if (IOTA.length < n) {
    const next = new Uint32Array(Math.min(IOTA_MAX + 1, Math.max(n, 2 * IOTA.length, 4096)));
    for (let k = 0; k < next.length; k++) next[k] = k;
    IOTA = next;
  }
  return IOTA;
}
/** A character outside ASCII. */
const NON_ASCII = /[^\u0000-\u007f]/;
/** ASCII characters that make a token a leetspeak candidate in foldView (digits and the LEET symbols). */
const LEETISH = /[0-9@$!|]/g;
/** Combining marks (continuing a cluster). */
const MARK = /\p{M}/u;
const LETTER = /\p{L}/u;
const NFKC_CACHE = new Map<string, string>();

/** Latin letters without a canonical decomposition that fold to one ASCII letter. */
const LATIN_EXTRA: Record<string, string> = {
  ı: 'i', ł: 'l', ø: 'o', đ: 'd', ß: 's', æ: 'a', œ: 'o', ð: 'd', þ: 't', ħ: 'h', ŧ: 't', ŀ: 'l',
};
const LEET: Record<string, string> = {
  '0': 'o', '1': 'i', '3': 'e', '4': 'a', '5': 's', '7': 't', '8': 'b', '9': 'g', '@': 'a', $: 's', '!': 'i', '|': 'l', '€': 'e',
};
const LEET_SYMBOL = new Set(['@', '$', '!', '|', '€']);

/** foldChar of non-ASCII BMP code units, by code unit (0 = not computed yet). */
const FOLD_MEMO = new Uint16Array(0x10000);

/** foldChar(String.fromCharCode(c)) as a code unit, memoised (foldChar is a pure function of one code unit). */
function foldCode(c: number): number {
  let f = FOLD_MEMO[c]!;
  if (f === 0) {
    f = foldChar(String.fromCharCode(c)).charCodeAt(0);
    FOLD_MEMO[c] = f;
  }
  return f;
}

/** Folds one BMP code unit to one lowercase, accent-free code unit (or returns it unchanged). */
function foldChar(ch: string): string {
  const code = ch.charCodeAt(0);
  if (code < 0x80) return code >= 65 && code <= 90 ? String.fromCharCode(code + 32) : ch;
  let c = ch.toLowerCase();
  if (c.length !== 1) c = ch;
  const extra = LATIN_EXTRA[c];
  if (extra) return extra;
  const d = c.normalize('NFD');
  if (d.length > 1) {
    const base = d.replace(/\p{M}+/gu, '');
    if (base.length === 1) return base.toLowerCase();
  }
  return c;
}

function isAsciiLetter(code: number): boolean {
  return (code >= 97 && code <= 122) || (code >= 65 && code <= 90);
}

function homoglyph(ch: string): string | undefined {
  const t = confusablesMap.get(ch);
  if (t === undefined || t.length !== 1) return undefined;
  const c = t.charCodeAt(0);
  if (isAsciiLetter(c) || (c >= 48 && c <= 57)) return t.toLowerCase();
  return undefined;
}

/** Normalises a text into a cleaned view, a matching view, an offset map and decoded payloads. */
export function normalize(original: string, opts: NormalizeOptions = {}): NormalizedText {
  const budget = {
    depth: opts.maxDepth ?? 2,
    chars: opts.maxDecodedChars ?? 65_536,
    payloads: opts.maxPayloads ?? 32,
  };
  return normalizeAt(flatten(original), opts.decode === false ? { ...budget, depth: 0 } : budget, 1);
}

interface Budget {
  depth: number;
  chars: number;
  payloads: number;
}

function normalizeAt(original: string, budget: Budget, depth: number): NormalizedText {
  const flags: NormalizeFlags = { zeroWidth: 0, bidi: 0, tags: 0, variationSelectors: 0, confusables: 0, leet: 0, nfkc: 0, decoded: {} };
  const n = original.length;
  const outParts: string[] = [];
  // Fast path: nothing at or above U+00A0 (plain ASCII and C0/C1 controls) maps 1:1 — no
  // invisible characters, no combining marks, nothing for NFKC to change.
  const ascii = !NON_ASCII.test(original);
  const oneToOne = ascii || !BEYOND_FAST.test(original);
  let startsArr: Uint32Array;
  let endsArr: Uint32Array;
  if (oneToOne && n < IOTA_MAX) {
    // The identity maps are views of the shared IOTA (read only): no per-text allocation (a
    // typed array's backing store is zeroed, and from 128 KiB on it is a fresh mmap each time).
    const iota = iotaOf(n + 1);
    startsArr = iota.subarray(0, n);
    endsArr = iota.subarray(1, n + 1);
  } else {
    // One allocation for both offset maps (typed-array backing stores are costly to allocate).
    const maps = new Uint32Array(2 * (n + 8));
    startsArr = maps.subarray(0, n + 8);
    endsArr = maps.subarray(n + 8);
  }
  let len = 0;
  const tagRuns: { start: number; end: number; text: string }[] = [];
  let tagStart = -1;
  let tagText = '';

  const push = (s: string, from: number, to: number) => {
    if (len + s.length > startsArr.length) {
      const cap = Math.max(startsArr.length * 2, len + s.length + 16);
      const ns = new Uint32Array(cap);
      ns.set(startsArr.subarray(0, len));
      const ne = new Uint32Array(cap);
      ne.set(endsArr.subarray(0, len));
      startsArr = ns;
      endsArr = ne;
    }
    for (let k = 0; k < s.length; k++) {
      startsArr[len + k] = from;
      endsArr[len + k] = to;
    }
    len += s.length;
    outParts.push(s);
  };
  const pushRun = (from: number, to: number) => {
    const count = to - from;
    if (len + count > startsArr.length) {
      const cap = Math.max(startsArr.length * 2, len + count + 16);
      const ns = new Uint32Array(cap);
      ns.set(startsArr.subarray(0, len));
      const ne = new Uint32Array(cap);
      ne.set(endsArr.subarray(0, len));
      startsArr = ns;
      endsArr = ne;
    }
    for (let k = 0; k < count; k++) {
      startsArr[len + k] = from + k;
      endsArr[len + k] = from + k + 1;
    }
    len += count;
    outParts.push(original.slice(from, to));
  };

  let i = 0;
  if (oneToOne) {
    if (n >= IOTA_MAX) {
      for (let k = 0; k < n; k++) {
        startsArr[k] = k;
        endsArr[k] = k + 1;
      }
    }
    len = n;
    outParts.push(original);
    i = n;
  }
  while (i < n) {
    const cp = original.codePointAt(i)!;
    const w = cp > 0xffff ? 2 : 1;
    if (isTag(cp)) {
      flags.tags++;
      if (tagStart < 0) {
        tagStart = i;
        tagText = '';
      }
      const a = cp - 0xe0000;
      if (a >= 0x20 && a < 0x7f) tagText += String.fromCharCode(a);
      i += w;
      if (i >= n || !isTag(original.codePointAt(i)!)) {
        if (tagText.length > 0) tagRuns.push({ start: tagStart, end: i, text: tagText });
        tagStart = -1;
      }
      continue;
    }
    if (ZERO_WIDTH.has(cp)) {
      flags.zeroWidth++;
      i += w;
      continue;
    }
    if (BIDI.has(cp)) {
      flags.bidi++;
      i += w;
      continue;
    }
    if (isVariationSelector(cp)) {
      flags.variationSelectors++;
      i += w;
      continue;
    }
    // Fast path: a run of ASCII/C1 characters not followed by a combining mark maps 1:1.
    if (cp < 0xa0) {
      let j = i + 1;
      while (j < n) {
        const c = original.charCodeAt(j);
        if (c >= 0xa0) break;
        j++;
      }
      // The last character of the run may take a following combining mark: leave it to the slow path.
      if (j < n && j - 1 > i && original.charCodeAt(j) >= 0x300) j--;
      if (j > i && !(j === i + 1 && j < n && original.charCodeAt(j) >= 0x300)) {
        pushRun(i, j);
        i = j;
        continue;
      }
    }
    // Cluster: this code point plus following combining marks (bounded to keep NFKC cheap).
    let j = i + w;
    let marks = 0;
    while (j < n && marks < 16) {
      const c2 = original.codePointAt(j)!;
      const w2 = c2 > 0xffff ? 2 : 1;
      if (c2 < 0x300 || isVariationSelector(c2) || !MARK.test(String.fromCodePoint(c2))) break;
      j += w2;
      marks++;
    }
    const cluster = original.slice(i, j);
    if (cp < 0x80 && j === i + 1) {
      push(cluster, i, j);
    } else {
      let k = cluster.length === 1 ? NFKC_CACHE.get(cluster) : undefined;
      if (k === undefined) {
        k = cluster.normalize('NFKC');
        if (cluster.length === 1) NFKC_CACHE.set(cluster, k);
      }
      if (k !== cluster) flags.nfkc++;
      push(k, i, j);
    }
    i = j;
  }

  const text = outParts.join('');
  // (ASCII input: the view is the input, so foldView need not look for non-ASCII again.)
  const fold = ascii ? foldAscii(text, flags) : foldView(text, flags);
  const result: NormalizedText = {
    original,
    text,
    fold,
    starts: startsArr.length === len ? startsArr : startsArr.subarray(0, len),
    ends: endsArr.length === len ? endsArr : endsArr.subarray(0, len),
    decoded: [],
    flags,
  };
  // Tag runs are always decoded (they are invisible text), even without decoding depth.
  for (const run of tagRuns) {
    addPayload(result, 'tags', run.start, run.end, run.text, budget, depth, true);
  }
  if (depth <= budget.depth) findPayloads(result, budget, depth);
  return result;
}

/** Builds the folded matching view (1:1 with `text`). */
function foldView(text: string, flags: NormalizeFlags): string {
  if (!NON_ASCII.test(text)) return foldAscii(text, flags);
  const n = text.length;
  const out = new Uint16Array(n);
  // Pass 1: per-char fold (case, diacritics, Latin extras).
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) out[i] = c >= 65 && c <= 90 ? c + 32 : c;
    else if (c >= 0xd800 && c <= 0xdfff) out[i] = c;
    else out[i] = foldCode(c);
  }
  // Pass 2: token-level homoglyph and leet folding. Tokens are runs of letters, digits and leet symbols.
  let i = 0;
  while (i < n) {
    if (!isTokenCode(out[i])) {
      i++;
      continue;
    }
    let j = i;
    let ascii = 0;
    let nonAscii = 0;
    let digitsOrSym = 0;
    while (j < n && isTokenCode(out[j])) {
      const c = out[j];
      if (c >= 97 && c <= 122) ascii++;
      else if (c >= 0x80 && c !== 0x20ac) nonAscii++;
      else digitsOrSym++;
      j++;
    }
    if (ascii > 0 && nonAscii > 0) {
      for (let k = i; k < j; k++) {
        if (out[k] >= 0x80) {
          const h = homoglyph(String.fromCharCode(out[k])) ?? homoglyph(text[k]);
          if (h !== undefined) {
            out[k] = h.charCodeAt(0);
            flags.confusables++;
          }
        }
      }
    }
    if (digitsOrSym > 0 && ascii + nonAscii > 0 && (ascii >= 2 || nonAscii === 0)) {
      // Only fold leet when the token also has letters; symbols only between letters/digits.
      for (let k = i; k < j; k++) {
        const ch = String.fromCharCode(out[k]);
        const m = LEET[ch];
        if (m === undefined) continue;
        if (LEET_SYMBOL.has(ch) && (k === i || k === j - 1)) continue;
        out[k] = m.charCodeAt(0);
        flags.leet++;
      }
    }
    i = j;
  }
  // One native UTF-16 decode (keeps lone surrogates) into a flat string.
  return Buffer.from(out.buffer, out.byteOffset, n * 2).toString('utf16le');
}

/**
 * foldView for ASCII text (same result): lower case, and leetspeak folded only in tokens that hold
 * a digit or LEET symbol and a letter (there is nothing non-ASCII for the homoglyph step).
 */
function foldAscii(text: string, flags: NormalizeFlags): string {
  const lower = text.toLowerCase();
  const n = lower.length;
  let out: Buffer | undefined;
  LEETISH.lastIndex = 0;
  for (let m = LEETISH.exec(lower); m !== null; m = LEETISH.exec(lower)) {
    // The token around this character: a maximal run of token characters.
    let i = m.index;
    while (i > 0 && isTokenCode(lower.charCodeAt(i - 1))) i--;
    let j = m.index + 1;
    while (j < n && isTokenCode(lower.charCodeAt(j))) j++;
    LEETISH.lastIndex = j;
    let letters = false;
    for (let k = i; k < j && !letters; k++) {
      const c = lower.charCodeAt(k);
      letters = c >= 97 && c <= 122;
    }
    if (!letters) continue;
    for (let k = i; k < j; k++) {
      const ch = lower[k]!;
      const f = LEET[ch];
      if (f === undefined) continue;
      if (LEET_SYMBOL.has(ch) && (k === i || k === j - 1)) continue;
      out ??= Buffer.from(lower, 'latin1');
      out[k] = f.charCodeAt(0);
      flags.leet++;
    }
  }
  return out ? out.toString('latin1') : lower;
}

/**
 * Flattens a rope (a string built by `+=`): reading one code unit at a time from a rope is many
 * times slower than from a flat string. Converting to a number flattens the string in V8 and
 * stops at the first character that cannot be part of a number.
 */
function flatten(s: string): string {
  if (s.length > 256) void Number(s);
  return s;
}

/** isTokenCode by code unit: 0 = not computed yet, 1 = no, 2 = yes (a pure function of the code unit). */
const TOKEN_MEMO = new Uint8Array(0x10000);

function isTokenCode(c: number): boolean {
  let t = TOKEN_MEMO[c]!;
  if (t === 0) {
    t = tokenCode(c) ? 2 : 1;
    TOKEN_MEMO[c] = t;
  }
  return t === 2;
}

function tokenCode(c: number): boolean {
  if (c < 0x80) return (c >= 48 && c <= 57) || (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || c === 64 || c === 36 || c === 33 || c === 124;
  if (c === 0x20ac) return true;
  if (c >= 0xd800 && c <= 0xdfff) return false;
  return LETTER.test(String.fromCharCode(c));
}

/** Maps a span of the view (`text`/`fold`) back to the original text. */
export function toOriginal(norm: NormalizedText, start: number, end: number): { start: number; end: number } {
  const len = norm.starts.length;
  if (len === 0) return { start: 0, end: norm.original.length };
  const s = Math.min(Math.max(start, 0), len - 1);
  const e = Math.min(Math.max(end, s + 1), len);
  return { start: norm.starts[s], end: norm.ends[e - 1] };
}

// ---------------------------------------------------------------------------
// Payload decoding

const B64 = /[A-Za-z0-9+/_-]{16,}={0,2}/g;
const HEX = /(?:\\x[0-9a-fA-F]{2}){6,}|(?:0x)?(?:[0-9a-fA-F]{2}){8,}|(?:[0-9a-fA-F]{2}[ :,]){7,}[0-9a-fA-F]{2}/g;
const URLENC = /(?:[^\s%]{0,24}%[0-9a-fA-F]{2}){3,}[^\s%]{0,64}/g;
const MAX_CANDIDATE = 262_144;

function addPayload(
  into: NormalizedText,
  kind: PayloadKind,
  start: number,
  end: number,
  decoded: string,
  budget: Budget,
  depth: number,
  force = false,
): void {
  if (budget.payloads <= 0 || (!force && budget.chars <= 0)) return;
  const text = decoded.length > budget.chars && !force ? decoded.slice(0, budget.chars) : decoded.slice(0, 65_536);
  budget.payloads--;
  budget.chars -= text.length;
  into.flags.decoded[kind] = (into.flags.decoded[kind] ?? 0) + 1;
  const view = normalizeAt(text, budget, depth + 1);
  into.decoded.push({ kind, start, end, depth, view });
  // Nested payloads: flatten with the outer span (offsets inside a decoded text are not original offsets).
  for (const inner of view.decoded) into.decoded.push({ ...inner, start, end });
}

/** Share of printable characters (letters, digits, punctuation, spaces) in a decoded string. */
function printableRatio(s: string): number {
  if (s.length === 0) return 0;
  let ok = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if ((c >= 0x20 && c < 0x7f) || c === 9 || c === 10 || c === 13 || (c >= 0xa0 && c !== 0xfffd)) ok++;
  }
  return ok / s.length;
}

function looksLikeText(s: string): boolean {
  if (s.length < 4 || printableRatio(s) < 0.9) return false;
  // At least some letters and a space or punctuation: random printable bytes rarely pass.
  let letters = 0;
  let spaces = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (isAsciiLetter(c) || c >= 0xc0) letters++;
    else if (c === 32) spaces++;
  }
  return letters / s.length >= 0.5 && (spaces > 0 || s.length < 24);
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function decodeBase64(s: string): string | undefined {
  let t = s.replace(/=+$/, '').replace(/-/g, '+').replace(/_/g, '/');
  if (t.length % 4 === 1) return undefined;
  while (t.length % 4 !== 0) t += '=';
  try {
    const bytes = Buffer.from(t, 'base64');
    // Most candidates are not UTF-8 text: checking first avoids the decoder's exception.
    return isUtf8(bytes) ? utf8.decode(bytes) : undefined;
  } catch {
    return undefined;
  }
}

function decodeHex(s: string): string | undefined {
  const digits = s.replace(/\\x|0x|[ :,]/g, '');
  if (digits.length % 2 !== 0) return undefined;
  try {
    const bytes = Buffer.from(digits, 'hex');
    return isUtf8(bytes) ? utf8.decode(bytes) : undefined;
  } catch {
    return undefined;
  }
}

function decodeUrl(s: string): string | undefined {
  try {
    return decodeURIComponent(s.replace(/\+/g, ' '));
  } catch {
    try {
      return s.replace(/%([0-9a-fA-F]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)));
    } catch {
      return undefined;
    }
  }
}

/** ROT13 of ASCII letters. */
export function rot13(s: string): string {
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 65 && c <= 90) out += String.fromCharCode(((c - 65 + 13) % 26) + 65);
    else if (c >= 97 && c <= 122) out += String.fromCharCode(((c - 97 + 13) % 26) + 97);
    else out += s[i];
  }
  return out;
}

const COMMON = new Set(
  'the and you your to of is are a in that it for with on this be not all now from as at by or do have any will what how can me my i an ignore instructions previous system prompt tell reveal say write must please'.split(
    ' ',
  ),
);

/** 32-bit FNV-1a hash of s[from, to) with ASCII letters lower-cased (the words compared are ASCII letters). */
function wordHash(s: string, from: number, to: number): number {
  let h = 0x811c9dc5;
  for (let k = from; k < to; k++) h = Math.imul(h ^ (s.charCodeAt(k) | 0x20), 0x01000193);
  return h >>> 0;
}

/** A set of lower-case ASCII words looked up by position in a string, without slicing it. */
function wordSet(words: Iterable<string>): Map<number, string[]> {
  const m = new Map<number, string[]>();
  for (const w of words) {
    const h = wordHash(w, 0, w.length);
    const list = m.get(h);
    if (list) list.push(w);
    else m.set(h, [w]);
  }
  return m;
}

const COMMON_WORDS = wordSet(COMMON);
/** The ROT13 forms of COMMON: a word of a line is common in the line's ROT13 iff it is one of these. */
const ROT13_COMMON_WORDS = wordSet([...COMMON].map(rot13));

/** Whether the ASCII letters s[from, to) equal `w` ignoring case. */
function sameWord(s: string, from: number, to: number, w: string): boolean {
  if (to - from !== w.length) return false;
  for (let k = 0; k < w.length; k++) if ((s.charCodeAt(from + k) | 0x20) !== w.charCodeAt(k)) return false;
  return true;
}

/**
 * Counts, over the words (runs of ASCII letters, case-insensitive, at most 12 letters) of
 * s[from, to), the COMMON words (`before`, counting stops at 3) and the words that are COMMON
 * once ROT13-ed (`after`, counting stops at 9), in one pass; returns before * 16 + after.
 * With before = 3 the scan stops there (`after` is then not complete and not needed).
 */
function lineWordCounts(s: string, from: number, to: number): number {
  let before = 0;
  let after = 0;
  let i = from;
  while (i < to) {
    let c = s.charCodeAt(i);
    if (!isAsciiLetter(c)) {
      i++;
      continue;
    }
    const start = i;
    let h = 0x811c9dc5;
    do {
      h = Math.imul(h ^ (c | 0x20), 0x01000193);
      i++;
    } while (i < to && isAsciiLetter((c = s.charCodeAt(i))));
    if (i - start > 12) continue;
    h >>>= 0;
    const common = COMMON_WORDS.get(h);
    if (common && common.some((w) => sameWord(s, start, i, w)) && ++before >= 3) break;
    const rotated = ROT13_COMMON_WORDS.get(h);
    if (after < 9 && rotated && rotated.some((w) => sameWord(s, start, i, w))) after++;
  }
  return before * 16 + after;
}

/** Per ASCII code: bit 1 = base64 alphabet ([A-Za-z0-9+/_-]), bit 2 = hex-run alphabet ([0-9a-fA-Fx\\ :,]). */
const RUN_CLASS = (() => {
  const t = new Uint8Array(128);
  for (const ch of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/_-') t[ch.charCodeAt(0)]! |= 1;
  for (const ch of '0123456789abcdefABCDEFx\\ :,') t[ch.charCodeAt(0)]! |= 2;
  return t;
})();

/**
 * Maximal runs [start, end) of the characters of class `bit` (RUN_CLASS) at least `min` long, in
 * order. Skips ahead: a run of `min` or more starting at or after `i` contains position
 * i + min - 1, so when that character is outside the class nothing starts before it.
 * Invariant: i is 0 or s[i - 1] is outside the class.
 */
function longRuns(s: string, min: number, bit: number): [number, number][] {
  const out: [number, number][] = [];
  const n = s.length;
  const inClass = (k: number) => {
    const c = s.charCodeAt(k);
    return c < 128 && (RUN_CLASS[c]! & bit) !== 0;
  };
  let i = 0;
  while (i + min <= n) {
    const p = i + min - 1;
    if (!inClass(p)) {
      i = p + 1;
      continue;
    }
    let start = p;
    while (start > i && inClass(start - 1)) start--;
    let end = p + 1;
    while (end < n && inClass(end)) end++;
    if (end - start >= min) out.push([start, end]);
    i = end + 1;
  }
  return out;
}

/** Maximal runs [start, end) of base64 (bit 1) and hex-run (bit 2) characters at least `min` long. */
function candidateRuns(s: string, min: number): { b64: [number, number][]; hex: [number, number][] } {
  return { b64: longRuns(s, min, 1), hex: longRuns(s, min, 2) };
}

function findPayloads(into: NormalizedText, budget: Budget, depth: number): void {
  const view = into.text;
  const seen: [number, number][] = [];
  const overlaps = (s: number, e: number) => seen.some(([a, b]) => s < b && a < e);
  const consider = (kind: PayloadKind, vs: number, ve: number, decoded: string | undefined) => {
    if (decoded === undefined || budget.payloads <= 0 || budget.chars <= 0) return;
    if (!looksLikeText(decoded)) return;
    if (overlaps(vs, ve)) return;
    seen.push([vs, ve]);
    const span = toOriginal(into, vs, ve);
    addPayload(into, kind, span.start, span.end, decoded, budget, depth);
  };
  // Every HEX match lies inside a run of at least 16 characters of [0-9a-fA-Fx\\ :,]: run the
  // regex only on such runs (same matches, far fewer regex attempts on ordinary prose).
  const runs = candidateRuns(view, 16);
  for (const [rs, re] of runs.hex) {
    if (budget.payloads <= 0) break;
    const run = view.slice(rs, re);
    for (const m of run.matchAll(HEX)) {
      if (budget.payloads <= 0) break;
      const s = m[0].slice(0, MAX_CANDIDATE);
      consider('hex', rs + m.index!, rs + m.index! + m[0].length, decodeHex(s));
    }
  }
  // A base64 match is a whole run of at least 16 base64 characters plus up to two '='.
  for (const [rs, re] of runs.b64) {
    if (budget.payloads <= 0) break;
    let end = re;
    while (end < view.length && end - re < 2 && view.charCodeAt(end) === 61) end++;
    const s = view.slice(rs, Math.min(end, rs + MAX_CANDIDATE));
    // Skip plain identifiers/words: require a mix of cases or digits.
    if (!/[A-Z]/.test(s) || !/[a-z0-9]/.test(s)) continue;
    consider('base64', rs, end, decodeBase64(s));
  }
  if (view.includes('%')) {
    for (const m of view.matchAll(URLENC)) {
      if (budget.payloads <= 0) break;
      const s = m[0].slice(0, MAX_CANDIDATE);
      const d = decodeUrl(s);
      if (d !== undefined && d !== s) consider('url', m.index!, m.index! + m[0].length, d);
    }
  }
  // ROT13: per line, when the rotated line reads as far more English than the line itself.
  let lineStart = 0;
  const limit = Math.min(view.length, 1_048_576);
  while (lineStart < limit && budget.payloads > 0) {
    let lineEnd = view.indexOf('\n', lineStart);
    if (lineEnd < 0 || lineEnd > limit) lineEnd = limit;
    if (lineEnd - lineStart >= 16 && lineEnd - lineStart <= 8192) {
      // The common words of the line and of its ROT13 (counted on the line itself, no rotated copy).
      const counts = lineWordCounts(view, lineStart, lineEnd);
      const before = counts >> 4;
      if (before <= 2) {
        const after = counts & 15;
        if (after >= 3 && after >= 3 * (before + 1)) consider('rot13', lineStart, lineEnd, rot13(view.slice(lineStart, lineEnd)));
      }
    }
    lineStart = lineEnd + 1;
  }
}

/**
 * For a ROT13 payload found directly in `norm` (depth 1), whose decoded characters map one by one
 * to the letters of its line, a function mapping a span of `payload.view.text` to the exact
 * original span that carries it; `undefined` for the other kinds (and nested payloads), whose
 * findings cover the whole carrier span (e.g. the whole run of tag characters).
 */
export function payloadMap(norm: NormalizedText, payload: DecodedPayload): ((start: number, end: number) => { start: number; end: number }) | undefined {
  if (payload.depth !== 1) return undefined;
  const view = payload.view;
  if (view.starts.length === 0) return undefined;
  /** Maps a view span to a span of the decoded text (`view.original`). */
  const inDecoded = (start: number, end: number) => {
    const s = Math.min(Math.max(start, 0), view.starts.length - 1);
    const e = Math.min(Math.max(end, s + 1), view.starts.length);
    return { start: view.starts[s]!, end: view.ends[e - 1]! };
  };
  if (payload.kind === 'rot13') {
    // The rotated line has the length of the view line it came from: find where that line starts.
    let lo = 0;
    let hi = norm.starts.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (norm.starts[mid]! < payload.start) lo = mid + 1;
      else hi = mid;
    }
    if (lo + view.original.length > norm.text.length || rot13(norm.text.slice(lo, lo + view.original.length)) !== view.original) return undefined;
    return (start, end) => {
      const d = inDecoded(start, end);
      return toOriginal(norm, lo + d.start, lo + d.end);
    };
  }
  return undefined;
}
