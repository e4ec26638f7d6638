/**
 * The hold-back scanner with the real PII, secret and canary detectors: for random texts with
 * all three inserted and random chunkings, the streamed output equals the whole-text rewrite
 * and never contains a sensitive value.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { createStreamScanner, replaceSpans } from './index.js';
import { detectPii } from '../pii/index.js';
import { detectSecrets } from '../secrets/index.js';
import { detectCanary, makeCanary } from '../leakage/index.js';
import type { Finding } from '../types.js';

const canary = makeCanary((n) => Uint8Array.from({ length: n }, (_, i) => (i * 53 + 7) & 0xff));
// Token-shaped values are assembled at run time.
const SECRET = 'gh' + 'p_' + 'R7x2Kq9LmN4pV8sT1wY6zB3cD5fG0hJ2kL9m';
const EMAIL = 'maria.gonzalez' + '@' + 'mailbox.example.com';
const CARD = ['4111', '1111', '1111', '1111'].join(' ');

function scan(text: string): { findings: Finding[] } {
  return { findings: [...detectPii(text, { entities: ['EMAIL', 'CREDIT_CARD'] }), ...detectSecrets(text), ...detectCanary(text, canary)] };
}
const rewrite = (text: string, f: Finding[]): string => replaceSpans(text, f, () => '[REDACTED]');

function stream(text: string, cuts: number[], holdBack: number): string {
  const s = createStreamScanner({ scan, rewrite, holdBack });
  const points = [...new Set(cuts.map((c) => Math.min(c, text.length)))].sort((a, b) => a - b);
  let out = '';
  let prev = 0;
  for (const c of [...points, text.length]) {
    out += s.push(text.slice(prev, c)).emit;
    prev = c;
  }
  return out + s.end().emit;
}

test('real detectors: split at every offset', () => {
  const text = `Contact ${EMAIL} or pay with ${CARD}. Token: ${SECRET}. Marker ${canary.token} end.`;
  const expected = rewrite(text, scan(text).findings);
  for (const v of [SECRET, EMAIL, CARD, canary.token]) assert.ok(!expected.includes(v));
  for (let i = 0; i <= text.length; i++) assert.equal(stream(text, [i], 256), expected, `cut ${i}`);
});

test('property: real detectors, random texts and chunkings', () => {
  const words = fc.array(fc.constantFrom('the', 'invoice', 'is', 'ready', 'call', 'me', 'token', 'email', '.', ',', '\n', 'card', 'number', 'ok', '42'), { maxLength: 60 }).map((w) => w.join(' '));
  fc.assert(
    fc.property(words, words, words, words, fc.array(fc.nat({ max: 1500 }), { maxLength: 30 }), (a, b, c, d, cuts) => {
      const text = `${a} ${EMAIL} ${b} ${SECRET} ${c} ${canary.token} ${d} ${CARD}`;
      const expected = rewrite(text, scan(text).findings);
      const out = stream(text, cuts, 256);
      assert.equal(out, expected);
      for (const v of [SECRET, EMAIL, canary.token]) assert.ok(!out.includes(v));
    }),
    { numRuns: 60 },
  );
});
