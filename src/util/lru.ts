/**
 * LRU caches for large bounds that are rarely reached (per key, per client address…).
 *
 * `new LRUCache({ max })` preallocates its slot arrays for `max` entries up front: two JS arrays
 * on the V8 heap (16 bytes per slot) plus typed arrays. For the 50 000–100 000-entry bounds of
 * the failed-auth buckets and the analytics detectors that is ~9 MB of live heap from the first
 * request on, and V8 sizes the heap's growth on the live size. Bounding by `maxSize` with every
 * entry of size 1 gives the same bound and the same LRU eviction with arrays that grow as entries
 * arrive.
 */
import { LRUCache } from 'lru-cache';

const ONE = (): number => 1;

/** An LRU cache holding at most `max` entries, allocated as it fills. */
export function growingLru<K extends {}, V extends {}>(max: number, opts: Omit<LRUCache.Options<K, V, unknown>, 'max' | 'maxSize' | 'sizeCalculation'> = {}): LRUCache<K, V> {
  return new LRUCache<K, V>({ ...opts, maxSize: max, sizeCalculation: ONE } as LRUCache.Options<K, V, unknown>);
}
