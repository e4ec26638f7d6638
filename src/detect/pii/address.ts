/** Street address recognizer: US/UK number-first addresses, continental street-name-first addresses, UK postcodes. */
import type { RawMatch, Recognizer, ScanInput } from './types.js';

const SUFFIX =
  'Street|St|Avenue|Ave|Av|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl|Terrace|Ter|Circle|Cir|Parkway|Pkwy|Highway|Hwy|' +
  'Square|Sq|Trail|Trl|Crescent|Close|Grove|Gardens|Gdns|Hill|Row|Walk|Mews|Park|Green|Loop|Pike|Plaza|Alley|Causeway|Expressway|Freeway|Ridge|Run|Point|Pt|Crossing|Xing|Bend|Cove|Glen|Heights|Hts|Landing|Path|Pass|Vale|View|Village|Wharf';
const UNIT = '(?:,?\\s(?:Apt|Apartment|Suite|Ste|Unit|Fl|Floor|Flat|Room|Rm|Bldg|Building|#)\\.?\\s?#?[A-Za-z0-9-]{1,6})?';
const UK_POSTCODE = '[A-Z]{1,2}\\d[A-Z\\d]?\\s?\\d[A-Z]{2}';
const US_TAIL = `(?:,?\\s[A-Z][A-Za-z.'-]{1,20}(?:\\s[A-Z][A-Za-z.'-]{1,20}){0,2},?\\s(?:[A-Z]{2}\\s\\d{5}(?:-\\d{4})?|${UK_POSTCODE}))?`;
const WORD = "[A-Z][A-Za-z'.-]{1,24}|\\d{1,3}(?:st|nd|rd|th)";
const NUMBER_FIRST = `(?<![\\w-])\\d{1,6}[A-Za-z]?(?:\\s(?:${WORD})){1,4}\\s(?:${SUFFIX})\\b\\.?${UNIT}${US_TAIL}`;
const STREET_WORDS_EU =
  'straße|strasse|str\\.|weg|gasse|platz|allee|ring|damm|ufer|katu|tie|polku|vej|gade|laan|straat|plein|gracht|väg|vägen|gatan|gata|veien|vegen|utca|ulica|ul\\.';
const NAME_FIRST_EU = `(?<![\\w-])[A-ZÀ-Ý][a-zß-ÿ]{3,30}(?:${STREET_WORDS_EU})\\s\\d{1,4}[a-z]?(?![\\w])`;
const ROMANCE =
  '(?<![\\w-])(?:\\d{1,4},?\\s)?(?:Rue|Avenue|Boulevard|Chemin|Place|Via|Viale|Piazza|Corso|Calle|Avenida|Camino|Carrer|Plaza|Paseo|Rua|Travessa|Largo)\\s(?:(?:de|del|de la|des|du|della|di|do|da|dos|das|la|le|les)\\s)?[A-ZÀ-Ý][\\w\'-]{1,24}(?:\\s[A-ZÀ-Ý][\\w\'-]{1,24}){0,3}(?:,?\\s\\d{1,4}[a-z]?(?![\\w]))?';
const PO_BOX = '(?<![\\w])(?:P\\.?\\s?O\\.?\\s?Box|Post Office Box|Postfach|Apartado|Boîte Postale)\\s\\d{1,6}';
// House number, 1-4 capitalised words, then a unit designator: "20789 Allika 46 Suite 501".
const NUMBER_UNIT = "(?<![\\w-])\\d{1,6}(?:\\s[A-ZÀ-Ý][\\wÀ-ÿ'.-]{1,24}){1,4}(?:\\s\\d{1,4}[a-z]?)?,?\\s(?:Apt|Apartment|Suite|Ste|Unit|Flat)\\.?\\s?#?\\d{1,5}";
const ADDRESS = new RegExp(`${NUMBER_FIRST}|${NUMBER_UNIT}|${PO_BOX}|${NAME_FIRST_EU}|${ROMANCE}`, 'g');
/**
 * What every ADDRESS match contains, one alternative per form: the street suffix after a space
 * (number first), the unit designator after a space (number + unit), the last word of a PO box
 * before its number, the continental street word before its number, the Romance street word
 * before a space. Each lies at most ADDRESS_HINT_BACK characters after the start of its match
 * (number first: 6 + 1 + 4 × 26 = 111), so ADDRESS runs from that far before the first hint.
 */
const ADDRESS_HINT = new RegExp(
  // (The PO box and continental words as a look-behind after their "\s\d": the same hint position
  // less 2 characters, and a pattern starting with a space and a digit is found fast.)
  `\\s(?:${SUFFIX})\\b|\\s(?:Apt|Apartment|Suite|Ste|Unit|Flat)|\\s\\d(?<=(?:Box|Postfach|Apartado|Postale|${STREET_WORDS_EU})\\s\\d)|` +
    '(?:Rue|Avenue|Boulevard|Chemin|Place|Via|Viale|Piazza|Corso|Calle|Avenida|Camino|Carrer|Plaza|Paseo|Rua|Travessa|Largo)\\s',
  'g',
);
const ADDRESS_HINT_BACK = 128;
// The look-behind after the first letter (same matches): lets the engine skip to capitals fast.
// ([A-Z]{1,2} of UK_POSTCODE written as [A-Z] + look-behind + [A-Z]?.)
const POSTCODE_ONLY = /[A-Z](?<![A-Za-z0-9][A-Z])[A-Z]?\d[A-Z\d]?\s?\d[A-Z]{2}(?![A-Za-z0-9])/g;

/** Finds street addresses in US/UK and common European formats. */
export const addressRecognizer: Recognizer = {
  entities: ['STREET_ADDRESS'],
  detect({ text }: ScanInput): RawMatch[] {
    const out: RawMatch[] = [];
    ADDRESS_HINT.lastIndex = 0;
    const hint = ADDRESS_HINT.exec(text);
    // The loop starts at the lastIndex set here; no hint, no street address.
    ADDRESS.lastIndex = hint === null ? text.length + 1 : Math.max(0, hint.index - ADDRESS_HINT_BACK);
    for (let m = ADDRESS.exec(text); m !== null; m = ADDRESS.exec(text)) {
      const v = m[0];
      const hasNumber = /\d/.test(v);
      out.push({ entity: 'STREET_ADDRESS', start: m.index, end: m.index + v.length, score: hasNumber ? 0.7 : 0.45, reason: 'street address pattern' });
    }
    POSTCODE_ONLY.lastIndex = 0;
    for (let m = POSTCODE_ONLY.exec(text); m !== null; m = POSTCODE_ONLY.exec(text)) {
      out.push({ entity: 'STREET_ADDRESS', start: m.index, end: m.index + m[0].length, score: 0.4, reason: 'UK postcode' });
    }
    return out;
  },
};
