/**
 * HTTP transport of the scanner: undici requests with a per-request timeout, retries
 * with exponential backoff on 429/5xx honouring `Retry-After`, and a shared rate limiter.
 */
import { request } from 'undici';
import { retryAfterMs } from '../../util/retry-after.js';

/** Retry and timeout settings. */
export interface TransportOptions {
  /** Per-attempt timeout in milliseconds. */
  timeoutMs: number;
  /** Retries after the first attempt. */
  retries: number;
  /** First backoff delay in milliseconds (doubles each retry, with jitter). */
  backoffMs: number;
  /** Upper bound of any single wait, including `Retry-After`. */
  maxBackoffMs: number;
  /** Requests per second across the scan (0 = unlimited). */
  rate: number;
}

/** Default transport settings. */
export const DEFAULT_TRANSPORT: TransportOptions = { timeoutMs: 60_000, retries: 4, backoffMs: 500, maxBackoffMs: 30_000, rate: 0 };

/** One HTTP exchange result; body is either text or a stream consumer's output. */
export interface HttpResult {
  status: number;
  headers: Record<string, string>;
  body: string;
  attempts: number;
  latencyMs: number;
  error?: string;
}

/** A token-bucket-free rate limiter: spaces request starts by 1/rate seconds. */
export class RateLimiter {
  private next = 0;
  constructor(private readonly rate: number) {}
  /** Resolves when the caller may start its next request. */
  async wait(signal?: AbortSignal): Promise<void> {
    if (this.rate <= 0) return;
    const now = Date.now();
    const at = Math.max(now, this.next);
    this.next = at + 1000 / this.rate;
    if (at > now) await sleep(at - now, signal);
  }
}

/** Sleeps for `ms`, rejecting early when the signal aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason ?? new Error('aborted'));
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    function onAbort(): void {
      clearTimeout(t);
      reject(signal?.reason ?? new Error('aborted'));
    }
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Parses `Retry-After` (seconds or HTTP date) into milliseconds, or null (`retryAfterMs`). */
export function parseRetryAfter(value: string | undefined, now = Date.now()): number | null {
  return retryAfterMs(value, now) ?? null;
}

/** Whether a status is worth retrying. */
export function isRetryable(status: number): boolean {
  return status === 429 || status === 500 || status === 502 || status === 503 || status === 504 || status === 529;
}

function flatHeaders(h: Record<string, string | string[] | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h)) if (v !== undefined) out[k.toLowerCase()] = Array.isArray(v) ? v.join(', ') : v;
  return out;
}

/** The body consumer: reads the (possibly streamed) response body to text. */
export type BodyReader = (body: AsyncIterable<Buffer | string>) => Promise<string>;

async function readAll(body: AsyncIterable<Buffer | string>): Promise<string> {
  let s = '';
  const dec = new TextDecoder();
  for await (const chunk of body) s += typeof chunk === 'string' ? chunk : dec.decode(chunk, { stream: true });
  return s + dec.decode();
}

/** The HTTP client used by targets: retries, backoff, `Retry-After`, timeout and rate limit. */
export class Transport {
  constructor(
    readonly opts: TransportOptions,
    private readonly limiter: RateLimiter = new RateLimiter(opts.rate),
  ) {}

  /** Sends one request with retries; never throws for HTTP or network errors (returns status 0). */
  async send(
    url: string,
    init: { method: string; headers: Record<string, string>; body?: string },
    opts: { retry?: boolean; signal?: AbortSignal; reader?: BodyReader } = {},
  ): Promise<HttpResult> {
    const started = Date.now();
    let maxAttempts = opts.retry === false ? 1 : this.opts.retries + 1;
    let resetRetried = false;
    let last: HttpResult = { status: 0, headers: {}, body: '', attempts: 0, latencyMs: 0, error: 'not sent' };
    for (let attempt = 1; attempt <= maxAttempts; attempt++) {
      await this.limiter.wait(opts.signal);
      const timeout = AbortSignal.timeout(this.opts.timeoutMs);
      const signal = opts.signal ? AbortSignal.any([opts.signal, timeout]) : timeout;
      try {
        const res = await request(url, { method: init.method as 'POST', headers: init.headers, body: init.body, signal });
        const headers = flatHeaders(res.headers as Record<string, string | string[] | undefined>);
        const ok = res.statusCode >= 200 && res.statusCode < 300;
        const body = ok && opts.reader ? await opts.reader(res.body) : await readAll(res.body);
        last = { status: res.statusCode, headers, body, attempts: attempt, latencyMs: Date.now() - started };
        if (!isRetryable(res.statusCode) || attempt === maxAttempts) return last;
        const ra = parseRetryAfter(headers['retry-after']);
        await sleep(Math.min(this.opts.maxBackoffMs, ra ?? this.backoff(attempt)), opts.signal);
      } catch (err) {
        if (opts.signal?.aborted) throw opts.signal.reason ?? err;
        const msg = timeout.aborted ? `timeout after ${this.opts.timeoutMs} ms` : describeError(err);
        last = { status: 0, headers: {}, body: '', attempts: attempt, latencyMs: Date.now() - started, error: msg };
        // A kept-alive socket closed by the server under us is not the target's answer: one free retry.
        if (!resetRetried && !timeout.aborted && /ECONNRESET|EPIPE|UND_ERR_SOCKET|other side closed/i.test(msg)) {
          resetRetried = true;
          maxAttempts++;
          continue;
        }
        if (attempt === maxAttempts) return last;
        await sleep(Math.min(this.opts.maxBackoffMs, this.backoff(attempt)), opts.signal);
      }
    }
    return last;
  }

  private backoff(attempt: number): number {
    const base = this.opts.backoffMs * 2 ** (attempt - 1);
    return Math.round(base * (0.75 + Math.random() * 0.5));
  }
}

function describeError(err: unknown): string {
  if (err && typeof err === 'object') {
    const e = err as { code?: string; message?: string; cause?: { code?: string; message?: string } };
    return [e.code ?? e.cause?.code, e.message ?? e.cause?.message].filter(Boolean).join(': ') || 'request failed';
  }
  return String(err);
}
