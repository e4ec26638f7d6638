/**
 * Gives memory back after bursts. V8 sizes its old generation from how fast it filled during the
 * last busy stretch and shrinks it again only on a GC it runs for memory (its memory reducer),
 * which a server process under changing load seldom gets: after a burst the heap stays at its
 * burst size (old space 60-100 MB committed for ~30 MB live in the gateway bench) until the next
 * burst. This trimmer looks at the heap once a second and, when the event loop has been mostly
 * idle for that second and the heap holds much more than it did after the last full GC, runs a
 * full GC: a plain one first, which measures what is live and sweeps the pages a burst left empty,
 * then, only when the old generation is still much larger than its live size, a compacting one:
 * live objects are moved off sparse pages and the emptied pages, and with a low allocation rate
 * the young generation's grown semi-spaces, go back to the system. An old generation that grew
 * with live data is never compacted (see `trim`).
 *
 * Costs: one or two stop-the-world pauses (20-45 ms in the gateway bench after a burst) at a
 * moment the process is idle, at most once per `minIntervalMs`. One process-wide trimmer (`portcullis serve`
 * starts it in every serving process); `heapTrimStats()` feeds the metrics.
 */
import v8 from 'node:v8';
import vm from 'node:vm';
import { constants as perfConstants, performance, PerformanceObserver, type EventLoopUtilization } from 'node:perf_hooks';

/** Trimmer settings (`server.heapTrim`). */
export interface HeapTrimOptions {
  /** Event-loop utilisation (0-1) over the last check below which the process counts as idle. */
  idleUtilization: number;
  /** Least time between two trims (ms); longer after a long pause (see `PAUSE_SHARE`). */
  minIntervalMs: number;
  /** How often the heap is looked at (ms). */
  checkMs: number;
  /** The full GC to run (default: V8's, see `fullGc`); tests pass one that fails. */
  gc?: () => void;
}

/** What the trimmer has done (monotonic). */
export interface HeapTrimStats {
  trims: number;
  /** Sum of the trims' pauses (ms). */
  pauseMs: number;
  /** Heap bytes given back by the trims (committed before − after, summed). */
  freedBytes: number;
  /** Trims that compacted the old generation (the others were for a grown young generation alone). */
  compacting: number;
}

const MB = 1024 * 1024;
/** Old-generation slack (committed − live) that is worth a trim: this much, and half the live size. */
const MIN_SLACK = 16 * MB;
/** A young generation above this is a grown one (V8 starts with 1 MB semi-spaces and grows them to 16). */
const SMALL_NEW_SPACE = 8 * MB;
/** Trims for the young generation alone after one busy stretch: V8 shrinks it only when its allocation rate (measured over ~5 s) is low, which the first trim right after a burst may not yet see. */
const NEW_SPACE_TRIES = 2;

/**
 * The trims' pauses stay under this share of wall time: after a trim that paused the event loop
 * `p` ms the next waits at least `p / PAUSE_SHARE` ms (a 40 ms trim: 8 s, under the default 10 s;
 * a process with a large live heap whose trim took 500 ms: 100 s).
 */
export const PAUSE_SHARE = 0.005;

const stats: HeapTrimStats = { trims: 0, pauseMs: 0, freedBytes: 0, compacting: 0 };

/** The trimmer's counters in this process. */
export function heapTrimStats(): Readonly<HeapTrimStats> {
  return stats;
}

/** Where the old generation's growth factor came from (see `applyHeapGrowth`). */
export type HeapGrowthSource = 'config' | 'command line' | 'v8 default';

/**
 * Caps how far V8 lets the old generation grow past its live size before the next full GC:
 * `percent` 20 = the next GC starts at 1.2× what survived the last one (V8's own floor of a few MB
 * of growth still applies). V8's default is adaptive, up to 4× for a fast-allocating process with
 * a small heap: a gateway keeping 200 streams open promotes ~20 KB per stream (objects that live as
 * long as their stream) and let its old space grow from ~35 MB live to 60-80 MB between full GCs;
 * at 20 % it stays within ~10 MB of live. Full GCs come more often, but V8 marks concurrently:
 * CPU per request at 50 connections was unchanged in alternating rounds (305 vs 334 µs plain,
 * 395 vs 399 µs streamed). 0 keeps V8's default. A `--heap-growing-percent` given on the command
 * line wins (Node refuses it in NODE_OPTIONS). Process-wide; V8 reads the flag each time it sets
 * the next limit.
 */
