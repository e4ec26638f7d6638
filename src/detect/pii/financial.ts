/** Payment card, IBAN and crypto wallet recognizers, each checksum-validated. */
import type { RawMatch, Recognizer, ScanInput } from './types.js';
import { IBAN_LENGTHS, base58CheckValid, bech32Valid, cardIssuer, eip55Valid, ibanValid, luhnValid } from './validators.js';

// 12-19 digits, optionally grouped by single spaces or dashes. Each repetition consumes a digit: linear.
// In these patterns the look-behind comes after the first character (it looks at the character
// before it, so the matches are the same): a pattern that starts with a character class lets the
// regex engine skip quickly to candidate positions.
const CARD = /\d(?<![\d\w.,-]\d)(?:[ -]?\d){11,18}(?![\d\w]|[.,-]\d)/g;
const IBAN = /[A-Za-z](?<![A-Za-z0-9][A-Za-z])[A-Za-z]\d{2}(?: ?[A-Za-z0-9]{4}){2,7}(?: ?[A-Za-z0-9]{1,3})?(?![A-Za-z0-9])/g;
const BTC_B58 = /[13](?<![A-Za-z0-9][13])[1-9A-HJ-NP-Za-km-z]{25,34}(?![A-Za-z0-9])/g;
const BTC_BECH32 = /(?:bc1|BC1|tb1|TB1)(?<![A-Za-z0-9](?:bc1|BC1|tb1|TB1))[02-9AC-HJ-NP-Zac-hj-np-z]{11,71}(?![A-Za-z0-9])/g;
const ETH = /0x(?<![A-Za-z0-9]0x)[0-9a-fA-F]{40}(?![A-Za-z0-9])/g;

/** Issuer of a Luhn-valid card written with one separator kind and groups of ≥ 3 digits; else undefined. */
function validCard(raw: string): string | undefined {
  let digits = '';
  let sep = '';
  let group = 0;
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i]!;
    if (c >= '0' && c <= '9') {
      digits += c;
      group++;
    } else {
      if (sep === '') sep = c;
      else if (sep !== c) return undefined;
      if (group < 3) return undefined;
      group = 0;
    }
  }
  if (sep !== '' && group < 3) return undefined;
  if (digits.length < 12 || digits.length > 19 || !luhnValid(digits)) return undefined;
  let same = true;
  for (let i = 1; i < digits.length && same; i++) same = digits[i] === digits[0];
  if (same) return undefined;
  return cardIssuer(digits);
}

/** Finds payment card numbers: 12-19 digits, consistent grouping, Luhn-valid, known issuer range. */
export const cardRecognizer: Recognizer = {
  entities: ['CREDIT_CARD'],
  detect({ text }: ScanInput): RawMatch[] {
    const out: RawMatch[] = [];
    CARD.lastIndex = 0;
    for (let m = CARD.exec(text); m !== null; m = CARD.exec(text)) {
      let raw = m[0];
      let start = m.index;
      // Leading short groups ("1 2 4111 1111 …") are not part of a card: drop them.
      const lead = /^(?:\d{1,2}[ -])+/.exec(raw);
      if (lead) {
        raw = raw.slice(lead[0].length);
        start += lead[0].length;
      }
      let issuer = validCard(raw);
      // A trailing group (e.g. an expiry) may have been swallowed: retry at earlier group boundaries.
      while (!issuer) {
        const cut = Math.max(raw.lastIndexOf(' '), raw.lastIndexOf('-'));
        if (cut <= 0) break;
        raw = raw.slice(0, cut);
        issuer = validCard(raw);
      }
      if (!issuer) continue;
      out.push({ entity: 'CREDIT_CARD', start, end: start + raw.length, score: issuer === 'maestro' || issuer === 'diners' ? 0.75 : 0.9, reason: `Luhn-valid ${issuer} card number` });
    }
    return out;
  },
};

/** Finds IBANs: known country, per-country length, mod-97 checksum (case-insensitive, spaces allowed). */
export const ibanRecognizer: Recognizer = {
  entities: ['IBAN'],
  detect({ text }: ScanInput): RawMatch[] {
    const out: RawMatch[] = [];
    IBAN.lastIndex = 0;
    for (let m = IBAN.exec(text); m !== null; m = IBAN.exec(text)) {
      // The greedy tail may swallow a following word fragment: cut at the country's IBAN length.
      const len = IBAN_LENGTHS[m[0].slice(0, 2).toUpperCase()];
      if (len === undefined) continue;
      let raw = '';
      let n = 0;
      for (let i = 0; i < m[0].length && n < len; i++) {
        const c = m[0][i]!;
        raw += c;
        if (c !== ' ') n++;
      }
      if (n !== len || !ibanValid(raw)) continue;
      out.push({ entity: 'IBAN', start: m.index, end: m.index + raw.length, score: 0.95, reason: 'IBAN with valid mod-97 checksum' });
    }
    return out;
  },
};

/** Finds crypto wallet addresses: Bitcoin base58check and bech32/bech32m, Ethereum (EIP-55 when mixed case). */
export const cryptoRecognizer: Recognizer = {
  entities: ['CRYPTO_WALLET'],
  detect({ text }: ScanInput): RawMatch[] {
    const out: RawMatch[] = [];
    BTC_B58.lastIndex = 0;
    for (let m = BTC_B58.exec(text); m !== null; m = BTC_B58.exec(text)) {
      if (base58CheckValid(m[0])) out.push({ entity: 'CRYPTO_WALLET', start: m.index, end: m.index + m[0].length, score: 0.9, reason: 'Bitcoin address with valid base58check' });
    }
    BTC_BECH32.lastIndex = 0;
    for (let m = BTC_BECH32.exec(text); m !== null; m = BTC_BECH32.exec(text)) {
      if (bech32Valid(m[0])) out.push({ entity: 'CRYPTO_WALLET', start: m.index, end: m.index + m[0].length, score: 0.9, reason: 'Bitcoin bech32 address with valid checksum' });
    }
    ETH.lastIndex = 0;
    for (let m = ETH.exec(text); m !== null; m = ETH.exec(text)) {
      const hex = m[0].slice(2);
      const mixed = hex !== hex.toLowerCase() && hex !== hex.toUpperCase();
      if (mixed) {
        if (eip55Valid(m[0])) out.push({ entity: 'CRYPTO_WALLET', start: m.index, end: m.index + m[0].length, score: 0.9, reason: 'Ethereum address with valid EIP-55 checksum' });
      } else {
        out.push({ entity: 'CRYPTO_WALLET', start: m.index, end: m.index + m[0].length, score: 0.45, reason: 'Ethereum-shaped address (no checksum case)' });
      }
    }
    return out;
  },
};
