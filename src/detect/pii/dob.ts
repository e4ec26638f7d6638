/** Date-of-birth recognizer: a date is reported only when a birth context word precedes it. */
import { hasContextWord, wordsRegex } from './context.js';
import type { RawMatch, Recognizer, ScanInput } from './types.js';

const MONTHS = 'jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?';
const DATE = new RegExp(
  [
    '(?<!\\d)(?:19|20)\\d{2}[-/.](?:0?[1-9]|1[0-2])[-/.](?:0?[1-9]|[12]\\d|3[01])(?!\\d)',
    '(?<!\\d)(?:0?[1-9]|[12]\\d|3[01])[-/.](?:0?[1-9]|1[0-2])[-/.](?:19|20)?\\d{2}(?!\\d)',
    '(?<!\\d)(?:0?[1-9]|1[0-2])[-/.](?:0?[1-9]|[12]\\d|3[01])[-/.](?:19|20)?\\d{2}(?!\\d)',
    `(?<!\\d)(?:0?[1-9]|[12]\\d|3[01])(?:st|nd|rd|th)?(?: of)? (?:${MONTHS})\\.?,? (?:19|20)\\d{2}(?!\\d)`,
    `\\b(?:${MONTHS})\\.? (?:0?[1-9]|[12]\\d|3[01])(?:st|nd|rd|th)?,? (?:19|20)\\d{2}(?!\\d)`,
  ].join('|'),
  'gi',
);
const BIRTH_WORDS = ['born', 'birth', 'dob', 'd.o.b', 'd.o.b.', 'birthday', 'birthdate', 'date of birth', 'geboren', 'né', 'née', 'nacimiento', 'nascita'];
/** Any birth word as a substring: one pass instead of one `includes` per word. */
const ANY_BIRTH_WORD = wordsRegex(BIRTH_WORDS);

/** Finds dates (numeric or with month names) preceded by a birth context word. */
export const dobRecognizer: Recognizer = {
  entities: ['DATE_OF_BIRTH'],
  detect({ text, lower }: ScanInput): RawMatch[] {
    ANY_BIRTH_WORD.lastIndex = 0;
    if (!ANY_BIRTH_WORD.test(lower)) return [];
    const out: RawMatch[] = [];
    DATE.lastIndex = 0;
    for (let m = DATE.exec(text); m !== null; m = DATE.exec(text)) {
      if (!hasContextWord(lower, m.index, m.index + m[0].length, BIRTH_WORDS, 40, 0)) continue;
      out.push({ entity: 'DATE_OF_BIRTH', start: m.index, end: m.index + m[0].length, score: 0.8, reason: 'date after a birth context word', needsContext: true });
    }
    return out;
  },
};
