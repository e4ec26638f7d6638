import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { keyedSha256 } from '../../src/util/hmac.js';

const reference = (key: Buffer, text: string) => createHmac('sha256', key).update(text, 'utf8').digest();

test('keyedSha256 equals createHmac for any key length and any string (lone surrogates included)', () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 0, maxLength: 200 }), fc.string({ unit: 'binary', maxLength: 3000 }), (k, text) => {
      const key = Buffer.from(k);
      const h = keyedSha256(key);
      const want = reference(key, text);
      assert.equal(h.hex(text), want.toString('hex'));
      assert.deepEqual(h.digest(text), want);
    }),
    { numRuns: 400 },
  );
});

test('keyedSha256 is stable across calls of mixed sizes (reused buffers are not corrupted)', () => {
  const key = randomBytes(32);
  const h = keyedSha256(key);
  const texts = ['', 'a', 'é'.repeat(500), 'x'.repeat(70_000), '😀'.repeat(30_000), 'short again', 'y'.repeat(2_000)];
  const first = texts.map((t) => h.hex(t));
  const digests = texts.map((t) => h.digest(t));
  for (let i = 0; i < texts.length; i++) {
    assert.equal(first[i], reference(key, texts[i]!).toString('hex'));
    assert.deepEqual(digests[i], reference(key, texts[i]!));
  }
  // A digest returned earlier is the caller's own copy.
  assert.deepEqual(digests[0], reference(key, ''));
});
