/**
 * Redaction actions over findings (pure): redact to labels, mask, keyed hash, pseudonymise with a
 * caller-supplied mapping (the stateful vault lives elsewhere), restore, and format-preserving
 * surrogates. Overlapping findings are merged first so every output offset stays valid.
 */
import { createHmac } from 'node:crypto';
import type { Finding } from './types.js';
import { ibanCheckDigits, luhnCheckDigit } from './pii/validators.js';

/** The rewriting actions. */
export type RedactAction = 'redact' | 'mask' | 'hash' | 'pseudonymize' | 'surrogate';

/** A merged span to rewrite, with the category of its best finding. */
export interface Span {
  /** Start offset in the original text. */
  start: number;
  /** End offset (exclusive) in the original text. */
  end: number;
  /** Category of the highest-scoring finding in the merged span. */
  category: string;
}

/** One rewrite that was applied. */
export interface Replacement extends Span {
  /** Start of the replacement in the output text. */
  outStart: number;
  /** End of the replacement in the output text. */
  outEnd: number;
  /** The text written in place of the original value. */
  replacement: string;
}

/** Options of applyActions. */
export interface ActionOptions {
  /** Key for `hash` (required for it) — e.g. the tenant's HMAC key. */
  hashKey?: string | Uint8Array;
  /** Placeholder for `pseudonymize`: (value, category) → placeholder such as `<PERSON_1>`. */
  mapping?: (value: string, category: string) => string;
  /** Seed for `surrogate`. */
  seed?: string;
  /** Label for `redact` (default `[CATEGORY]`). */
  label?: (category: string) => string;
  /** Mask character (default `*`). */
  maskChar?: string;
}

/** Result of applyActions. */
export interface ActionResult {
  /** The rewritten text. */
  text: string;
  /** The rewrites, in order, with offsets in both texts. */
  replacements: Replacement[];
}

/** Merges overlapping or touching findings into disjoint spans (category of the best-scoring member). */
export function mergeFindings(findings: readonly Finding[], textLength = Number.MAX_SAFE_INTEGER): Span[] {
  const valid = findings
    .filter((f) => Number.isInteger(f.start) && Number.isInteger(f.end) && f.start >= 0 && f.end > f.start && f.end <= textLength)
    .slice()
    .sort((a, b) => a.start - b.start || b.end - a.end);
  const out: Array<Span & { score: number }> = [];
  for (const f of valid) {
    const last = out[out.length - 1];
    if (last && f.start < last.end) {
      if (f.end > last.end) last.end = f.end;
      if (f.score > last.score) {
        last.score = f.score;
        last.category = f.category;
      }
    } else out.push({ start: f.start, end: f.end, category: f.category, score: f.score });
  }
  return out.map(({ start, end, category }) => ({ start, end, category }));
}

/** Masks a value, keeping its last 4 characters (2 for values under 12 chars, none under 8). */
export function maskValue(value: string, maskChar = '*'): string {
  const keep = value.length >= 12 ? 4 : value.length >= 8 ? 2 : 0;
  return maskChar.repeat(value.length - keep) + value.slice(value.length - keep);
}

/** Keyed HMAC-SHA256 of a value, first 12 hex characters, as `[CATEGORY:hash]`. */
export function hashValue(value: string, category: string, key: string | Uint8Array): string {
  const h = createHmac('sha256', key).update(category).update('\0').update(value).digest('hex').slice(0, 12);
  return `[${category}:${h}]`;
}

function rng(seed: string, value: string, category: string): () => number {
  let counter = 0;
  let pool: Buffer = Buffer.alloc(0);
  let pos = 0;
  return () => {
    if (pos >= pool.length) {
      pool = createHmac('sha256', seed).update(`${category}\0${value}\0${counter++}`).digest();
      pos = 0;
    }
    return pool[pos++]!;
  };
}

/**
 * A format-preserving fake for a value, deterministic in (value, category, seed): a card keeps
 * its length, grouping and first digit and passes Luhn; an IBAN keeps its country and length and
 * passes mod-97; an email becomes `user-xxxx@example.com`; a phone keeps its formatting and
 * leading `+`/country digits. Other categories get `<CATEGORY_xxxxxxxx>`.
 */
