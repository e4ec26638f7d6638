/**
 * GCRA (generic cell rate algorithm) in integer microseconds: the state is one number,
 * the theoretical arrival time (TAT). `limit` units per `period` drain evenly; up to one
 * period's worth may arrive as a burst, after which admissions are spaced evenly — so,
 * unlike fixed windows, there is never a second full burst right after a boundary.
 * The Redis Lua scripts implement the same arithmetic.
 */

/** Result of one GCRA step. */
export interface GcraStep {
  allowed: boolean;
  /** TAT after the step (unchanged when refused). */
  tat: number;
  /** µs until back to a full burst (TAT − now, after applying when allowed). */
  fillUs: number;
  /** µs until this cost would fit (0 when allowed). */
  retryUs: number;
}

/** Tries to take `cost` units at `nowUs` given the stored `tat` (undefined = fresh). */
export function gcraTake(tat: number | undefined, nowUs: number, cost: number, limit: number, periodMs: number): GcraStep {
  const periodUs = periodMs * 1000;
  const base = tat === undefined || tat < nowUs ? nowUs : tat;
  // cost × period ÷ limit in this order (as the Redis script computes it): cost × (period ÷ limit)
  // can land just above an integer (51 × (60 000 000 ÷ 51) = 60 000 000.000000007), which refused a
  // request of exactly the limit on a full bucket here while the Redis store admitted it.
  const inc = Math.ceil((cost * periodUs) / limit);
  const newTat = base + inc;
  const over = newTat - nowUs - periodUs;
  if (over > 0) return { allowed: false, tat: base, fillUs: base - nowUs, retryUs: over };
  return { allowed: true, tat: newTat, fillUs: newTat - nowUs, retryUs: 0 };
}

/** Adds (delta > 0) or refunds (delta < 0) units to a TAT; undefined = nothing left to track. */
export function gcraAdjust(tat: number | undefined, nowUs: number, delta: number, limit: number, periodMs: number): number | undefined {
  const inc = Math.ceil((Math.abs(delta) * (periodMs * 1000)) / limit);
  if (delta > 0) return (tat === undefined || tat < nowUs ? nowUs : tat) + inc;
  if (tat === undefined) return undefined;
  const t = tat - inc;
  return t > nowUs ? t : undefined;
}
