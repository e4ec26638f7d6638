/** Test helper: did a piece of async work let the event loop turn while it ran? */

/**
 * Awaits `work` (pass it right as it starts) and reports whether a `setImmediate` callback queued
 * at that moment ran before the work settled, i.e. whether the work gave the event loop a turn
 * instead of running to its end in one go (as synchronous better-sqlite3 statements do).
 */
export async function whileLooping<T>(work: Promise<T>): Promise<{ value: T; loopTurned: boolean }> {
  let settled = false;
  let loopTurned = false;
  const done = work.finally(() => (settled = true));
  setImmediate(() => (loopTurned = !settled));
  return { value: await done, loopTurned };
}
