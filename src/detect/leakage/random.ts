/** The one place leakage/ touches randomness: a canary from node:crypto. */
import { randomBytes } from 'node:crypto';
import { makeCanary, type Canary } from './canary.js';

/** Makes a fresh canary with cryptographic randomness. */
export function newCanary(): Canary {
  return makeCanary((n) => randomBytes(n));
}
