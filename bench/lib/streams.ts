/** Stream measurements with undici: time to first SSE byte, and many concurrent open streams. */
import { Agent, request } from 'undici';
import { setTimeout as sleep } from 'node:timers/promises';

/** Percentile summary in ms. */
export interface Summary {
  n: number;
  p50: number;
  p90: number;
  p99: number;
  mean: number;
  min: number;
}

/** Summarises samples (ms). */
export function summarize(xs: number[]): Summary {
  const s = [...xs].sort((a, b) => a - b);
  const at = (q: number) => (s.length ? s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)]! : NaN);
  const r3 = (v: number) => Math.round(v * 1000) / 1000;
  return { n: s.length, p50: r3(at(0.5)), p90: r3(at(0.9)), p99: r3(at(0.99)), mean: r3(s.reduce((a, b) => a + b, 0) / (s.length || 1)), min: r3(s[0] ?? NaN) };
}

/** A streamed POST target. */
export interface StreamTarget {
  url: string;
  body: string;
  headers: Record<string, string>;
}

/**
 * Sends `n` streamed requests one after another over a keep-alive connection and records,
 * for each, the time from sending the request to the first byte of the SSE body.
 * Every stream is read to its end and must contain `[DONE]`. Returns the raw samples (ms).
 */
export async function measureTtfb(t: StreamTarget, n: number, warmup = 30): Promise<{ ttfb: number[]; total: number[]; failures: number }> {
  const agent = new Agent({ connections: 1, keepAliveTimeout: 30_000 });
  const ttfb: number[] = [];
  const total: number[] = [];
  let failures = 0;
  try {
    for (let i = 0; i < warmup + n; i++) {
      const t0 = performance.now();
      let first = -1;
      let text = '';
      try {
        const res = await request(t.url, { method: 'POST', body: t.body, headers: { 'content-type': 'application/json', ...t.headers }, dispatcher: agent });
        for await (const chunk of res.body) {
          if (first < 0) first = performance.now() - t0;
          text += (chunk as Buffer).toString('utf8');
        }
        if (res.statusCode !== 200 || !text.includes('[DONE]')) throw new Error(`status ${res.statusCode}`);
      } catch {
        failures++;
        continue;
      }
      if (i >= warmup) {
        ttfb.push(first);
        total.push(performance.now() - t0);
      }
    }
  } finally {
    await agent.close();
  }
  return { ttfb, total, failures };
}

/** One streamed request read to its end: true when it answered 200 and ended with `[DONE]`; `onFirstByte` runs at its first body chunk. */
async function readStream(t: StreamTarget, agent: Agent, onFirstByte: () => void): Promise<boolean> {
  try {
    const res = await request(t.url, { method: 'POST', body: t.body, headers: { 'content-type': 'application/json', ...t.headers }, dispatcher: agent });
    let text = '';
    let first = true;
    for await (const chunk of res.body) {
      if (first) {
        onFirstByte();
        first = false;
      }
      text += (chunk as Buffer).toString('utf8');
    }
    return res.statusCode === 200 && text.includes('[DONE]');
  } catch {
    return false;
  }
}

/**
 * Opens `n` streams at once against a slow-streaming model, waits until every one has
 * delivered its first byte, calls `sample()` a few times while all are open (returns the
 * largest value), then reads every stream to its end.
 */
export async function holdConcurrentStreams(t: StreamTarget, n: number, sample: () => number, opts: { samples?: number; gapMs?: number; timeoutMs?: number } = {}): Promise<{ opened: number; completed: number; failures: number; peak: number }> {
  const agent = new Agent({ connections: n + 8, keepAliveTimeout: 30_000, bodyTimeout: 60_000, headersTimeout: 60_000 });
  let opened = 0;
  let completed = 0;
  let failures = 0;
  const all = Array.from({ length: n }, async () => {
    if (await readStream(t, agent, () => opened++)) completed++;
    else failures++;
  });
  const deadline = Date.now() + (opts.timeoutMs ?? 15_000);
  while (opened + failures < n && Date.now() < deadline) await sleep(10);
  let peak = 0;
  for (let i = 0; i < (opts.samples ?? 5); i++) {
    peak = Math.max(peak, sample());
    await sleep(opts.gapMs ?? 100);
  }
  const openedAtSample = opened;
  await Promise.all(all);
  await agent.close();
  return { opened: openedAtSample, completed, failures, peak };
}

/** RSS over a sustained hold of concurrent streams. */
export interface SustainedHold {
  /** Streams started (each one re-opened as it ends) and how they ended. */
  started: number;
  completed: number;
  failures: number;
  /** Samples of `sample()` every `gapMs`, from the moment all `n` streams were first open. */
  samples: number[];
  peak: number;
  median: number;
}

/**
 * Keeps `n` streams open for `seconds` against a slow-streaming model, re-opening each one as it
 * ends (so the gateway serves `n` concurrent streams throughout, with a steady flow of new
 * requests), and calls `sample()` every `gapMs` once all `n` are first open. Every stream must
 * end with `[DONE]`.
 */
export async function sustainConcurrentStreams(t: StreamTarget, n: number, seconds: number, sample: () => number, opts: { gapMs?: number; timeoutMs?: number } = {}): Promise<SustainedHold> {
  const agent = new Agent({ connections: n + 8, keepAliveTimeout: 30_000, bodyTimeout: 60_000, headersTimeout: 60_000 });
  let open = 0;
  let started = 0;
  let completed = 0;
  let failures = 0;
  let until = Infinity;
  const worker = async () => {
    while (Date.now() < until) {
      started++;
      let opened = false;
      const ok = await readStream(t, agent, () => {
        open++;
        opened = true;
      });
      if (opened) open--;
      if (ok) completed++;
      else if (++failures > n) break; // the target is down: stop instead of spinning
    }
  };
  const all = Array.from({ length: n }, worker);
  const deadline = Date.now() + (opts.timeoutMs ?? 15_000);
  while (open < n && failures === 0 && Date.now() < deadline) await sleep(10);
  until = Date.now() + seconds * 1000;
  const samples: number[] = [];
  while (Date.now() < until) {
    samples.push(sample());
    await sleep(opts.gapMs ?? 250);
  }
  await Promise.all(all);
  await agent.close();
  const sorted = [...samples].sort((a, b) => a - b);
  return { started, completed, failures, samples, peak: sorted.at(-1) ?? 0, median: sorted[Math.floor(sorted.length / 2)] ?? 0 };
}
