/** Context words (Presidio-style): words near a candidate that raise (or lower) its score. */
import type { PiiEntity } from './types.js';

/** Default context words per entity, lower case. */
export const DEFAULT_CONTEXT: Readonly<Partial<Record<PiiEntity, readonly string[]>>> = {
  EMAIL: ['email', 'e-mail', 'mail', 'contact', 'address'],
  PHONE: ['phone', 'tel', 'telephone', 'mobile', 'cell', 'call', 'fax', 'contact', 'number', 'reach', 'whatsapp', 'sms', 'text me'],
  CREDIT_CARD: ['card', 'credit', 'debit', 'visa', 'mastercard', 'amex', 'cc', 'payment', 'pan', 'charge'],
  IBAN: ['iban', 'bank', 'account', 'transfer', 'wire', 'sepa'],
  US_SSN: ['ssn', 'social security', 'social', 'security number', 'ss#', 'taxpayer'],
  US_ITIN: ['itin', 'taxpayer', 'tax id', 'individual taxpayer'],
  UK_NINO: ['national insurance', 'nino', 'ni number', 'insurance number'],
  IP_ADDRESS: ['ip', 'address', 'host', 'server', 'client', 'from'],
  MAC_ADDRESS: ['mac', 'hardware', 'ethernet', 'wifi', 'device'],
  DATE_OF_BIRTH: ['born', 'birth', 'dob', 'd.o.b', 'birthday', 'date of birth', 'birthdate', 'age'],
  STREET_ADDRESS: ['address', 'live', 'lives', 'living', 'street', 'located', 'ship', 'deliver', 'mail', 'home', 'reside'],
  PERSON: ['name', 'mr', 'mrs', 'ms', 'miss', 'dr', 'called', 'named', 'dear', 'hi', 'hello', 'signed', 'patient', 'customer', 'employee', 'contact'],
  LOCATION: ['in', 'from', 'city', 'country', 'located', 'live', 'lives', 'moved', 'visit', 'travel', 'near'],
  CRYPTO_WALLET: ['wallet', 'bitcoin', 'btc', 'eth', 'ethereum', 'crypto', 'send', 'address'],
  PASSPORT: ['passport', 'passport number', 'passport no', 'travel document'],
  DRIVER_LICENSE: ['driver', 'driving', 'licence', 'license', 'dl#', 'dl number', "driver's"],
};

/** Words that make a numeric candidate less likely to be PII (order numbers, versions…). */
export const NEGATIVE_CONTEXT: readonly string[] = [
  'order', 'invoice', 'tracking', 'reference', 'ref', 'ticket', 'version', 'build', 'sku', 'isbn', 'serial', 'part number', 'model', 'commit',
];

function isWordChar(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95;
}

/** True when one of `words` occurs as a whole word within the window around [start, end). */
export function hasContextWord(lower: string, start: number, end: number, words: readonly string[], before = 48, after = 24): boolean {
  const from = Math.max(0, start - before);
  const to = Math.min(lower.length, end + after);
  const win = lower.slice(from, to);
  const selfFrom = start - from;
  const selfTo = end - from;
  for (const w of words) {
    let i = win.indexOf(w);
    while (i >= 0) {
      const j = i + w.length;
      const insideSelf = i < selfTo && j > selfFrom;
      if (!insideSelf && (i === 0 || !isWordChar(win.charCodeAt(i - 1))) && (j >= win.length || !isWordChar(win.charCodeAt(j)))) return true;
      i = win.indexOf(w, i + 1);
    }
  }
  return false;
}

/** A global regex finding any of `words` as a substring. */
export function wordsRegex(words: readonly string[]): RegExp {
  return new RegExp([...words].sort((a, b) => b.length - a.length).map((w) => w.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|'), 'g');
}
