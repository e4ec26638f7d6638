/**
 * A cache of detector results keyed by a hash of (detector, trust, text). Chat clients resend the
 * whole history on every turn; with the cache, earlier turns are not scanned again. Detectors are
 * pure, so a cached result is the result. Texts are never kept, only their SHA-256.
 */
import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';

/** A bounded detection cache. */
export interface DetectionCache {
  /** Returns the cached value for (scope, text) or computes and stores it. */
  get<T extends object>(scope: string, text: string, compute: () => T): T;
  readonly size: number;
}

/** Texts shorter than this are scanned directly (hashing them costs about as much). */
const MIN_CACHED_CHARS = 256;

/** Creates a cache with at most `entries` results (0 disables caching). */
export function createDetectionCache(entries: number): DetectionCache {
  if (entries <= 0) return { get: (_s, _t, compute) => compute(), size: 0 };
  const lru = new LRUCache<string, object>({ max: entries });
  // The guards of one run look up the same segment text one after the other (secrets, pii,
  // injection): its digest is computed once. The text is held only until the current
  // synchronous run ends (cleared in a microtask), so texts are still not kept.
  let lastText: string | undefined;
  let lastDigest = '';
  const forget = () => {
    lastText = undefined;
  };
  const digestOf = (text: string): string => {
    if (text !== lastText) {
      if (lastText === undefined) queueMicrotask(forget);
      lastText = text;
      lastDigest = createHash('sha256').update(text).digest('base64');
    }
    return lastDigest;
  };
  return {
    get<T extends object>(scope: string, text: string, compute: () => T): T {
      if (text.length < MIN_CACHED_CHARS) return compute();
      const key = scope + '\0' + digestOf(text);
      const hit = lru.get(key);
      if (hit) return hit as T;
      const v = compute();
      lru.set(key, v);
      return v;
    },
    get size() {
      return lru.size;
    },
  };
}
