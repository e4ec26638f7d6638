/** US SSN / ITIN, UK NINO, and context-gated passport and driver's-licence numbers. */
import { hasContextWord } from './context.js';
import type { RawMatch, Recognizer, ScanInput } from './types.js';
import { itinValid, ninoValid, ssnValid } from './validators.js';

const SSN = /(?<![\w-])(\d{3})([- .]?)(\d{2})\2(\d{4})(?![\w]|-\d)/g;
const NINO = /(?<![A-Za-z0-9])[A-Za-z]{2} ?\d{2} ?\d{2} ?\d{2} ?[A-Da-d](?![A-Za-z0-9])/g;
const ID_TOKEN = /(?<![A-Za-z0-9-])(?=[A-Za-z0-9-]{0,19}\d)[A-Za-z0-9][A-Za-z0-9-]{4,18}[A-Za-z0-9](?![A-Za-z0-9-])/g;

const PASSPORT_WORDS = ['passport', 'passport no', 'passport number', 'passport#', 'reisepass', 'passeport', 'pasaporte'];
const DL_WORDS = ['driver', "driver's", 'drivers', 'driving', 'licence', 'license', 'dl', 'dl#', 'dln'];

/** Finds US SSNs (invalid areas/groups/serials excluded) and ITINs (9xx with valid group ranges). */
export const usIdRecognizer: Recognizer = {
  entities: ['US_SSN', 'US_ITIN'],
  detect({ text }: ScanInput): RawMatch[] {
    const out: RawMatch[] = [];
    for (const m of text.matchAll(SSN)) {
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
    for (const m of text.matchAll(NINO)) {
      if (!ninoValid(m[0])) continue;
      const upper = m[0] === m[0].toUpperCase();
      out.push({ entity: 'UK_NINO', start: m.index, end: m.index + m[0].length, score: upper ? 0.8 : 0.4, reason: 'UK NINO format with valid prefix' });
    }
    return out;
  },
};

function contextGated(entity: 'PASSPORT' | 'DRIVER_LICENSE', words: readonly string[], reason: string): Recognizer {
  return {
    entities: [entity],
    detect({ text, lower }: ScanInput): RawMatch[] {
      if (!words.some((w) => lower.includes(w))) return [];
      const out: RawMatch[] = [];
      for (const m of text.matchAll(ID_TOKEN)) {
        const v = m[0];
        if (/^\d{1,4}$/.test(v) || /^(?:19|20)\d{2}$/.test(v)) continue;
        if (!hasContextWord(lower, m.index, m.index + v.length, words, 40, 0)) continue;
        const letters = /[A-Za-z]/.test(v);
        if (letters && v !== v.toUpperCase() && /[a-z]{4}/.test(v)) continue; // ordinary words
        out.push({ entity, start: m.index, end: m.index + v.length, score: 0.65, reason, needsContext: true });
      }
      return out;
    },
  };
}

/** Passport numbers: alphanumeric 6-20 chars with a digit, only right after a passport context word. */
export const passportRecognizer = contextGated('PASSPORT', PASSPORT_WORDS, 'document number near a passport context word');
/** Driver's licence numbers: alphanumeric with a digit, only right after a licence context word. */
export const driverLicenseRecognizer = contextGated('DRIVER_LICENSE', DL_WORDS, 'document number near a licence context word');
