/**
 * Work that follows a response (the request log line, audit event, metrics, analytics) and
 * must not sit between one response and the next request.
 *
 * Run straight after a response (setImmediate, as before), it did: a client on a kept-alive
 * connection sends its next request some tens of µs after reading the response, and found the
 * event loop busy with the previous request's bookkeeping. Here that work waits in a queue and
 * runs at the first of:
 *
 * - a non-stream request has just been sent upstream (`kick`): the loop would otherwise sit idle
 *   until the provider answers, so the bookkeeping overlaps that wait; for a stream, once its
 *   first event is out (its first byte is never held up; the gaps between events are idle);
 * - a request that reads what the bookkeeping writes (metrics, audit, admin API) arrives
 *   (`drain` from the app's request hook, the metrics port, the audit flush), so a scrape or query
 *   right after a response sees that response;
 * - `maxDelayMs` passed (an idle gateway, or traffic rejected before any upstream call);
 * - `maxQueued` items are waiting (a flood of rejected requests);
 * - shutdown (`settle`).
 *
 * Each item runs once, in order; an item that throws or rejects is reported to `onError` and
 * does not stop the others.
 */

/** One queued item: returns a promise when it continues asynchronously. */
export type AfterResponseItem = () => void | Promise<unknown>;

/** The queue. */
export interface AfterResponse {
  /** Queues an item. */
  push(item: AfterResponseItem): void;
  /** An upstream request went out: run what is queued on the next turn of the loop. */
  kick(): void;
  /**
   * Runs everything queued now; the promise settles when those items (and any still running
   * from earlier drains) have finished, or after `maxWaitMs` (an item waiting on a store that is
   * down must not hold the caller up). `undefined` when nothing was queued or running.
   */
  drain(maxWaitMs?: number): Promise<void> | undefined;
  /** Runs everything queued until nothing is left or running (shutdown). */
  settle(): Promise<void>;
  /** Items waiting (tests, diagnostics). */
  readonly size: number;
}

/** Options. */
export interface AfterResponseOptions {
  /** Longest an item waits when no request triggers a drain (ms). Default 1. */
  maxDelayMs?: number;
  /** Queue length that triggers a drain on the next turn. Default 256. */
  maxQueued?: number;
  onError(e: unknown): void;
}

/** Creates the queue. */
export function createAfterResponse(opts: AfterResponseOptions): AfterResponse {
  const maxDelayMs = opts.maxDelayMs ?? 1;
  const maxQueued = opts.maxQueued ?? 256;
  let queue: AfterResponseItem[] = [];
  let timer: NodeJS.Timeout | undefined;
  let immediate: NodeJS.Immediate | undefined;
  const pending = new Set<Promise<unknown>>();

  const onTimer = () => {
    timer = undefined;
    runQueued();
  };
  const onImmediate = () => {
    immediate = undefined;
    runQueued();
  };

  function runQueued(): void {
    if (timer) {
      clearTimeout(timer);
      timer = undefined;
    }
    while (queue.length > 0) {
      const items = queue;
      queue = [];
      for (const item of items) {
        try {
          const r = item();
          if (r && typeof (r as Promise<unknown>).then === 'function') {
            const p = (r as Promise<unknown>).catch(opts.onError).finally(() => pending.delete(p));
            pending.add(p);
          }
        } catch (e) {
          opts.onError(e);
        }
      }
    }
  }

  return {
    push(item) {
      queue.push(item);
      if (queue.length >= maxQueued) {
        immediate ??= setImmediate(onImmediate);
      } else if (!timer) {
        timer = setTimeout(onTimer, maxDelayMs);
        timer.unref();
      }
    },
    kick() {
      if (queue.length > 0) immediate ??= setImmediate(onImmediate);
    },
    drain(maxWaitMs = 1000) {
      if (queue.length > 0) runQueued();
      if (pending.size === 0) return undefined;
      let t: NodeJS.Timeout | undefined;
      const timeout = new Promise<void>((resolve) => {
        t = setTimeout(resolve, maxWaitMs);
      });
      return Promise.race([Promise.allSettled([...pending]).then(() => undefined), timeout]).finally(() => clearTimeout(t));
    },
    async settle() {
      for (;;) {
        runQueued();
        if (pending.size === 0) return;
        await Promise.allSettled([...pending]);
      }
    },
    get size() {
      return queue.length;
    },
  };
}