export function applyHeapGrowth(percent: number): HeapGrowthSource {
  if (givenOnCommandLine('heap-growing-percent')) return 'command line';
  if (!(percent > 0)) return 'v8 default';
  v8.setFlagsFromString(`--heap-growing-percent=${Math.round(percent)}`);
  return 'config';
}

/** Whether Node was started with the V8 flag `--name` (with or without a value; `_` and `-` alike). */
function givenOnCommandLine(name: string): boolean {
  return process.execArgv.some((a) => {
    const flag = a.replace(/_/g, '-');
    return flag === `--${name}` || flag.startsWith(`--${name}=`);
  });
}

let gcFn: (() => void) | undefined;
/** V8's full GC: the `gc` of `--expose-gc`, made available at run time when the process was not started with it. */
function fullGc(): () => void {
  if (!gcFn) {
    const exposed = (globalThis as { gc?: () => void }).gc;
    if (typeof exposed === 'function') gcFn = exposed;
    else {
      v8.setFlagsFromString('--expose-gc');
      gcFn = vm.runInNewContext('gc') as () => void;
    }
  }
  return gcFn;
}

interface Spaces {
  /** Committed and used bytes of the old generation (old and large-object spaces). */
  oldCommitted: number;
  oldUsed: number;
  newCommitted: number;
}

function spaces(): Spaces {
  const s: Spaces = { oldCommitted: 0, oldUsed: 0, newCommitted: 0 };
  for (const sp of v8.getHeapSpaceStatistics()) {
    if (sp.space_name === 'old_space' || sp.space_name === 'large_object_space') {
      s.oldCommitted += sp.space_size;
      s.oldUsed += sp.space_used_size;
    } else if (sp.space_name === 'new_space') s.newCommitted = sp.space_size;
  }
  return s;
}

/**
 * One full GC, compacting when `compact`; returns the pause (ms).
 *
 * Compacting, every page is an evacuation candidate for this one GC (V8's own full GCs move at most
 * a few MB off the sparsest pages and leave the rest fragmented): the live objects are copied to
 * fresh pages before the old ones go back, so for the length of the GC the process holds the live
 * size twice (+25-30 MB for the gateway with 200 open streams). Worth it for an old generation
 * left grown by a burst; not for a young generation alone, which any full GC shrinks (when V8 sees
 * a low allocation rate) without moving the old one. Not touched when set on the command line.
 */
function trim(gc: () => void, compact: boolean): number {
  const toggle = compact && !givenOnCommandLine('compact-on-every-full-gc') && !givenOnCommandLine('no-compact-on-every-full-gc');
  const t = performance.now();
  if (toggle) v8.setFlagsFromString('--compact-on-every-full-gc');
  try {
    gc();
  } finally {
    if (toggle) v8.setFlagsFromString('--no-compact-on-every-full-gc');
  }
  return performance.now() - t;
}

/** A running trimmer. */
export interface HeapTrimmer {
  stop(): void;
  /** One check now (tests): trims when the conditions hold; returns whether it trimmed. */
  check(): boolean;
}

/**
 * Starts the process's trimmer (its timer does not keep the process alive). `log` gets one line
 * per trim at debug level.
 */
