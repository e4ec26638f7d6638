/** Per-request phase timings the proxy records for tracing (only when the request is traced). */
import type { RequestContext } from '../server/context.js';

/** One timed phase (performance.now() milliseconds). */
export interface PhaseTiming {
  name: string;
  start: number;
  end: number;
  /** Error code when the phase threw. */
  error?: string;
}

/**
 * Runs `fn` as phase `name`, timing it when tracing asked for timings on this request. Untraced,
 * it is a plain call (no promise of its own), so synchronous steps cost no extra microtask.
 */
export function phase<T>(ctx: RequestContext, name: string, fn: () => T | Promise<T>): T | Promise<T> {
  const timings = ctx.state.timings as PhaseTiming[] | undefined;
  if (!timings) return fn();
  return timed(timings, name, fn);
}

async function timed<T>(timings: PhaseTiming[], name: string, fn: () => T | Promise<T>): Promise<T> {
  const start = performance.now();
  try {
    const v = await fn();
    timings.push({ name, start, end: performance.now() });
    return v;
  } catch (e) {
    timings.push({ name, start, end: performance.now(), error: String((e as { code?: string })?.code ?? 'error') });
    throw e;
  }
}
