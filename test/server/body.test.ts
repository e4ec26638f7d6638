import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { jsonDepthExceeds, parseJsonBody } from '../../src/server/body.js';

/** Container nesting depth of a parsed JSON value (reference for the byte scanner). */
function depthOf(v: unknown): number {
  if (Array.isArray(v)) return 1 + Math.max(0, ...v.map(depthOf));
  if (v && typeof v === 'object') return 1 + Math.max(0, ...Object.values(v).map(depthOf));
  return 0;
}

test('jsonDepthExceeds agrees with the parsed depth on arbitrary JSON, brackets inside strings included', () => {
  const tricky = fc.oneof(fc.json({ maxDepth: 8 }), fc.constantFrom('"[[[[{{{{"', '"\\\\"', '"\\"[[["', '{"a":"]]]]}}}}","b":[[[["é[€{"]]]]}'));
  fc.assert(
    fc.property(tricky, fc.integer({ min: 0, max: 10 }), fc.integer({ min: 1, max: 12 }), (json, wrap, max) => {
      const text = '['.repeat(wrap) + json + ']'.repeat(wrap);
      const expected = depthOf(JSON.parse(text)) > max;
      assert.equal(jsonDepthExceeds(Buffer.from(text, 'utf8'), max), expected, text);
    }),
    { numRuns: 2000 },
  );
});

test('parseJsonBody refuses deep nesting, invalid UTF-8 and non-objects, and parses the rest', () => {
  assert.throws(() => parseJsonBody(Buffer.from('{"a":' + '['.repeat(70) + ']'.repeat(70) + '}'), 64), /nested deeper than 64/);
  assert.deepEqual(parseJsonBody(Buffer.from('{"a":' + '['.repeat(60) + ']'.repeat(60) + '}'), 64).a instanceof Array, true);
  assert.throws(() => parseJsonBody(Buffer.from([0x7b, 0x22, 0xc3, 0x28, 0x22, 0x3a, 0x31, 0x7d]), 64), (e: any) => e.code === 'PCL_BAD_UTF8');
  assert.throws(() => parseJsonBody(Buffer.from('[1]'), 64), (e: any) => e.code === 'PCL_INVALID_REQUEST');
  assert.throws(() => parseJsonBody(Buffer.from('{"a":'), 64), (e: any) => e.code === 'PCL_BAD_JSON');
  assert.throws(() => parseJsonBody(Buffer.alloc(0), 64), (e: any) => e.code === 'PCL_BAD_JSON');
  // A string full of brackets is not nesting.
  assert.equal(parseJsonBody(Buffer.from(JSON.stringify({ s: '['.repeat(500) })), 64).s, '['.repeat(500));
});
