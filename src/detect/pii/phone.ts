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

/** Finds phone numbers valid for the default region, an explicit country code, or one of the extra regions. */
export const phoneRecognizer: Recognizer = {
  entities: ['PHONE'],
  detect({ text, defaultRegion, phoneRegions }: ScanInput): RawMatch[] {
    const out: RawMatch[] = [];
    for (const m of text.matchAll(CANDIDATE)) {
      const raw = m[0].replace(/\s+$/, '');
      const digits = digitCount(raw.replace(/(?:x|ext\.?)\s?\d+$/i, ''));
      if (digits < 7 || digits > 15) continue;
      if (DATE_LIKE.test(raw) || DOTTED_QUAD.test(raw)) continue;
      const grouped = /[ .()-]/.test(raw);
      const international = raw.startsWith('+') || raw.startsWith('00');
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
              score = grouped ? 0.6 : 0.35;
              reason = 'phone number valid in a configured region';
              break;
            }
          }
        }
      }
      if (score === 0) continue;
      out.push({ entity: 'PHONE', start: m.index, end: m.index + raw.length, score, reason });
    }
    return out;
  },
};
