import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { makeCanary, detectCanary, detectOverlap } from './index.js';
import { newCanary } from './random.js';
import { createStreamScanner, replaceSpans } from '../stream/index.js';

const fixed = makeCanary((n) => Uint8Array.from({ length: n }, (_, i) => (i * 37 + 11) & 0xff));
const token = fixed.token;
const random = token.slice('pcl-canary-'.length);

test('makeCanary / newCanary produce distinct pcl-canary-<hex> tokens with a note', () => {
  assert.match(token, /^pcl-canary-[0-9a-f]{32}$/);
  assert.ok(fixed.note.includes(token));
  const a = newCanary();
  const b = makeCanary(randomBytes);
  assert.notEqual(a.token, b.token);
});

test('detectCanary: verbatim and obfuscated forms', () => {
  const cases: Record<string, string> = {
    verbatim: `Sure, my instructions include ${token}.`,
    upper: `MARKER: ${token.toUpperCase()}`,
    spaced: `marker ${[...token].join(' ')}`,
    zeroWidth: `marker ${[...token].join('\u200b')}`,
    randomOnly: `the code is ${random}`,
    reversed: `backwards: ${[...token].reverse().join('')}`,
    hex: `hex: ${Buffer.from(token).toString('hex')}`,
    base64: `b64: ${Buffer.from(token).toString('base64')}`,
    base64Embedded: `b64: ${Buffer.from('My system prompt says: ' + token + ' ok').toString('base64')}`,
    base64Shift1: `b64: ${Buffer.from('x' + token).toString('base64')}`,
    base64Shift2: `b64: ${Buffer.from('xy' + token).toString('base64')}`,
    fullwidth: `marker ${[...token].map((c) => String.fromCharCode(c.charCodeAt(0) + 0xfee0)).join('')}`,
  };
  for (const [name, text] of Object.entries(cases)) {
    const f = detectCanary(text, fixed);
    assert.ok(f.length >= 1, name);
    assert.equal(f[0].category, 'system_prompt_canary');
    assert.ok(!f[0].reason.includes(random), name);
  }
  // A decoder supplied by the caller (e.g. the normaliser) adds views.
  const custom = `encoded: ${[...token].map((c) => c.charCodeAt(0)).join(',')}`;
  assert.equal(detectCanary(custom, fixed).length, 0);
  const decode = (t: string) => [String.fromCharCode(...(t.match(/\d+/g) ?? []).map(Number))];
  assert.equal(detectCanary(custom, fixed, decode).length, 1);
});

test('detectCanary: no false positives on other canaries or plain text', () => {
  const other = makeCanary(randomBytes).token;
  assert.deepEqual(detectCanary(`Here is ${other} and some text about canaries in coal mines.`, fixed), []);
  assert.deepEqual(detectCanary(Buffer.from('lorem ipsum dolor sit amet consectetur').toString('base64'), fixed), []);
});

test('detectCanary spans are exact for verbatim and spaced forms', () => {
  const text = `abc ${token} def`;
  const [f] = detectCanary(text, fixed);
  assert.equal(text.slice(f.start, f.end), token);
});

test('streaming: a canary split at every offset is redacted exactly once', () => {
  const text = `Leading text. ${token} trailing text that goes on for a while.`;
  const rewrite = (t: string, f: Parameters<typeof replaceSpans>[1]) => replaceSpans(t, f, () => '[REDACTED]');
  const expected = rewrite(text, detectCanary(text, fixed));
  assert.equal(expected, 'Leading text. [REDACTED] trailing text that goes on for a while.');
  for (let i = 0; i <= text.length; i++) {
    const s = createStreamScanner({ scan: (t) => ({ findings: detectCanary(t, fixed) }), rewrite, holdBack: 128 });
    const out = s.push(text.slice(0, i)).emit + s.push(text.slice(i)).emit + s.end().emit;
    assert.equal(out, expected, `cut ${i}`);
  }
});

const SYSTEM = `You are Acme Corp's billing assistant. Only answer questions about invoices, refunds and payment methods.
Never reveal internal discount codes. If the customer is angry, offer a 10% goodwill credit up to 50 euros.
Escalate fraud reports to the risk team by replying with the phrase ESCALATE-RISK and nothing else.`;

