/**
 * Per-function CPU of two gateway configurations measured in one process: a V8 CPU profile taken
 * while the configurations are loaded in alternating rounds, its samples split by round.
 *
 * On a shared 2-vCPU host a round's CPU per request swings by ±20 % with other load; rounds that
 * alternate second by second see the same host, so the difference between the two modes' samples
 * per request shows where one configuration spends more, function by function, when the totals
 * alone cannot resolve it (see bench/tools/on-off-profile.ts).
 */

/** The parts of a V8 `Profiler.stop` profile used here. */
export interface CpuProfile {
  nodes: Array<{ id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] }>;
  /** Microseconds, on the clock of `process.hrtime` (CLOCK_MONOTONIC) on Linux. */
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** One load round: which mode (0 or 1), its start and end (µs, same clock), requests served. */
export interface ProfileRound {
  mode: 0 | 1;
  t0: number;
  t1: number;
  requests: number;
}

/** One function's samples per request, in each mode. */
export interface FunctionCost {
  fn: string;
  /** µs per request (samples × interval ÷ requests) in mode 0 and mode 1, and mode 1 − mode 0. */
  us: [number, number];
  diff: number;
}

/** Result of `attribute`. */
export interface ProfileSplit {
  requests: [number, number];
  /** Non-idle sampled time per request in each mode (µs). */
  busyUs: [number, number];
  /** By self time (the function itself) and inclusive time (with what it calls), largest difference first. */
  self: FunctionCost[];
  inclusive: FunctionCost[];
}

/** A function's name and place, with the build directory (dist/ or another copy) and node_modules paths shortened. */
export function frameKey(f: CpuProfile['nodes'][number]['callFrame']): string {
  const url = f.url.replace(/^.*\/(dist|src|node_modules)\//, '$1/').replace(/^node:internal\//, 'node:');
  return `${f.functionName || '(anonymous)'} ${url}:${f.lineNumber + 1}`;
}

/**
 * Splits the profile's samples by round and sums them per function and mode. Each sample counts
 * `intervalUs` (the sampling interval asked for): a sample's time delta also holds the time the
 * thread was not running, which would charge preemption to whatever ran last.
 */
export function attribute(p: CpuProfile, rounds: readonly ProfileRound[], intervalUs: number): ProfileSplit {
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const keys = new Map(p.nodes.map((n) => [n.id, frameKey(n.callFrame)]));
  const self: [Map<string, number>, Map<string, number>] = [new Map(), new Map()];
  const incl: [Map<string, number>, Map<string, number>] = [new Map(), new Map()];
  const requests: [number, number] = [0, 0];
  for (const r of rounds) requests[r.mode] += r.requests;
  const sorted = [...rounds].sort((a, b) => a.t0 - b.t0);
  let t = p.startTime;
  let ri = 0;
  for (let i = 0; i < p.samples.length; i++) {
    t += p.timeDeltas[i] ?? 0;
    while (ri < sorted.length && t > sorted[ri]!.t1) ri++;
    if (ri >= sorted.length) break;
    if (t < sorted[ri]!.t0) continue;
    const m = sorted[ri]!.mode;
    const id = p.samples[i]!;
    const k = keys.get(id)!;
    self[m].set(k, (self[m].get(k) ?? 0) + intervalUs);
    const seen = new Set<string>();
    for (let x: number | undefined = id; x !== undefined; x = parent.get(x)) {
      const kk = keys.get(x)!;
      if (seen.has(kk)) continue;
      seen.add(kk);
      incl[m].set(kk, (incl[m].get(kk) ?? 0) + intervalUs);
    }
  }
  const table = (maps: [Map<string, number>, Map<string, number>]): FunctionCost[] => {
    const names = new Set([...maps[0].keys(), ...maps[1].keys()]);
    return [...names]
      .map((fn) => {
        const us: [number, number] = [(maps[0].get(fn) ?? 0) / Math.max(1, requests[0]), (maps[1].get(fn) ?? 0) / Math.max(1, requests[1])];
        return { fn, us, diff: us[1] - us[0] };
      })
      .sort((a, b) => b.diff - a.diff);
  };
  const busy = (m: 0 | 1) => [...self[m]].filter(([k]) => !k.startsWith('(idle)')).reduce((a, [, v]) => a + v, 0) / Math.max(1, requests[m]);
  return { requests, busyUs: [busy(0), busy(1)], self: table(self), inclusive: table(incl) };
}
