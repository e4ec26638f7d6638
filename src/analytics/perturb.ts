/**
 * Output perturbation against extraction: caps or strips the `logprobs`/`top_logprobs` a client
 * asks for, and rounds the log-probabilities returned (whole bodies and streamed chunks).
 */

/** Perturbation options. */
export interface PerturbOptions {
  /** `allow`: pass through; `cap`: limit top_logprobs to maxTopLogprobs; `strip`: remove logprobs requests. */
  logprobs: 'allow' | 'cap' | 'strip';
  maxTopLogprobs: number;
  /** Decimal places kept in returned log-probabilities (undefined = unchanged). */
  roundDecimals?: number;
}

/** How strongly a request asks for log-probabilities (0 = not at all, 1 = 20 alternatives). */
export function logprobDemand(body: Record<string, unknown>): number {
  const top = typeof body.top_logprobs === 'number' ? body.top_logprobs : 0;
  const legacy = typeof body.logprobs === 'number' ? body.logprobs : 0; // completions: logprobs = N
  if (body.logprobs === true || legacy > 0 || top > 0) return Math.min(1, 0.5 + Math.max(top, legacy) / 40);
  return 0;
}

/** The request body with logprobs capped or stripped; the same object when unchanged. */
export function perturbRequest(body: Record<string, unknown>, o: PerturbOptions): Record<string, unknown> {
  if (o.logprobs === 'allow' || (body.logprobs === undefined && body.top_logprobs === undefined)) return body;
  const out = { ...body };
  if (o.logprobs === 'strip') {
    delete out.logprobs;
    delete out.top_logprobs;
    return out;
  }
  if (typeof out.top_logprobs === 'number' && out.top_logprobs > o.maxTopLogprobs) out.top_logprobs = o.maxTopLogprobs;
  if (typeof out.logprobs === 'number' && out.logprobs > o.maxTopLogprobs) out.logprobs = o.maxTopLogprobs;
  return out;
}

function roundIn(v: unknown, f: number, depth = 0): unknown {
  if (depth > 8 || v === null || typeof v !== 'object') return v;
  if (Array.isArray(v)) return v.map((x) => roundIn(x, f, depth + 1));
  const o = v as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(o)) {
    if (k === 'logprob' && typeof x === 'number') out[k] = Math.round(x * f) / f;
    else if (k === 'token_logprobs' && Array.isArray(x)) out[k] = x.map((n) => (typeof n === 'number' ? Math.round(n * f) / f : n));
    else if (k === 'top_logprobs' && x && typeof x === 'object' && !Array.isArray(x)) out[k] = Object.fromEntries(Object.entries(x).map(([t, n]) => [t, typeof n === 'number' ? Math.round(n * f) / f : n]));
    else if (k === 'top_logprobs' && Array.isArray(x)) out[k] = x.map((e) => (e && typeof e === 'object' && !Array.isArray(e) && !('logprob' in e) ? Object.fromEntries(Object.entries(e).map(([t, n]) => [t, typeof n === 'number' ? Math.round(n * f) / f : n])) : roundIn(e, f, depth + 1)));
    else out[k] = roundIn(x, f, depth + 1);
  }
  return out;
}

/** Rounds every log-probability in a response body or chunk (choices[].logprobs, any depth). */
export function roundLogprobs<T>(body: T, decimals: number): T {
  const b = body as Record<string, unknown>;
  if (!b || typeof b !== 'object' || !Array.isArray(b.choices)) return body;
  const f = 10 ** decimals;
  if (!b.choices.some((c) => c && typeof c === 'object' && (c as Record<string, unknown>).logprobs)) return body;
  return { ...b, choices: b.choices.map((c) => (c && typeof c === 'object' && (c as Record<string, unknown>).logprobs ? { ...(c as object), logprobs: roundIn((c as Record<string, unknown>).logprobs, f) } : c)) } as T;
}
