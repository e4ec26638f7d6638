/** Packed audit rows (RowPacker): what waits for the writer thread off the JS heap comes back as the same values. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RowPacker, unpackRow, unpackRows } from '../../src/audit/sqlite-rows.js';

const long = 'x'.repeat(5000) + 'é';

const rows: unknown[][] = [
  ['aud_1', 1795885141227, '2026-11-28', 'request', 'ten_a', null, 'req-1', 200, 'gpt-4o-mini', null, '||', 0, 17, 0.00001422, '{"id":"aud_1"}'],
  ['', -1.5, 'ü', '日本語', '😀 emoji', 'tab\tnew\nline', '"quoted" \\', 0, '', 'a'.repeat(300), '|EMAIL|PHONE|', Number.MAX_SAFE_INTEGER, -0, 1e-300, long],
  [null, null, null, null, null, null, null, null, null, null, null, null, null, null, null],
  ['x', 1, 'y', 'z', 'w', 'v', 'u', 2, 't', 's', 'r', 3, 4, 5, ''],
];

test('packed rows unpack to the same values: strings of any script, empty ones, nulls, integers past 2^32, fractions, negative zero', () => {
  const p = new RowPacker(64); // a tiny chunk: rows land in chunks of their own
  const packed = rows.map((r) => p.pack(r));
  for (let i = 0; i < rows.length; i++) assert.deepEqual(unpackRow(packed[i]!), rows[i]);
  assert.ok(Object.is(unpackRow(packed[1]!)[12], -0));
  // A batch: the records back to back, as the store sends them to the writer thread.
  const batch = Buffer.concat(packed);
  assert.deepEqual(unpackRows(batch), rows);
  // As the thread receives it: a plain Uint8Array at an offset into a larger buffer.
  const ab = new ArrayBuffer(batch.length + 16);
  const view = new Uint8Array(ab, 8, batch.length);
  view.set(batch);
  assert.deepEqual(unpackRows(view), rows);
});

test('many rows share a chunk and stay valid after the packer moved on to the next one', () => {
  const p = new RowPacker(4096);
  const want = Array.from({ length: 500 }, (_, i) => [`aud_${i}`, i, '2026-11-28', 'request', `ten_${i % 7}`, `key_${i % 13}`, null, 200, 'm', null, '||', i, i * 2, i / 3, JSON.stringify({ i, s: 'ß'.repeat(i % 40) })]);
  const packed = want.map((r) => p.pack(r));
  assert.ok(new Set(packed.map((b) => b.buffer)).size > 10, 'the rows span many chunks');
  assert.ok(new Set(packed.map((b) => b.buffer)).size < 500, 'and share them');
  assert.deepEqual(packed.map((b) => unpackRow(b)), want);
});

test('lone surrogates become U+FFFD (as a bound string does) without shifting the columns after them; two halves split across columns come back as they were', () => {
  const p = new RowPacker();
  assert.deepEqual(unpackRow(p.pack(['a\ud800', 'x', '\udc00b', null, '\ud83d\ude00']), 5), ['a\ufffd', 'x', '\ufffdb', null, '\ud83d\ude00']);
  // A column ending in a high surrogate next to one starting with a low one: joined they are a pair,
  // split again they are the same lone halves (each then bound as U+FFFD, as before packing).
  assert.deepEqual(unpackRow(p.pack(['a\ud800', '\udc00b', 'c']), 3), ['a\ud800', '\udc00b', 'c']);
});

test('values a column cannot hold are refused when packed; a damaged batch is refused when unpacked', () => {
  const p = new RowPacker();
  assert.throws(() => p.pack(['a', { x: 1 }]), /column 1: object/);
  assert.throws(() => p.pack([true]), /column 0: boolean/);
  const good = p.pack(rows[0]!);
  assert.throws(() => unpackRows(good.subarray(0, good.length - 3)), /malformed/);
  const bad = Buffer.from(good);
  bad.writeUInt32LE(3, 0);
  assert.throws(() => unpackRows(bad), /malformed/);
});
