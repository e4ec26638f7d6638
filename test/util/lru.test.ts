import { test } from 'node:test';
import assert from 'node:assert/strict';
import { growingLru } from '../../src/util/lru.js';

test('growingLru keeps at most max entries and evicts the least recently used', () => {
  const c = growingLru<string, number>(3);
  c.set('a', 1);
  c.set('b', 2);
  c.set('c', 3);
  assert.equal(c.get('a'), 1); // a is now the most recently used
  c.set('d', 4);
  assert.equal(c.size, 3);
  assert.equal(c.has('b'), false, 'b was the least recently used');
  assert.deepEqual([...c.keys()].sort(), ['a', 'c', 'd']);
  c.set('a', 10); // replacing an entry does not count twice
  c.set('e', 5);
  assert.equal(c.size, 3);
  assert.equal(c.get('a'), 10);
  for (let i = 0; i < 10_000; i++) c.set(`k${i}`, i);
  assert.equal(c.size, 3);
  assert.deepEqual([...c.keys()], ['k9999', 'k9998', 'k9997']);
});

test('growingLru does not preallocate its bound', () => {
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  const before = process.memoryUsage().heapUsed;
  const caches = Array.from({ length: 10 }, () => growingLru<string, number>(100_000));
  gc?.();
  const grown = process.memoryUsage().heapUsed - before;
  // A preallocating LRUCache({ max: 100_000 }) holds two 100 000-slot arrays (~1.6 MB) each.
  assert.ok(grown < 2_000_000, `10 empty caches grew the heap by ${grown} bytes`);
  assert.equal(caches.length, 10);
});

test('growingLru passes other options through (ttl)', async () => {
  const c = growingLru<string, number>(10, { ttl: 20 });
  c.set('a', 1);
  assert.equal(c.get('a'), 1);
  await new Promise((r) => setTimeout(r, 40));
  assert.equal(c.get('a'), undefined);
});