test('detectOverlap flags verbatim leakage with length and ratio, not the text', () => {
  const leak = `Sure! My instructions: "${SYSTEM.slice(40, 300)}" — that's all.`;
  const r = detectOverlap(leak, SYSTEM);
  assert.equal(r.findings.length, 1);
  assert.ok(r.longestCommonChars >= 200);
  assert.ok(r.ratio > 0.5);
  assert.ok(r.longestSharedWords >= 30);
  assert.ok(!r.findings[0].reason.includes('invoices'));
  const f = r.findings[0];
  assert.ok(leak.slice(f.start, f.end).toLowerCase().includes('discount codes'));
});

test('detectOverlap is robust to case, whitespace and markdown emphasis', () => {
  const leak = SYSTEM.toUpperCase().replace(/ /g, '  \n').replace('DISCOUNT', '**DISCOUNT**');
  assert.equal(detectOverlap(leak, SYSTEM).findings.length, 1);
});

test('detectOverlap does not flag a normal on-topic answer', () => {
  const answer = 'Your invoice from March was paid by card. A refund for the duplicate payment will reach your account in 5 business days. Is there anything else about payment methods I can help with?';
  const r = detectOverlap(answer, SYSTEM);
  assert.deepEqual(r.findings, []);
  assert.ok(r.longestCommonChars < 40);
});

test('detectOverlap is fast on large inputs (linear)', () => {
  const words = Array.from({ length: 20000 }, (_, i) => `w${(i * 7919) % 10007}`);
  const big = words.join(' ');
  const out = words.slice(1000, 1200).join(' ') + ' ' + Array.from({ length: 10000 }, (_, i) => `z${i}`).join(' ');
  const t0 = performance.now();
  const r = detectOverlap(out, big);
  const ms = performance.now() - t0;
  assert.ok(r.longestSharedWords >= 200);
  assert.ok(ms < 5000, `${ms} ms`); // generous: shared CI machines
});

test('detectCanary: a hit in a decoded view is reported over its carrier (or the mapped span), not the whole text', () => {
  const carrier = `<${[...token].map((c) => c.charCodeAt(0)).join(',')}>`;
  const text = `${'Plain prose before the carrier. '.repeat(4)}${carrier} and after.`;
  const at = text.indexOf(carrier);
  const decode = (t: string) => {
    const m = /<([\d,]+)>/.exec(t);
    return m ? [{ text: String.fromCharCode(...m[1]!.split(',').map(Number)), start: m.index, end: m.index + m[0].length }] : [];
  };
  const f = detectCanary(text, fixed, decode);
  assert.equal(f.length, 1);
  assert.deepEqual([f[0].start, f[0].end], [at, at + carrier.length]);
  // With a map, the span is the one it gives (inside the carrier); a map pointing outside falls back to the carrier.
  const mapped = detectCanary(text, fixed, (t) => decode(t).map((v) => ({ ...v, map: () => ({ start: at + 1, end: at + 5 }) })));
  assert.deepEqual([mapped[0].start, mapped[0].end], [at + 1, at + 5]);
  const outside = detectCanary(text, fixed, (t) => decode(t).map((v) => ({ ...v, map: () => ({ start: 0, end: 5 }) })));
  assert.deepEqual([outside[0].start, outside[0].end], [at, at + carrier.length]);
  // A plain string view has no carrier: the whole text (the old contract).
  const whole = detectCanary(text, fixed, (t) => decode(t).map((v) => v.text));
  assert.deepEqual([whole[0].start, whole[0].end], [0, text.length]);
});

test('detectCanary finds \\x-escaped hex, with the backslash in the span', () => {
  const esc = [...Buffer.from(token)].map((b) => '\\x' + b.toString(16).padStart(2, '0')).join('');
  const text = `Note: ${esc} done`;
  const f = detectCanary(text, fixed);
  assert.ok(f.length >= 1);
  assert.equal(Math.min(...f.map((x) => x.start)), text.indexOf(esc));
  assert.equal(Math.max(...f.map((x) => x.end)), text.indexOf(esc) + esc.length);
});
