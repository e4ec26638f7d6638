/** Overlap resolution shared by the PII and secret detectors. */
import type { Finding } from '../types.js';

/**
 * Greedy non-overlapping selection: takes findings best-first (higher score, then longer span)
 * and keeps each one that does not overlap an already kept one. O(n log n) plus array inserts.
 * Returns the kept findings ordered by offset.
 */
export function keepBest(findings: readonly Finding[]): Finding[] {
  const sorted = [...findings].sort((a, b) => b.score - a.score || b.end - b.start - (a.end - a.start) || a.start - b.start);
  const kept: Finding[] = []; // sorted by start, pairwise disjoint
  for (const f of sorted) {
    let lo = 0;
    let hi = kept.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (kept[mid]!.start < f.start) lo = mid + 1;
      else hi = mid;
    }
    const prev = kept[lo - 1];
    const next = kept[lo];
    if (prev && prev.end > f.start) continue;
    if (next && next.start < f.end) continue;
    if (prev && prev.start === f.start) continue;
    kept.splice(lo, 0, f);
  }
  return kept;
}
