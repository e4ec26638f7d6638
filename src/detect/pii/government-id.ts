/** US SSN / ITIN, UK NINO, and context-gated passport and driver's-licence numbers. */
import { hasContextWord, wordsRegex } from './context.js';
import type { RawMatch, Recognizer, ScanInput } from './types.js';
import { itinValid, ninoValid, ssnValid } from './validators.js';

// The look-behinds come after the first character (same matches: they look at the character before
// it): a pattern that starts with a character class lets the regex engine skip ahead quickly.
const SSN = /(\d(?<![\w-]\d)\d{2})([- .]?)(\d{2})\2(\d{4})(?![\w]|-\d)/g;
const NINO = /[A-Za-z](?<![A-Za-z0-9][A-Za-z])[A-Za-z] ?\d{2} ?\d{2} ?\d{2} ?[A-Da-d](?![A-Za-z0-9])/g;
/**
 * A document number: a whole run of [A-Za-z0-9-] (nothing of the class on either side), 6-20
 * long, starting and ending with a letter or digit, with a digit. Sticky: tried at run starts only.
 */
const ID_TOKEN = /(?<![A-Za-z0-9-])(?=[A-Za-z0-9-]{0,19}\d)[A-Za-z0-9][A-Za-z0-9-]{4,18}[A-Za-z0-9](?![A-Za-z0-9-])/y;
/** Characters of an ID_TOKEN run. */
function isIdChar(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 45;
}
/** Context-word distance (characters before the number) of the passport and licence recognizers. */
const ID_CONTEXT_BEFORE = 40;

const PASSPORT_WORDS = ['passport', 'passport no', 'passport number', 'passport#', 'reisepass', 'passeport', 'pasaporte'];
const DL_WORDS = ['driver', "driver's", 'drivers', 'driving', 'licence', 'license', 'dl', 'dl#', 'dln'];

/** Finds US SSNs (invalid areas/groups/serials excluded) and ITINs (9xx with valid group ranges). */
export const usIdRecognizer: Recognizer = {
  entities: ['US_SSN', 'US_ITIN'],
  detect({ text }: ScanInput): RawMatch[] {
    const out: RawMatch[] = [];
    SSN.lastIndex = 0;
    for (let m = SSN.exec(text); m !== null; m = SSN.exec(text)) {
      const [all, area, sep, group, serial] = m as unknown as [string, string, string, string, string];
      const start = m.index;
      const end = start + all.length;
      if (itinValid(area, group)) {
        out.push({ entity: 'US_ITIN', start, end, score: sep ? 0.75 : 0.35, reason: 'ITIN pattern (9xx, valid group)' });
      } else if (ssnValid(area, group, serial)) {
        out.push({ entity: 'US_SSN', start, end, score: sep === '-' ? 0.85 : sep ? 0.6 : 0.35, reason: 'SSN pattern with valid area/group/serial' });
      }
    }
    return out;
  },
};

/** Finds UK National Insurance numbers (valid prefixes, suffix A-D). */
export const ninoRecognizer: Recognizer = {
  entities: ['UK_NINO'],
  detect({ text }: ScanInput): RawMatch[] {
    const out: RawMatch[] = [];
    NINO.lastIndex = 0;
    for (let m = NINO.exec(text); m !== null; m = NINO.exec(text)) {
      if (!ninoValid(m[0])) continue;
      const upper = m[0] === m[0].toUpperCase();
      out.push({ entity: 'UK_NINO', start: m.index, end: m.index + m[0].length, score: upper ? 0.8 : 0.4, reason: 'UK NINO format with valid prefix' });
    }
    return out;
  },
};

function contextGated(entity: 'PASSPORT' | 'DRIVER_LICENSE', words: readonly string[], reason: string): Recognizer {
  const anyWord = wordsRegex(words);
  return {
    entities: [entity],
    detect({ text, lower }: ScanInput): RawMatch[] {
      // A number is kept only with one of `words` ending at most ID_CONTEXT_BEFORE characters
      // before it (hasContextWord below). So only runs starting within that distance after an
      // occurrence of a word are tried: an occurrence at p of length L (a leftmost match; other
      // occurrences that start inside it are covered) allows starts in [p + 1, p + L + 40].
      const out: RawMatch[] = [];
      anyWord.lastIndex = 0;
      let from = 0; // next position not yet tried
      for (let w = anyWord.exec(lower); w !== null; w = anyWord.exec(lower)) {
        let x = Math.max(from, w.index + 1);
        const to = Math.min(text.length, w.index + w[0].length + ID_CONTEXT_BEFORE + 1);
        for (; x < to; x++) {
          if (!isIdChar(text.charCodeAt(x)) || (x > 0 && isIdChar(text.charCodeAt(x - 1)))) continue;
          ID_TOKEN.lastIndex = x;
          const m = ID_TOKEN.exec(text);
          if (m === null) continue;
          const v = m[0];
          if (/^\d{1,4}$/.test(v) || /^(?:19|20)\d{2}$/.test(v)) continue;
          if (!hasContextWord(lower, x, x + v.length, words, ID_CONTEXT_BEFORE, 0)) continue;
          const letters = /[A-Za-z]/.test(v);
          if (letters && v !== v.toUpperCase() && /[a-z]{4}/.test(v)) continue; // ordinary words
          out.push({ entity, start: x, end: x + v.length, score: 0.65, reason, needsContext: true });
        }
        from = Math.max(from, x);
      }
      return out;
    },
  };
}

/** Passport numbers: alphanumeric 6-20 chars with a digit, only right after a passport context word. */
export const passportRecognizer = contextGated('PASSPORT', PASSPORT_WORDS, 'document number near a passport context word');
/** Driver's licence numbers: alphanumeric with a digit, only right after a licence context word. */
export const driverLicenseRecognizer = contextGated('DRIVER_LICENSE', DL_WORDS, 'document number near a licence context word');
