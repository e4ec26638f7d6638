/** Packed audit rows (RowPacker): what waits for the writer thread off the JS heap comes back as the same values. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RowPacker, unpackRow, unpackRows, type PackedRow } from '../../src/audit/sqlite-rows.js';

const long = 'x'.repeat(5000) + 'é';

const rows: unknown[][] = [
  ['aud_1', 1795885141227, '2026-11-28', 'request', 'ten_a', null, 'req-1', 200, 'gpt-4o-mini', null, '||', 0, 17, 0.00001422, '{"id":"aud_1"}'],
  ['', -1.5, 'ü', '日本語', '😀 emoji', 'tab\tnew\nline', '"quoted" \\', 0, '', 'a'.repeat(300), '|EMAIL|PHONE|', Number.MAX_SAFE_INTEGER, -0, 1e-300, long],
  [null, null, null, null, null, null, null, null, null, null, null, null, null, null, null],
  ['x', 1, 'y', 'z', 'w', 'v', 'u', 2, 't', 's', 'r', 3, 4, 5, ''],
];

/** The records copied back to back, as the store sends a batch to the writer thread. */
function batchOf(p: RowPacker, packed: PackedRow[]): Buffer {
  const out = Buffer.alloc(packed.reduce((a, r) => a + r.len, 0));
  p.copyAll(packed, out);
  return out;
}

/** Each record's bytes read straight from its chunk, one after another (what copyAll must produce). */
const recordBytes = (list: readonly PackedRow[]) => Buffer.concat(list.map((r) => r.chunk.buf.subarray(r.at, r.at + r.len)));

test('packed rows unpack to the same values: strings of any script, empty ones, nulls, integers past 2^32, fractions, negative zero', () => {
  const p = new RowPacker(64); // a tiny chunk: rows land in chunks of their own
  const packed = rows.map((r) => p.pack(r));
  for (let i = 0; i < rows.length; i++) assert.deepEqual(unpackRow(packed[i]!), rows[i]);
  assert.ok(Object.is(unpackRow(packed[1]!)[12], -0));
  const batch = batchOf(p, packed);
  assert.deepEqual(unpackRows(batch), rows);
  // As the thread receives it: a plain Uint8Array at an offset into a larger buffer.
  const ab = new ArrayBuffer(batch.length + 16);
  const view = new Uint8Array(ab, 8, batch.length);
  view.set(batch);
  assert.deepEqual(unpackRows(view), rows);
  // As the writer thread binds them: the last column's string as its UTF-8 bytes, not decoded.
  const asBytes = unpackRows(view, 15, true);
  assert.deepEqual(
    asBytes,
    rows.map((r) => [...r.slice(0, -1), typeof r[14] === 'string' ? Buffer.from(r[14]) : r[14]]),
  );
  assert.ok(Buffer.isBuffer(asBytes[0]![14]) && (asBytes[0]![14] as Buffer).buffer === ab, 'a view of the batch, not a copy');
});

test('copyAll copies records back to back as one copy per record would: runs within a chunk, across chunks, gaps and any order; a released record is refused', () => {
  const p = new RowPacker(1024); // a few records per chunk
  const packed = Array.from({ length: 40 }, (_, i) => p.pack(['aud_' + i, i, 'x'.repeat(i * 7), null, i % 3 ? 'é' : 'e']));
  const picks = [packed, packed.filter((_, i) => i % 3 !== 1), [...packed].reverse(), [packed[5]!, packed[6]!, packed[30]!, packed[7]!, packed[8]!, packed[9]!]];
  for (const list of picks) {
    const out = Buffer.alloc(recordBytes(list).length + 8, 0xee);
    assert.equal(p.copyAll(list, out, 4), out.length - 8);
    assert.deepEqual(out.subarray(4, out.length - 4), recordBytes(list));
    assert.ok(out.subarray(0, 4).every((b) => b === 0xee) && out.subarray(out.length - 4).every((b) => b === 0xee), 'nothing written outside its range');
    assert.deepEqual(unpackRows(out.subarray(4, out.length - 4), 5), list.map((r) => unpackRow(r, 5)));
  }
  p.release(packed[7]!);
  assert.throws(() => p.copyAll(packed.slice(5, 10), Buffer.alloc(1 << 16)), /reused/, 'a released record inside a run');
  assert.throws(() => p.copyAll([packed[7]!], Buffer.alloc(1 << 16)), /reused/, 'a released record starting a run');
});

