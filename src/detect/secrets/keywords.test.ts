/** The secrets keyword prefilter: the automaton walked in the WebAssembly kernel against the JavaScript walk. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KERNEL, KERNEL_DFA_STRIDE, KERNEL_PREP_MAX } from '../kernel.js';
import { buildKeywordScanner } from './keywords.js';
import { SECRET_RULES } from './index.js';

test('the built-in keyword automaton in the WebAssembly kernel finds exactly what the JavaScript walk finds', () => {
  assert.ok(KERNEL !== undefined, 'WebAssembly kernel available');
  const words = [...new Set(SECRET_RULES.flatMap((r) => r.keywords.map((k) => k.toLowerCase())))];
  // The first automaton built in a process goes into the kernel (nothing else in this file builds one first).
  const inKernel = buildKeywordScanner(words);
  assert.equal(KERNEL.loadAutomaton(new Uint16Array(KERNEL_DFA_STRIDE), new Uint8Array(1), new Uint8Array(128)), undefined, 'the kernel already holds the built-in automaton');
  const inJs = buildKeywordScanner(words); // the kernel is taken: this one walks in JavaScript
  let seed = 7;
  const rnd = () => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  const pieces = [...words, ...words.map((w) => w.toUpperCase()), ' ', '\n', '=', ':', '"', 'é', '日本', '\u{1F600}', '\udc00', 'token', 'Key', 'x', '0', '_', '-', '/'];
  let withKeywords = 0;
  for (let t = 0; t < 3000; t++) {
    let s = '';
    const len = Math.floor(rnd() * rnd() * 2000);
    while (s.length < len) {
      const p = pieces[Math.floor(rnd() * pieces.length)]!;
      // Cut some keywords so partial matches and restarts are exercised.
      s += rnd() < 0.3 ? p.slice(0, Math.max(1, Math.floor(rnd() * p.length))) : p;
    }
    if (s.length > KERNEL_PREP_MAX) continue;
    const a = [...inKernel.scan(s)].sort((x, y) => x - y);
    const b = [...inJs.scan(s)].sort((x, y) => x - y);
    assert.deepEqual(a, b, `text ${t}: ${JSON.stringify(s.slice(0, 80))}`);
    if (a.length > 0) withKeywords++;
  }
  assert.ok(withKeywords > 1000, `texts with keywords: ${withKeywords}`);
});