export function surrogate(value: string, category: string, seed: string): string {
  const next = rng(seed, value, category);
  const digit = () => String(next() % 10);
  const hex = (n: number) => Array.from({ length: n }, () => (next() % 16).toString(16)).join('');
  switch (category) {
    case 'CREDIT_CARD': {
      const digits = value.replace(/\D/g, '');
      let fake = digits[0] ?? '4';
      for (let i = 1; i < digits.length - 1; i++) fake += digit();
      for (let tries = 0; tries < 20 && fake.slice(1) === digits.slice(1, -1); tries++) fake = fake[0] + Array.from({ length: digits.length - 2 }, digit).join('');
      fake += String(luhnCheckDigit(fake));
      let k = 0;
      return value.replace(/\d/g, () => fake[k++]!);
    }
    case 'IBAN': {
      const compact = value.replace(/ /g, '').toUpperCase();
      const country = compact.slice(0, 2);
      const bban = Array.from(compact.slice(4), (c) => (/\d/.test(c) ? digit() : String.fromCharCode(65 + (next() % 26)))).join('');
      const fake = country + ibanCheckDigits(country, bban) + bban;
      if (!value.includes(' ')) return value === value.toUpperCase() ? fake : fake.toLowerCase();
      return fake.replace(/(.{4})(?=.)/g, '$1 ');
    }
    case 'EMAIL':
      return `user-${hex(8)}@example.com`;
    case 'PHONE': {
      const keepPrefix = value.startsWith('+') ? (value.match(/^\+\d{1,3}/)?.[0].length ?? 1) : 0;
      let i = 0;
      return value.replace(/\d/g, (d) => {
        i++;
        return i < keepPrefix ? d : digit();
      });
    }
    default:
      return `<${category}_${hex(8)}>`;
  }
}

/** Applies one action to every (merged) finding; offsets in `replacements` refer to both texts. */
export function applyActions(text: string, findings: readonly Finding[], action: RedactAction, opts: ActionOptions = {}): ActionResult {
  if (action === 'hash' && opts.hashKey === undefined) throw new Error('applyActions: the hash action needs opts.hashKey');
  if (action === 'pseudonymize' && !opts.mapping) throw new Error('applyActions: the pseudonymize action needs opts.mapping');
  if (action === 'surrogate' && opts.seed === undefined) throw new Error('applyActions: the surrogate action needs opts.seed');
  const spans = mergeFindings(findings, text.length);
  const label = opts.label ?? ((c: string) => `[${c}]`);
  let out = '';
  let last = 0;
  const replacements: Replacement[] = [];
  for (const s of spans) {
    const value = text.slice(s.start, s.end);
    let rep: string;
    switch (action) {
      case 'redact':
        rep = label(s.category);
        break;
      case 'mask':
        rep = maskValue(value, opts.maskChar);
        break;
      case 'hash':
        rep = hashValue(value, s.category, opts.hashKey!);
        break;
      case 'pseudonymize':
        rep = opts.mapping!(value, s.category);
        break;
      case 'surrogate':
        rep = surrogate(value, s.category, opts.seed!);
        break;
    }
    out += text.slice(last, s.start);
    const outStart = out.length;
    out += rep;
    replacements.push({ ...s, outStart, outEnd: out.length, replacement: rep });
    last = s.end;
  }
  out += text.slice(last);
  return { text: out, replacements };
}

/** Result of pseudonymize: the text with placeholders and placeholder → original value. */
export interface Pseudonymized {
  /** Text with each value replaced by its placeholder. */
  text: string;
  /** Placeholder → original value, for restore(). */
  mapping: Record<string, string>;
}

/**
 * Replaces each finding with a placeholder from `placeholderFor` (e.g. a vault lookup that
 * returns `<PERSON_1>` consistently per conversation) and returns the reverse mapping.
 */
export function pseudonymize(text: string, findings: readonly Finding[], placeholderFor: (value: string, category: string) => string): Pseudonymized {
  const mapping: Record<string, string> = {};
  const res = applyActions(text, findings, 'pseudonymize', {
    mapping: (value, category) => {
      const p = placeholderFor(value, category);
      if (p.length === 0) throw new Error('pseudonymize: empty placeholder');
      const prev = mapping[p];
      if (prev !== undefined && prev !== value) throw new Error('pseudonymize: one placeholder mapped to two different values');
      mapping[p] = value;
      return p;
    },
  });
  return { text: res.text, mapping };
}

/** A simple per-call placeholder factory: `<CATEGORY_n>`, the same value getting the same number. */
export function counterPlaceholders(): (value: string, category: string) => string {
  const seen = new Map<string, string>();
  const counts = new Map<string, number>();
  return (value, category) => {
    const k = `${category}\0${value}`;
    let p = seen.get(k);
    if (!p) {
      const n = (counts.get(category) ?? 0) + 1;
      counts.set(category, n);
      p = `<${category}_${n}>`;
      seen.set(k, p);
    }
    return p;
  };
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Puts original values back in place of their placeholders (longest placeholder first, one pass). */
export function restore(text: string, mapping: Readonly<Record<string, string>>): string {
  const keys = Object.keys(mapping).filter((k) => k.length > 0);
  if (keys.length === 0) return text;
  keys.sort((a, b) => b.length - a.length);
  const re = new RegExp(keys.map(escapeRe).join('|'), 'g');
  return text.replace(re, (m) => mapping[m] ?? m);
}