test('chunks are reused once every row in them is released, and only then', () => {
  const p = new RowPacker(4096, 8);
  const row = (i: number) => [`aud_${i}`, i, '2026-11-28', 'request', `ten_${i % 7}`, `key_${i % 13}`, null, 200, 'm', null, '||', i, i * 2, i / 3, JSON.stringify({ i, s: 'ß'.repeat(i % 40) })];
  const first = Array.from({ length: 200 }, (_, i) => p.pack(row(i)));
  const chunks = new Set(first.map((r) => r.chunk));
  assert.ok(chunks.size > 5 && chunks.size < 50, 'rows share chunks');
  assert.equal(p.freeChunks, 0);
  // Release all but one row of the first chunk: nothing of it may be reused.
  const firstChunk = first[0]!.chunk;
  const inFirst = first.filter((r) => r.chunk === firstChunk);
  for (const r of first) if (r !== inFirst[0]) p.release(r);
  const keptValues = unpackRow(inFirst[0]!);
  const second = Array.from({ length: 200 }, (_, i) => p.pack(row(1000 + i)));
  assert.ok(!second.some((r) => r.chunk === firstChunk), 'a chunk with a live row is not reused');
  assert.ok(second.some((r) => chunks.has(r.chunk)), 'released chunks are reused');
  assert.deepEqual(unpackRow(inFirst[0]!), keptValues, 'the live row is intact');
  assert.deepEqual(second.map((r) => unpackRow(r)), Array.from({ length: 200 }, (_, i) => row(1000 + i)));
  // Releasing twice counts once.
  p.release(inFirst[0]!);
  p.release(inFirst[0]!);
  for (const r of second) p.release(r);
  assert.ok(p.freeChunks <= 8, 'at most maxFree chunks are kept');
});

test('a row read through its handle after release (its bytes possibly reused) is refused, never returned as another row', () => {
  const p = new RowPacker(4096);
  const a = p.pack(rows[0]!);
  p.release(a);
  assert.throws(() => unpackRow(a), /reused/);
  assert.throws(() => p.copyAll([a], Buffer.alloc(a.len)), /reused/);
  // A handle whose chunk was refilled by later rows.
  const q = new RowPacker(4096, 4);
  const old = Array.from({ length: 20 }, () => q.pack(rows[3]!));
  const stale = { ...old[0]!, released: false };
  for (const r of old) q.release(r);
  // Later rows, each released as soon as it is packed (written at once): chunks cycle through the free list.
  const later = Array.from({ length: 200 }, () => {
    const r = q.pack(rows[0]!);
    q.release(r);
    return r;
  });
  assert.ok(later.some((r) => r.chunk === stale.chunk && r.at === stale.at), 'the chunk was refilled from its start');
  assert.throws(() => unpackRow(stale), /reused/);
});

test('lone surrogates become U+FFFD (as a bound string does) without shifting the columns after them; two halves split across columns come back as they were', () => {
  const p = new RowPacker();
  assert.deepEqual(unpackRow(p.pack(['a\ud800', 'x', '\udc00b', null, '\ud83d\ude00']), 5), ['a\ufffd', 'x', '\ufffdb', null, '\ud83d\ude00']);
  // A column ending in a high surrogate next to one starting with a low one: joined they are a pair,
  // split again they are the same lone halves (each then bound as U+FFFD, as before packing).
  assert.deepEqual(unpackRow(p.pack(['a\ud800', '\udc00b', 'c']), 3), ['a\ud800', '\udc00b', 'c']);
  // The same pair across the last column's start: its bytes cannot be split off, so with
  // lastAsBytes the record is decoded whole instead (a JSON object never starts with a low half).
  const straddling = batchOf(p, [p.pack(['a\ud800', '\udc00b']), p.pack(['é😀', '😀{"x":"ü"}'])]);
  assert.deepEqual(unpackRows(straddling, 2, true), [['a\ud800', '\udc00b'], ['é😀', Buffer.from('😀{"x":"ü"}')]]);
  // Strings before the last that end in a multi-byte character: as many bytes as code units would
  // cut it (and decode to as many units), so the split is found byte by byte.
  const cut = [['ab', 'é', '{"k":1}'], ['x', '日', '{}'], ['y', '😀', '[]'], ['plain', 'ascii', '{"ok":true}']];
  assert.deepEqual(unpackRows(batchOf(p, cut.map((r) => p.pack(r))), 3, true), cut.map((r) => [r[0], r[1], Buffer.from(r[2]!)]));
});

test('values a column cannot hold are refused when packed; a damaged batch is refused when unpacked', () => {
  const p = new RowPacker();
  assert.throws(() => p.pack(['a', { x: 1 }]), /column 1: object/);
  assert.throws(() => p.pack([true]), /column 0: boolean/);
  const good = batchOf(p, [p.pack(rows[0]!)]);
  assert.throws(() => unpackRows(good.subarray(0, good.length - 3)), /malformed/);
  const bad = Buffer.from(good);
  bad.writeUInt32LE(3, 0);
  assert.throws(() => unpackRows(bad), /malformed/);
  assert.throws(() => unpackRows(good.subarray(0, good.length - 3), 15, true), /malformed/);
  assert.throws(() => unpackRows(bad, 15, true), /malformed/);
});