export function startHeapTrimmer(o: HeapTrimOptions, log?: { debug(obj: object, msg: string): void; warn(obj: object, msg: string): void }): HeapTrimmer {
  let last: EventLoopUtilization = performance.eventLoopUtilization();
  let lastTrim = 0;
  let wait = o.minIntervalMs;
  // The old generation's live size as of the last trim or the last full GC of V8's own in an idle
  // second (at start: what is in use now, mostly live).
  let live = spaces().oldUsed;
  // What V8's own full GCs leave: the old generation used right after the last one since the
  // previous check (-1: none). One that ran in an idle second after another idle second is the
  // current live size (a gateway holding 200 streams grows its old space well past the size at
  // start, all of it live or collected by V8 on its own, and compacting it would copy every live
  // object: a 20 MB RSS spike for nothing). One that ran while busy, or in the first idle second
  // after a busy one (its marking may have begun during the burst and kept the burst's objects as
  // live), is ignored.
  let majorUsed = -1;
  let lastBusy = true;
  const gcObserver = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      if ((e as unknown as { detail?: { kind?: number } }).detail?.kind === perfConstants.NODE_PERFORMANCE_GC_MAJOR) {
        majorUsed = spaces().oldUsed;
        return;
      }
    }
  });
  gcObserver.observe({ entryTypes: ['gc'] });
  let newSpaceTries = 0;
  let stopped = false;
  const stop = () => {
    stopped = true;
    clearInterval(timer);
    gcObserver.disconnect();
  };
  const check = (): boolean => {
    if (stopped) return false;
    const now = performance.eventLoopUtilization();
    const busy = performance.eventLoopUtilization(now, last).utilization >= o.idleUtilization;
    last = now;
    const seen = majorUsed;
    majorUsed = -1;
    const afterBusy = lastBusy;
    lastBusy = busy;
    if (busy) {
      newSpaceTries = 0;
      return false;
    }
    if (seen >= 0 && !afterBusy) live = seen;
    if (Date.now() - lastTrim < wait) return false;
    const before = spaces();
    const oldGrew = before.oldCommitted - live > Math.max(MIN_SLACK, live / 2);
    const newGrew = before.newCommitted > SMALL_NEW_SPACE && newSpaceTries < NEW_SPACE_TRIES;
    if (!oldGrew && !newGrew) return false;
    let pause: number;
    let compacted = false;
    try {
      const gc = o.gc ?? fullGc();
      // A plain full GC first (no more RSS than the heap holds): it measures what is live and
      // sweeps the pages a burst left empty. Compaction only when the old generation is still
      // much larger than that: live objects spread thin over many pages. An old generation that
      // grew with live data (200 open streams) is then never compacted: compacting copies every
      // live object before the old pages go back, a spike of the live size (18 MB seen).
      pause = trim(gc, false);
      if (oldGrew) {
        const swept = spaces();
        // Half the slack that asks for a trim: what a plain GC leaves of a burst (pages with a few
        // survivors each) is worth compacting at 8 MB; a live old generation sits within V8's
        // growth step (server.heapGrowthPercent) of its live size after a full GC.
        if (swept.oldCommitted - swept.oldUsed > Math.max(MIN_SLACK / 2, swept.oldUsed / 4)) {
          pause += trim(gc, true);
          compacted = true;
        }
      }
    } catch (e) {
      // No way to run a GC in this process (a runtime without the gc extension): stop trimming.
      stop();
      log?.warn({ err: (e as Error)?.message }, 'heap trimmer stopped: a full GC cannot be started in this process');
      return false;
    }
    const after = spaces();
    live = after.oldUsed;
    newSpaceTries = after.newCommitted > SMALL_NEW_SPACE ? newSpaceTries + 1 : NEW_SPACE_TRIES;
    lastTrim = Date.now();
    wait = Math.max(o.minIntervalMs, pause / PAUSE_SHARE);
    const freed = Math.max(0, before.oldCommitted + before.newCommitted - after.oldCommitted - after.newCommitted);
    stats.trims++;
    stats.pauseMs += pause;
    stats.freedBytes += freed;
    if (compacted) stats.compacting++;
    log?.debug({ compacting: compacted, pauseMs: Math.round(pause * 10) / 10, freedMB: Math.round(freed / 104857.6) / 10, liveMB: Math.round(live / 104857.6) / 10, newSpaceMB: Math.round(after.newCommitted / 104857.6) / 10 }, 'heap trimmed');
    return true;
  };
  // A failed check is logged, never thrown out of the timer (it would end the process).
  const timer = setInterval(() => {
    try {
      check();
    } catch (e) {
      log?.warn({ err: (e as Error)?.message }, 'heap trimmer check failed');
    }
  }, o.checkMs);
  timer.unref();
  return { stop, check };
}
