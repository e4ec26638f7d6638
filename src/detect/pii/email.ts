/** Email recognizer: scans outward from each '@' with bounded loops (linear time, no regex backtracking). */
import type { RawMatch, Recognizer, ScanInput } from './types.js';

const LOCAL = /[A-Za-z0-9._%+\-'!#$&*=?^`{|}~]/;
const DOMAIN = /[A-Za-z0-9.-]/;
const TLD = /^[A-Za-z]{2,24}$|^xn--[a-z0-9-]{1,59}$/;

/** Finds email addresses: local part ≤ 64 chars, dotted domain with an alphabetic TLD. */
export const emailRecognizer: Recognizer = {
  entities: ['EMAIL'],
  detect({ text }: ScanInput): RawMatch[] {
    const out: RawMatch[] = [];
    let at = text.indexOf('@');
    let lastEnd = 0;
    while (at >= 0) {
      let s = at;
      while (s > lastEnd && at - s < 64 && LOCAL.test(text[s - 1]!)) s--;
      while (s < at && (text[s] === '.' || text[s] === "'")) s++;
      let e = at + 1;
      while (e < text.length && e - at <= 253 && DOMAIN.test(text[e]!)) e++;
      while (e > at + 1 && (text[e - 1] === '.' || text[e - 1] === '-')) e--;
      const local = text.slice(s, at);
      const domain = text.slice(at + 1, e);
      const labels = domain.split('.');
      const tld = labels[labels.length - 1] ?? '';
      if (
        local.length > 0 && !local.includes('..') && labels.length >= 2 && labels.every((l) => l.length > 0 && l.length <= 63 && !l.startsWith('-') && !l.endsWith('-')) &&
        TLD.test(tld)
      ) {
        out.push({ entity: 'EMAIL', start: s, end: e, score: 0.95, reason: 'email address syntax' });
        lastEnd = e;
      }
      at = text.indexOf('@', Math.max(at + 1, lastEnd));
    }
    return out;
  },
};
