/** Phone number recognizer: a linear candidate regex, then libphonenumber-js validation per region. */
import { parsePhoneNumberFromString, type CountryCode } from 'libphonenumber-js';
import type { RawMatch, Recognizer, ScanInput } from './types.js';

// Optional +CC / 00CC, optional (area), then digits with single separators. Bounded: linear.
const CANDIDATE = /(?<![\w+@/.:-])(?:(?:\+|00)\d{1,3}[ .-]?)?(?:\(\d{1,5}\)[ .-]?)?\d(?:[ .-]?\d){5,16}(?:\s?(?:x|ext\.?)\s?\d{1,5})?(?![\w@]|[.:/-]\d)/gi;
const DATE_LIKE = /^(?:(?:19|20)\d{2}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.](?:19|20)\d{2})$/;
const DOTTED_QUAD = /^\d{1,3}(?:\.\d{1,3}){3}$/;

function digitCount(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 48 && c <= 57) n++;
  }
  return n;
}

/** Lengths of the digit groups of a written number ("(415) 555-2671" → 3,3,4). */
function digitGroups(s: string): string {
  return s
    .split(/\D+/)
    .filter((g) => g.length > 0)
    .map((g) => g.length)
    .join(',');
}

/** A year-like group (1900–2099) or more than one kind of separator between digit groups. */
function looksLikeNumberList(raw: string): boolean {
  if (/(?:^|\D)(?:19|20)\d{2}(?!\d)/.test(raw)) return true;
  const seps = new Set(raw.replace(/^\(\d{1,5}\)\s?/, '').match(/\D/g) ?? []);
  return seps.size > 1;
}

/** Whether `raw` groups its digits like `formatted` (a national format), ignoring a trunk prefix the writer left out. */
function sameGrouping(raw: string, formatted: string): boolean {
  const a = digitGroups(raw);
  const b = digitGroups(formatted);
  if (a === b) return true;
  // "0" trunk prefix written in the national format but not in the text, or the other way round.
  const bump = (g: string, d: number) => g.replace(/^\d+/, (x) => String(Number(x) + d));
  return a === bump(b, -1) || bump(a, -1) === b;
}

/** Most libphonenumber validations per call; later candidates are judged by shape only (bounded cost on hostile input). */
export const MAX_PHONE_VALIDATIONS = 500;

// Memo of validation verdicts: chat clients resend the whole history every turn, so the same
// numbers are validated again and again. Bounded; cleared when full. Holds no text besides the
// candidate itself and never leaves this module.
const MEMO_MAX = 4096;
const memo = new Map<string, [number, string]>();

function judge(raw: string, grouped: boolean, international: boolean, defaultRegion: string, phoneRegions: readonly string[]): [number, string] {
  const key = `${defaultRegion}|${phoneRegions.join(',')}|${raw}`;
  const hit = memo.get(key);
  if (hit) return hit;
  let score = 0;
  let reason = '';
  if (international) {
    const p = parsePhoneNumberFromString(raw.startsWith('00') ? '+' + raw.slice(2) : raw);
    if (p?.isValid()) {
      score = 0.85;
      reason = 'valid international phone number';
    } else if (p?.isPossible()) {
      score = 0.5;
      reason = 'possible international phone number';
    }
  } else {
    const p = parsePhoneNumberFromString(raw, defaultRegion as CountryCode);
    if (p?.isValid()) {
      score = grouped ? 0.75 : 0.5;
      reason = 'phone number valid in the default region';
    } else if (grouped) {
      for (const r of phoneRegions) {
        if (r === defaultRegion) continue;
        const q = parsePhoneNumberFromString(raw, r as CountryCode);
        if (q?.isValid()) {
          // Outside the default region, a list of ordinary numbers ("2024 17 42", "17 3.5 2024":
          // a year-like group or mixed separators) not grouped the way that region writes phone
          // numbers stays below the default threshold unless a context word ("phone", "tel" …) raises it.
          if (!looksLikeNumberList(raw) || sameGrouping(raw, q.formatNational())) {
            score = 0.6;
            reason = 'phone number valid in a configured region';
            break;
          }
          score = 0.45;
          reason = 'number list valid as a phone number in a configured region';
        }
      }
    }
  }
  if (memo.size >= MEMO_MAX) memo.clear();
  const v: [number, string] = [score, reason];
  memo.set(key, v);
  return v;
}

/** Finds phone numbers valid for the default region, an explicit country code, or one of the extra regions. */
export const phoneRecognizer: Recognizer = {
  entities: ['PHONE'],
  detect({ text, defaultRegion, phoneRegions }: ScanInput): RawMatch[] {
    const out: RawMatch[] = [];
    let budget = MAX_PHONE_VALIDATIONS;
    CANDIDATE.lastIndex = 0;
    for (let m = CANDIDATE.exec(text); m !== null; m = CANDIDATE.exec(text)) {
      let raw = m[0];
      while (raw.length > 0 && /\s/.test(raw[raw.length - 1]!)) raw = raw.slice(0, -1);
      const ext = /x/i.test(raw) ? raw.search(/\s?(?:x|ext\.?)\s?\d{1,5}$/i) : -1;
      const digits = digitCount(ext >= 0 ? raw.slice(0, ext) : raw);
      if (digits < 7 || digits > 15) continue;
      if (DATE_LIKE.test(raw) || DOTTED_QUAD.test(raw)) continue;
      const grouped = /[ .()-]/.test(raw);
      const international = raw.startsWith('+') || raw.startsWith('00');
      let score: number;
      let reason: string;
      if (budget > 0) {
        budget--;
        [score, reason] = judge(raw, grouped, international, defaultRegion, phoneRegions);
      } else if (international || (grouped && digits >= 10)) {
        score = 0.5;
        reason = 'phone-shaped number (not validated: too many candidates)';
      } else continue;
      if (score === 0) continue;
      out.push({ entity: 'PHONE', start: m.index, end: m.index + raw.length, score, reason });
    }
    return out;
  },
};
