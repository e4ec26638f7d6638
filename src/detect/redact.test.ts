import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { Finding } from './types.js';
import { applyActions, counterPlaceholders, hashValue, maskValue, mergeFindings, pseudonymize, restore, surrogate } from './redact.js';
import { detectPii } from './pii/index.js';
import { ibanValid, luhnValid } from './pii/validators.js';

const f = (start: number, end: number, category = 'EMAIL', score = 0.9): Finding => ({ detector: 'pii.x', category, severity: 'medium', score, start, end, reason: 'r' });

// Filler text uses only lower-case letters and spaces; secrets use digits and upper case, so a
// secret can never appear in the output by accident of the filler.
const filler = fc.stringMatching(/^[a-z ]{0,30}$/);
const secret = fc.stringMatching(/^[A-Z0-9]{6,20}$/);
const doc = fc.array(fc.tuple(filler, secret), { minLength: 1, maxLength: 6 }).map((parts) => {
  let text = '';
  const findings: Finding[] = [];
  const values: string[] = [];
  for (const [a, s] of parts) {
    text += a;
    findings.push(f(text.length, text.length + s.length, 'SECRET'));
    values.push(s);
    text += s;
  }
  return { text: text + ' end', findings, values };
});

test('merge: overlapping findings become one span with the best category', () => {
  assert.deepEqual(mergeFindings([f(0, 5, 'A', 0.5), f(3, 9, 'B', 0.9), f(12, 14, 'C')]), [
    { start: 0, end: 9, category: 'B' },
    { start: 12, end: 14, category: 'C' },
  ]);
  assert.deepEqual(mergeFindings([f(-1, 2), f(5, 3), f(0, 100)], 10), []);
});

test('redact, mask, hash produce the documented shapes', () => {
  const t = 'mail a@b.co now';
  assert.equal(applyActions(t, [f(5, 11)], 'redact').text, 'mail [EMAIL] now');
  assert.equal(maskValue('4111111111111111'), '************1111');
  assert.equal(maskValue('abc'), '***');
  const h = applyActions(t, [f(5, 11)], 'hash', { hashKey: 'k1' }).text;
  assert.match(h, /^mail \[EMAIL:[0-9a-f]{12}\] now$/);
  assert.notEqual(h, applyActions(t, [f(5, 11)], 'hash', { hashKey: 'k2' }).text, 'keyed');
  assert.equal(hashValue('x', 'EMAIL', 'k'), hashValue('x', 'EMAIL', 'k'));
  assert.throws(() => applyActions(t, [f(5, 11)], 'hash'), /hashKey/);
});

test('property: redact/mask/hash/surrogate never leave a value in the output; offsets are valid', () => {
  fc.assert(
    fc.property(doc, fc.constantFrom('redact', 'mask', 'hash', 'surrogate', 'pseudonymize') as fc.Arbitrary<'redact' | 'mask' | 'hash' | 'surrogate' | 'pseudonymize'>, ({ text, findings, values }, action) => {
      const res = applyActions(text, findings, action, { hashKey: 'k', seed: 's', mapping: counterPlaceholders() });
      for (const v of values) if (v.length > 8 || action !== 'mask') assert.ok(!res.text.includes(v), `${action} leaked ${v}`);
      let prevEnd = 0;
      for (const r of res.replacements) {
        assert.equal(res.text.slice(r.outStart, r.outEnd), r.replacement);
        assert.ok(r.outStart >= prevEnd);
        prevEnd = r.outEnd;
        assert.ok(r.start >= 0 && r.end <= text.length);
      }
    }),
    { numRuns: 300 },
  );
});

test('property: restore(pseudonymize(x)) == x', () => {
  fc.assert(
    fc.property(doc, ({ text, findings, values }) => {
      const p = pseudonymize(text, findings, counterPlaceholders());
      for (const v of values) assert.ok(!p.text.includes(v));
      assert.equal(restore(p.text, p.mapping), text);
    }),
    { numRuns: 300 },
  );
});

test('pseudonymize is consistent and restore works on model output', () => {
  const t = 'Email jo@x.io and again jo@x.io, then al@y.io';
  const p = pseudonymize(t, detectPii(t), counterPlaceholders());
  assert.equal(p.text, 'Email <EMAIL_1> and again <EMAIL_1>, then <EMAIL_2>');
  assert.equal(restore('Reply to <EMAIL_2> and <EMAIL_1>.', p.mapping), 'Reply to al@y.io and jo@x.io.');
});

test('surrogates keep format and pass validators, deterministic per seed', () => {
  const card = surrogate('4111 1111 1111 1111', 'CREDIT_CARD', 'seed');
  assert.match(card, /^4\d{3} \d{4} \d{4} \d{4}$/);
  assert.ok(luhnValid(card.replace(/ /g, '')));
  assert.notEqual(card, '4111 1111 1111 1111');
  assert.equal(card, surrogate('4111 1111 1111 1111', 'CREDIT_CARD', 'seed'));
  assert.notEqual(card, surrogate('4111 1111 1111 1111', 'CREDIT_CARD', 'other'));
  const iban = surrogate('DE89370400440532013000', 'IBAN', 's');
  assert.ok(ibanValid(iban) && iban.startsWith('DE') && iban.length === 22, iban);
  assert.match(surrogate('a@b.co', 'EMAIL', 's'), /^user-[0-9a-f]{8}@example\.com$/);
  const phone = surrogate('+44 20 7946 0958', 'PHONE', 's');
  assert.match(phone, /^\+44 \d{2} \d{4} \d{4}$/);
  assert.match(surrogate('Bob', 'PERSON', 's'), /^<PERSON_[0-9a-f]{8}>$/);
  fc.assert(
    fc.property(fc.stringMatching(/^4\d{15}$/), fc.string(), (num, seed) => {
      const s = surrogate(num, 'CREDIT_CARD', seed);
      assert.ok(luhnValid(s) && s.length === 16 && s !== num);
    }),
    { numRuns: 200 },
  );
});
