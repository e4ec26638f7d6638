/**
 * Output perturbation against extraction: caps or strips the `logprobs`/`top_logprobs` a client
 * asks for (chat, completions, and the Responses API's `top_logprobs` and
 * `include: ["message.output_text.logprobs"]`), and rounds the log-probabilities returned (whole
 * bodies and streamed chunks or events).
 */

/** Perturbation options. */
export interface PerturbOptions {
  /** `allow`: pass through; `cap`: limit top_logprobs to maxTopLogprobs; `strip`: remove logprobs requests. */
  logprobs: 'allow' | 'cap' | 'strip';
  maxTopLogprobs: number;
  /** Decimal places kept in returned log-probabilities (undefined = unchanged). */
  roundDecimals?: number;
}

/** The Responses API's `include` value that returns log-probabilities with output text. */
const RESPONSES_LOGPROBS = 'message.output_text.logprobs';

const includesLogprobs = (v: unknown): boolean => Array.isArray(v) && v.includes(RESPONSES_LOGPROBS);

/** How strongly a request asks for log-probabilities (0 = not at all, 1 = 20 alternatives). */
export function logprobDemand(body: Record<string, unknown>): number {
  const top = typeof body.top_logprobs === 'number' ? body.top_logprobs : 0;
  const legacy = typeof body.logprobs === 'number' ? body.logprobs : 0; // completions: logprobs = N
  if (body.logprobs === true || legacy > 0 || top > 0 || includesLogprobs(body.include)) return Math.min(1, 0.5 + Math.max(top, legacy) / 40);
  return 0;
}

/** The request body with logprobs capped or stripped; the same object when unchanged. */
export function perturbRequest(body: Record<string, unknown>, o: PerturbOptions): Record<string, unknown> {
  if (o.logprobs === 'allow' || (body.logprobs === undefined && body.top_logprobs === undefined && !includesLogprobs(body.include))) return body;
  const out = { ...body };
  if (o.logprobs === 'strip') {
    delete out.logprobs;
    delete out.top_logprobs;
    if (includesLogprobs(out.include)) out.include = (out.include as unknown[]).filter((x) => x !== RESPONSES_LOGPROBS);
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

/**
 * Keys under which log-probabilities are found, by shape: `choices[]` (chat and completions,
 * bodies and chunks), `output[].content[]` (a Responses API body, and `response` in its
 * `response.completed|incomplete|failed` events), `part` (`response.content_part.*` events) and
 * `item.content[]` (`response.output_item.*` events). `logprobs` at the top is a
 * `response.output_text.delta|done` event's.
 */
const CONTAINERS = new Set(['choices', 'output', 'content', 'part', 'item', 'response']);

function roundWithin(v: unknown, f: number, depth: number): unknown {
  if (depth > 6 || v === null || typeof v !== 'object') return v;
  if (Array.isArray(v)) {
    let out: unknown[] | undefined;
    for (let i = 0; i < v.length; i++) {
      const r = roundWithin(v[i], f, depth + 1);
      if (r !== v[i]) (out ??= v.slice())[i] = r;
    }
    return out ?? v;
  }
  const o = v as Record<string, unknown>;
  let out: Record<string, unknown> | undefined;
  for (const k in o) {
    const x = o[k];
    if (x === null || typeof x !== 'object') continue;
    const r = k === 'logprobs' ? (Array.isArray(x) && x.length === 0 ? x : roundIn(x, f)) : CONTAINERS.has(k) ? roundWithin(x, f, depth + 1) : x;
    if (r !== x) (out ??= { ...o })[k] = r;
  }
  return out ?? o;
}

/**
 * Rounds every log-probability in a response body, chunk or stream event: chat and completions
 * (`choices[].logprobs`) and the Responses API (`output[].content[].logprobs` with their
 * `top_logprobs`, and the same inside its stream events). The same object when there are none.
 */
export function roundLogprobs<T>(body: T, decimals: number): T {
  if (!body || typeof body !== 'object' || Array.isArray(body)) return body;
  return roundWithin(body, 10 ** decimals, 0) as T;
}
