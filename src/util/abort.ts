/**
 * A small abort signal for upstream calls: what the proxy hands to undici (which accepts any
 * EventEmitter-style `signal`) and to the providers, instead of a Node `AbortController`.
 *
 * Why not `AbortController`: in a loaded gateway a Node `AbortSignal` (an `EventTarget`) given to
 * undici outlives the request by at least one young-generation GC, so it is promoted to the old
 * space together with the undici request objects its listener reaches. In a bare fastify + undici
 * proxy, heap allocation sampling over 6 s of load counted 44 MB of promoted objects with an
 * `AbortController` per request against 11–16 MB with this class or none; the old space then fills
 * with dead objects until the next full GC, which is most of the gateway's RSS under load.
 */

/** What providers receive: a Node `AbortSignal` (tests, scripts) or an {@link UpstreamAbort}. */
export type UpstreamSignal = AbortSignal | UpstreamAbort;

type Listener = () => void;

/** Abort controller and signal in one object, EventEmitter-style (`once`/`removeListener`). */
export class UpstreamAbort {
  aborted = false;
  reason: unknown = undefined;
  /** undici registers one listener per request; a re-asked stream may add a second. */
  #listeners: Listener[] | null = null;

  /** Aborts once: sets `reason` and calls the listeners (each at most once). */
  abort(reason?: unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason ?? new Error('aborted');
    const ls = this.#listeners;
    this.#listeners = null;
    if (ls) for (const l of ls) l();
  }

  once(type: string, listener: Listener): this {
    if (type === 'abort' && !this.aborted) (this.#listeners ??= []).push(listener);
    return this;
  }

  /** undici checks for `on` to recognise an EventEmitter; listeners fire once either way. */
  on(type: string, listener: Listener): this {
    return this.once(type, listener);
  }

  removeListener(type: string, listener: Listener): this {
    const ls = this.#listeners;
    if (type !== 'abort' || !ls) return this;
    const i = ls.indexOf(listener);
    if (i >= 0) ls.splice(i, 1);
    if (ls.length === 0) this.#listeners = null;
    return this;
  }

  /** Listeners currently registered (for tests: a finished request must leave none). */
  get listenerCount(): number {
    return this.#listeners?.length ?? 0;
  }
}
