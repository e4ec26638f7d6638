/**
 * Model-based judges over HTTP (undici): a Prompt-Guard-style classifier endpoint (text in,
 * label + score out) and Llama Guard behind any OpenAI-compatible chat endpoint. Each has a
 * timeout, an LRU cache of verdicts (keyed by a hash of the text) and a failure mode.
 */
import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { Agent, request } from 'undici';
import { parseLlamaGuard } from '../../detect/injection/index.js';
import type { Guard, GuardInput, SegmentFinding, SegmentRole, Verdict } from '../types.js';

/** A judge's answer for one text. */
export interface JudgeVerdict {
  unsafe: boolean;
  /** Attack/unsafe probability in [0, 1] (1 or 0 for Llama Guard). */
  score: number;
  /** Categories, e.g. `prompt_guard:INJECTION` or `llama_guard:S2`. */
  categories: string[];
}

/** A model-based judge. */
export interface Judge {
  readonly name: 'prompt-guard' | 'llama-guard';
  readonly timeoutMs: number;
  readonly failMode: 'open' | 'closed';
  /** Classifies one text; rejects on HTTP errors, bad replies and timeouts. */
  classify(text: string, signal?: AbortSignal): Promise<JudgeVerdict>;
  /** Cached verdicts. */
  readonly cacheSize: number;
  close(): Promise<void>;
}

/** Common judge options. */
export interface JudgeOptions {
  timeoutMs: number;
  failMode: 'open' | 'closed';
  cacheSize: number;
  cacheTtlMs: number;
  /** Value of the Authorization bearer token, if the endpoint needs one. */
  apiKey?: string;
}

const MAX_REPLY = 256 * 1024;
const MAX_JUDGED_CHARS = 32_000;

function keyOf(text: string): string {
  return createHash('sha256').update(text).digest('base64url');
}

async function postJson(agent: Agent, url: string, body: unknown, timeoutMs: number, apiKey: string | undefined, signal?: AbortSignal): Promise<unknown> {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(new Error('judge timeout')), timeoutMs);
  const onOuter = () => ac.abort(signal?.reason);
  signal?.addEventListener('abort', onOuter, { once: true });
  try {
    const res = await request(url, {
      method: 'POST',
      dispatcher: agent,
      signal: ac.signal,
      headers: { 'content-type': 'application/json', ...(apiKey ? { authorization: `Bearer ${apiKey}` } : {}) },
      body: JSON.stringify(body),
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
    });
    const chunks: Buffer[] = [];
    let n = 0;
    for await (const c of res.body) {
      n += (c as Buffer).length;
      if (n > MAX_REPLY) {
        res.body.on('error', () => {}); // uncaught otherwise (undici's abort error)
        res.body.destroy();
        throw new Error('judge reply too large');
      }
      chunks.push(c as Buffer);
    }
    if (res.statusCode >= 400) throw new Error(`judge answered HTTP ${res.statusCode}`);
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener('abort', onOuter);
  }
}

function cached(opts: JudgeOptions, run: (text: string, signal?: AbortSignal) => Promise<JudgeVerdict>) {
  const cache = opts.cacheSize > 0 ? new LRUCache<string, JudgeVerdict>({ max: opts.cacheSize, ...(opts.cacheTtlMs > 0 ? { ttl: opts.cacheTtlMs } : {}) }) : undefined;
  return {
    cache,
    async classify(text: string, signal?: AbortSignal): Promise<JudgeVerdict> {
      const t = text.length > MAX_JUDGED_CHARS ? text.slice(0, MAX_JUDGED_CHARS) : text;
      const k = keyOf(t);
      const hit = cache?.get(k);
      if (hit) return hit;
      const v = await run(t, signal);
      cache?.set(k, v);
      return v;
    },
  };
}

/** Options of the Prompt-Guard-style judge. */
export interface PromptGuardOptions extends JudgeOptions {
  /** Endpoint: POST `{"text": …}` → `{label, score}`, `[{label, score}…]` or `[[…]]` (HF text-classification). */
  url: string;
  /** Labels counting as an attack. */
  labels: readonly string[];
  threshold: number;
}

