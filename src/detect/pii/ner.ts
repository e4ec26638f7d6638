/** Person and location recognizer: `compromise` NER plus name cues ("my name is …", honorifics). */
import { createRequire } from 'node:module';
import type nlpType from 'compromise';

// compromise builds its lexicon at load time (~100 ms); load it only when NER is first used.
let nlpFn: typeof nlpType | undefined;
function nlp(text: string): ReturnType<typeof nlpType> {
  nlpFn ??= createRequire(import.meta.url)('compromise') as typeof nlpType;
  return nlpFn(text);
}
import type { RawMatch, Recognizer, ScanInput } from './types.js';

const CHUNK = 4000;
const HONORIFIC = /^(?:(?:mr|mrs|ms|miss|mx|dr|prof|sir|dame|lady|lord|rev|fr)\.?\s+)+/i;
const TRAIL = /[\s.,;:!?"')\]}]+$/;
const LEAD = /^[\s"'([{]+/;
const NAME_CUE = /\b(?:my name is|name is|i am|i'm|this is|called|named|name:)\s+([A-Z][a-zà-ÿ'-]{1,20}(?:\s[A-Z]\.?(?=\s))?(?:\s[A-Z][a-zà-ÿ'-]{1,20}){0,2})/g;

interface Term {
  offset?: { start: number; length: number };
}

function spans(doc: { json(opts: object): unknown }, base: number, text: string): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (const t of doc.json({ offset: true }) as Term[]) {
    if (!t.offset) continue;
    let s = base + t.offset.start;
    let e = s + t.offset.length;
    let v = text.slice(s, e);
    const lead = LEAD.exec(v);
    if (lead) {
      s += lead[0].length;
      v = v.slice(lead[0].length);
    }
    const trail = TRAIL.exec(v);
    if (trail) {
      e -= trail[0].length;
      v = v.slice(0, v.length - trail[0].length);
    }
    if (v.endsWith("'s")) e -= 2;
    if (e > s) out.push([s, e]);
  }
  return out;
}

/** Splits text into chunks of at most CHUNK characters, cutting at sentence or line ends where possible. */
function chunks(text: string): Array<[number, string]> {
  const out: Array<[number, string]> = [];
  let i = 0;
  while (i < text.length) {
    let j = Math.min(text.length, i + CHUNK);
    if (j < text.length) {
      const cut = Math.max(text.lastIndexOf('. ', j), text.lastIndexOf('\n', j));
      if (cut > i + CHUNK / 2) j = cut + 1;
    }
    out.push([i, text.slice(i, j)]);
    i = j;
  }
  return out;
}

/** Finds PERSON and LOCATION entities. Statistical: precision is modest; see the evaluation. */
export const nerRecognizer: Recognizer = {
  entities: ['PERSON', 'LOCATION'],
  detect({ text }: ScanInput): RawMatch[] {
    const out: RawMatch[] = [];
    if (!/[A-Za-zÀ-ÿ]/.test(text)) return out;
    for (const [base, part] of chunks(text)) {
      const doc = nlp(part);
      for (const [s0, e] of spans(doc.people(), base, text)) {
        let s = s0;
        const h = HONORIFIC.exec(text.slice(s, e));
        if (h) s += h[0].length;
        if (e - s < 2) continue;
        const hadTitle = h !== null;
        out.push({ entity: 'PERSON', start: s, end: e, score: hadTitle ? 0.8 : 0.6, reason: 'person name (NER)' });
      }
      for (const [s, e] of spans(doc.places(), base, text)) {
        if (e - s < 2) continue;
        out.push({ entity: 'LOCATION', start: s, end: e, score: 0.55, reason: 'place name (NER)' });
      }
    }
    for (const m of text.matchAll(NAME_CUE)) {
      const name = m[1]!;
      const s = m.index + m[0].length - name.length;
      out.push({ entity: 'PERSON', start: s, end: s + name.length, score: 0.75, reason: 'capitalised name after a name cue' });
    }
    return out;
  },
};
