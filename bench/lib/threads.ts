/**
 * CPU time of this process's threads, grouped: the main (event-loop) thread, threads that named
 * themselves (`nameThisThread`, e.g. the audit writer), and the rest (V8's platform workers for
 * GC and compilation, libuv's pool), read from /proc/self/task/<tid>/schedstat (exact, ns).
 */
import { readdirSync, readFileSync } from 'node:fs';

/** Thread group → CPU nanoseconds so far. `main` is the thread whose tid is the pid. */
export type ThreadCpu = Map<string, number>;

/** The main thread's group name. */
export const MAIN_THREAD = 'main';

/** CPU ns per thread group (by `comm`; the main thread as `main`); undefined off Linux. */
export function threadCpuNs(): ThreadCpu | undefined {
  let tids: string[];
  try {
    tids = readdirSync('/proc/self/task');
  } catch {
    return undefined;
  }
  const out: ThreadCpu = new Map();
  for (const t of tids) {
    try {
      const ns = Number(readFileSync(`/proc/self/task/${t}/schedstat`, 'utf8').split(' ')[0]);
      const name = Number(t) === process.pid ? MAIN_THREAD : readFileSync(`/proc/self/task/${t}/comm`, 'utf8').trim();
      out.set(name, (out.get(name) ?? 0) + ns);
    } catch {
      /* the thread ended meanwhile */
    }
  }
  return out;
}

/** `b − a` per group, in ns (groups only in `b` count from 0; a thread that ended in between is not counted). */
export function threadCpuDelta(a: ThreadCpu, b: ThreadCpu): ThreadCpu {
  const d: ThreadCpu = new Map();
  for (const [k, v] of b) d.set(k, Math.max(0, v - (a.get(k) ?? 0)));
  return d;
}