/** Reads the attack score out of a classifier reply. */
export function promptGuardScore(reply: unknown, attackLabels: readonly string[]): { score: number; label: string } {
  const attack = new Set(attackLabels.map((l) => l.toUpperCase()));
  let items: unknown[] = Array.isArray(reply) ? reply : [reply];
  if (items.length > 0 && Array.isArray(items[0])) items = items[0] as unknown[];
  let best = { score: 0, label: '' };
  let benignMax = -1;
  let seen = 0;
  for (const it of items) {
    const o = it as { label?: unknown; score?: unknown };
    if (!o || typeof o.label !== 'string' || typeof o.score !== 'number' || !Number.isFinite(o.score)) continue;
    seen++;
    if (attack.has(o.label.toUpperCase())) {
      if (o.score >= best.score) best = { score: o.score, label: o.label.toUpperCase() };
    } else benignMax = Math.max(benignMax, o.score);
  }
  if (seen === 0) throw new Error('judge reply has no label/score');
  if (best.label === '' && benignMax >= 0) best = { score: 1 - benignMax, label: 'BENIGN' };
  return best;
}

/** Creates a Prompt-Guard-style classifier judge. */
export function createPromptGuardJudge(opts: PromptGuardOptions): Judge {
  const agent = new Agent({ connect: { timeout: opts.timeoutMs }, keepAliveTimeout: 30_000 });
  const c = cached(opts, async (text, signal) => {
    const reply = await postJson(agent, opts.url, { text }, opts.timeoutMs, opts.apiKey, signal);
    const { score, label } = promptGuardScore(reply, opts.labels);
    const unsafe = score >= opts.threshold;
    return { unsafe, score: Math.round(score * 1000) / 1000, categories: unsafe ? [`prompt_guard:${label}`] : [] };
  });
  return { name: 'prompt-guard', timeoutMs: opts.timeoutMs, failMode: opts.failMode, classify: c.classify, get cacheSize() { return c.cache?.size ?? 0; }, close: () => agent.close() };
}

/** Options of the Llama Guard judge. */
export interface LlamaGuardOptions extends JudgeOptions {
  /** OpenAI-compatible base URL including `/v1`. */
  baseUrl: string;
  model: string;
}

/** Creates a Llama Guard judge that calls `<baseUrl>/chat/completions` and parses `safe` / `unsafe` + `S1..S14`. */
export function createLlamaGuardJudge(opts: LlamaGuardOptions): Judge {
  const agent = new Agent({ connect: { timeout: opts.timeoutMs }, keepAliveTimeout: 30_000 });
  const url = opts.baseUrl.replace(/\/+$/, '') + '/chat/completions';
  const c = cached(opts, async (text, signal) => {
    const reply = (await postJson(agent, url, { model: opts.model, messages: [{ role: 'user', content: text }], max_tokens: 24, temperature: 0 }, opts.timeoutMs, opts.apiKey, signal)) as any;
    const content = reply?.choices?.[0]?.message?.content;
    if (typeof content !== 'string') throw new Error('judge reply has no message content');
    const v = parseLlamaGuard(content);
    return { unsafe: !v.safe, score: v.safe ? 0 : 1, categories: v.safe ? [] : v.categories.length ? v.categories.map((s) => `llama_guard:${s}`) : ['llama_guard:unsafe'] };
  });
  return { name: 'llama-guard', timeoutMs: opts.timeoutMs, failMode: opts.failMode, classify: c.classify, get cacheSize() { return c.cache?.size ?? 0; }, close: () => agent.close() };
}

/** Options of a judge guard (a judge asked about every segment of the given roles). */
export interface JudgeGuardOptions {
  judge: Judge;
  roles: readonly SegmentRole[];
  mode?: 'enforce' | 'shadow';
}

/** A guard (cost `model`) that blocks segments a judge calls unsafe; its timeout and failure mode are the judge's. */
export function createJudgeGuard(opts: JudgeGuardOptions): Guard {
  const roles = new Set(opts.roles);
  const j = opts.judge;
  return {
    name: `judge:${j.name}`,
    stages: ['request'],
    cost: 'model',
    timeoutMs: j.timeoutMs,
    failMode: j.failMode,
    mode: opts.mode ?? 'enforce',
    async check(input: GuardInput): Promise<Verdict> {
      const segs = input.segments.filter((s) => roles.has(s.role));
      const verdicts = await Promise.all(segs.map((s) => j.classify(s.text, input.signal)));
      const findings: SegmentFinding[] = [];
      let score = 0;
      verdicts.forEach((v, i) => {
        score = Math.max(score, v.score);
        if (!v.unsafe) return;
        const s = segs[i]!;
        for (const c of v.categories) findings.push({ detector: `judge.${j.name}`, category: c, severity: 'high', score: v.score, start: 0, end: s.text.length, reason: `${j.name} judged the segment unsafe`, segment: s.id });
      });
      if (findings.length === 0) return { action: 'allow', score };
      return { action: 'block', findings, categories: [...new Set(findings.map((f) => f.category))], score };
    },
  };
}
