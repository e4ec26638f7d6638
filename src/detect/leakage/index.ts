/** System-prompt leakage detectors: canary tokens and verbatim overlap. */
export { makeCanary, detectCanary, canaryAlnumLength, CANARY_PREFIX, type Canary, type DecodedView } from './canary.js';
export { detectOverlap, type OverlapOptions, type OverlapResult } from './overlap.js';
