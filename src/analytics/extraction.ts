/**
 * Model-extraction detection per key over a sliding window of recent requests: volume, the share
 * of near-duplicate prompts (MinHash + LSH), systematic variation (one template, many enumerated
 * fillers), heavy logprobs/top_logprobs use and coverage-style sweeping. Only hashes of words are
 * kept, never the prompt text.
 */
import type { LRUCache } from 'lru-cache';
import { growingLru } from '../util/lru.js';
import { MinHasher, tokenHashesView } from './minhash.js';

/** Options of the extraction detector. */
export interface ExtractionOptions {
  /** Requests kept per key. */
  window: number;
  /** Oldest request kept (ms). */
  windowMs: number;
  /** Requests in the window before a score is given. */
  minRequests: number;
  /** Estimated Jaccard similarity that makes two prompts near-duplicates. */
  similarity: number;
  /** Requests per hour that count as full volume. */
  volumePerHour: number;
  /** Score (0–1) at which the key is reported. */
  threshold: number;
  /** Signal weights (normalised). */
  weights: { duplicates: number; systematic: number; logprobs: number; coverage: number; volume: number };
  /** Keys tracked (least recently seen dropped). */
  maxKeys: number;
}

/** Defaults, measured in test/analytics (README.md, "Observability: metrics, traces, behaviour analytics and incident response" → "Behaviour analytics"). */
export const DEFAULT_EXTRACTION: ExtractionOptions = {
  window: 200,
  windowMs: 3_600_000,
  minRequests: 30,
  similarity: 0.5,
  volumePerHour: 2000,
  threshold: 0.5,
  weights: { duplicates: 0.25, systematic: 0.25, logprobs: 0.2, coverage: 0.15, volume: 0.15 },
  maxKeys: 50_000,
};

/** What the detector needs of one request. */
export interface ExtractionInput {
  at: number;
  /** The variable part of the prompt (the last user turn). */
  text: string;
  /** 0 = no logprobs; 1 = logprobs with the most alternatives the API allows. */
  logprobs: number;
}

/** The extraction assessment of a key. */
export interface ExtractionScore {
  score: number;
  requests: number;
  signals: { duplicates: number; systematic: number; logprobs: number; coverage: number; volume: number };
  /** Human-readable reasons for the signals that are high. */
  reasons: string[];
  flagged: boolean;
}

interface Entry {
  at: number;
  bands: number[];
  /** Offset of the entry's record in its key's slab: the signature (`SIG` words), then `ntok` token hashes. */
  off: number;
  ntok: number;
  dup: boolean;
  template?: number;
  filler?: number;
  mono: boolean;
  logprobs: number;
}

interface TemplateStats {
  n: number;
  fillers: Map<number, number>;
  lastNum?: number;
}

interface KeyState {
  entries: Entry[];
  head: number;
  bandIndex: Map<number, Entry[]>;
  dup: number;
  templated: number;
  mono: number;
  logprobs: number;
  templates: Map<number, TemplateStats>;
  /**
   * The live entries' records, one after another as a ring (FIFO: entries leave in the order they
   * came). One growing buffer per key instead of two typed arrays per request: those have their
   * memory from malloc, and thousands a second, each kept for the window, grew the process's
   * malloc heap by ~30 MB under load that it did not give back (see the README's memory notes).
   */
  slab: Uint32Array;
  /** Where the next record goes. */
  tail: number;
}

const hasher = new MinHasher(16, 4, 2);
/** Words of a signature. */
const SIG = hasher.size;
/** Most tokens hashed per prompt. */
const MAX_TOKENS = 128;
/** Initial slab of a key (words): a few records. */
const SLAB_MIN = 512;
/** Most earlier prompts compared with a new one (newest first). */
const MAX_CANDIDATES = 8;

/** The differing middle of two token lists when they share a prefix and suffix covering most of them. */
function templateDiff(a: Uint32Array, b: Uint32Array, word: (i: number) => string): { template: number; filler: number; num?: number } | undefined {
  let p = 0;
  while (p < a.length && p < b.length && a[p] === b[p]) p++;
  let s = 0;
  while (s < a.length - p && s < b.length - p && a[a.length - 1 - s] === b[b.length - 1 - s]) s++;
  const midA = a.length - p - s;
  const midB = b.length - p - s;
  if (midA < 1 || midA > 4 || midB > 4 || p + s < 3) return undefined;
  let t = 0x811c9dc5;
  for (let i = 0; i < p; i++) t = Math.imul(t ^ a[i]!, 0x01000193);
  t = Math.imul(t ^ 0x7c, 0x01000193);
  for (let i = a.length - s; i < a.length; i++) t = Math.imul(t ^ a[i]!, 0x01000193);
  let f = 0x811c9dc5;
  for (let i = p; i < a.length - s; i++) f = Math.imul(f ^ a[i]!, 0x01000193);
  const mid = a.length - s - p === 1 ? word(p) : undefined;
  const num = mid !== undefined && /^\d{1,15}$/.test(mid) ? Number(mid) : undefined;
  return { template: t >>> 0, filler: f >>> 0, ...(num !== undefined ? { num } : {}) };
}

/**
 * Room for a record of `len` words in the key's slab (after `evict`, before the entry is pushed):
 * after the newest record, else from the start when the oldest live record leaves room there,
 * else in a larger slab into which the live records are copied in order (their offsets updated).
 */
function alloc(st: KeyState, len: number): number {
  const live = st.entries.length - st.head;
  const cap = st.slab.length;
  if (live === 0) st.tail = 0;
  const start = live ? st.entries[st.head]!.off : 0;
  // Not wrapped: the live records span [start, tail), free are [tail, cap) and [0, start).
  // Wrapped (tail <= start with records live): free is [tail, start).
  const wrapped = live > 0 && st.tail <= start;
  let at = -1;
  if (!wrapped && st.tail + len <= cap) at = st.tail;
  else if (!wrapped && len <= start) at = 0;
  else if (wrapped && st.tail + len <= start) at = st.tail;
  if (at < 0) {
    let used = len;
    for (let i = st.head; i < st.entries.length; i++) used += SIG + st.entries[i]!.ntok;
    let size = Math.max(SLAB_MIN, cap);
    while (size < used * 1.5) size *= 2;
    const next = new Uint32Array(size);
    let k = 0;
    for (let i = st.head; i < st.entries.length; i++) {
      const e = st.entries[i]!;
      const n = SIG + e.ntok;
      next.set(st.slab.subarray(e.off, e.off + n), k);
      e.off = k;
      k += n;
    }
    st.slab = next;
    at = k;
  }
  st.tail = at + len;
  return at;
}

/** Tracks keys and scores them for extraction behaviour. */
export class ExtractionDetector {
  readonly opts: ExtractionOptions;
  private readonly keys: LRUCache<string, KeyState>;
  constructor(opts: Partial<ExtractionOptions> = {}) {
    this.opts = { ...DEFAULT_EXTRACTION, ...opts, weights: { ...DEFAULT_EXTRACTION.weights, ...(opts.weights ?? {}) } };
    this.keys = growingLru(this.opts.maxKeys);
  }

  /** Adds one request of `key` and returns the key's current score. */
  observe(key: string, input: ExtractionInput): ExtractionScore {
    let st = this.keys.get(key);
    if (!st) {
      st = { entries: [], head: 0, bandIndex: new Map(), dup: 0, templated: 0, mono: 0, logprobs: 0, templates: new Map(), slab: new Uint32Array(SLAB_MIN), tail: 0 };
      this.keys.set(key, st);
    }
    this.evict(st, input.at);
    const tk = tokenHashesView(input.text, MAX_TOKENS);
    const off = alloc(st, SIG + tk.hashes.length);
    const slab = st.slab;
    const sig = hasher.signatureInto(tk.hashes, slab.subarray(off, off + SIG));
    const toks = slab.subarray(off + SIG, off + SIG + tk.hashes.length);
    toks.set(tk.hashes);
    const bands = hasher.bandKeys(sig);
    let best: Entry | undefined;
    let bestSim = 0;
    const seen: Entry[] = [];
    // Newest candidates first, a bounded number of them per band and in all: the cost stays flat
    // on templated floods (where every band lists the same earlier prompts).
    scan: for (const b of bands) {
      const list = st.bandIndex.get(b);
      if (!list) continue;
      for (let i = list.length - 1, looked = 0; i >= 0 && looked < MAX_CANDIDATES; i--, looked++) {
        const e = list[i]!;
        if (seen.includes(e)) continue;
        if (seen.length >= MAX_CANDIDATES) break scan;
        seen.push(e);
        const sim = MinHasher.similarityAt(slab, off, slab, e.off, SIG);
        if (sim > bestSim) {
          bestSim = sim;
          best = e;
        }
      }
    }
    const entry: Entry = { at: input.at, bands, off, ntok: toks.length, dup: false, mono: false, logprobs: Math.min(1, Math.max(0, input.logprobs)) };
    if (best && bestSim >= this.opts.similarity && toks.length > 0) {
      entry.dup = true;
      const bestToks = slab.subarray(best.off + SIG, best.off + SIG + best.ntok);
      const d = templateDiff(toks, bestToks, (i) => input.text.slice(tk.starts[i], tk.ends[i]));
      if (d) {
        entry.template = d.template;
        entry.filler = d.filler;
        // The neighbour belongs to the same template: count it too the first time it pairs up.
        if (best.template === undefined) {
          const bd = templateDiff(bestToks, toks, () => '');
          if (bd) this.addTemplated(st, best, bd.template, bd.filler, undefined);
        }
        this.addTemplated(st, entry, d.template, d.filler, d.num);
      }
    }
    st.entries.push(entry);
    for (const b of bands) {
      let list = st.bandIndex.get(b);
      if (!list) st.bandIndex.set(b, (list = []));
      list.push(entry);
    }
    if (entry.dup) st.dup++;
    st.logprobs += entry.logprobs;
    return this.scoreOf(st, input.at, true);
  }

  /** The current score of a key (undefined when unseen). */
  score(key: string, now = Date.now()): ExtractionScore | undefined {
    const st = this.keys.get(key);
    return st ? this.scoreOf(st, now) : undefined;
  }

  /** Forgets a key (after an operator cleared it). */
  reset(key: string): void {
    this.keys.delete(key);
  }

  private addTemplated(st: KeyState, e: Entry, template: number, filler: number, num: number | undefined): void {
    e.template = template;
    e.filler = filler;
    let t = st.templates.get(template);
    if (!t) st.templates.set(template, (t = { n: 0, fillers: new Map() }));
    t.n++;
    t.fillers.set(filler, (t.fillers.get(filler) ?? 0) + 1);
    if (num !== undefined) {
      if (t.lastNum !== undefined && num > t.lastNum) {
        e.mono = true;
        st.mono++;
      }
      t.lastNum = num;
    }
    st.templated++;
  }

  private evict(st: KeyState, now: number): void {
    const live = () => st.entries.length - st.head;
    while (live() > 0 && (live() >= this.opts.window || st.entries[st.head]!.at < now - this.opts.windowMs)) {
      const e = st.entries[st.head++]!;
      for (const b of e.bands) {
        const list = st.bandIndex.get(b);
        if (!list) continue;
        if (list[0] === e) list.shift();
        else {
          const i = list.indexOf(e);
          if (i >= 0) list.splice(i, 1);
        }
        if (list.length === 0) st.bandIndex.delete(b);
      }
      if (e.dup) st.dup--;
      st.logprobs -= e.logprobs;
      if (e.mono) st.mono--;
      if (e.template !== undefined) {
        st.templated--;
        const t = st.templates.get(e.template);
        if (t) {
          t.n--;
          const c = (t.fillers.get(e.filler!) ?? 1) - 1;
          if (c <= 0) t.fillers.delete(e.filler!);
          else t.fillers.set(e.filler!, c);
          if (t.n <= 0) st.templates.delete(e.template);
        }
      }
    }
    if (st.head > 1024 && st.head * 2 > st.entries.length) {
      st.entries = st.entries.slice(st.head);
      st.head = 0;
    }
  }

  private scoreOf(st: KeyState, now: number, evicted = false): ExtractionScore {
    const n = st.entries.length - st.head;
    const o = this.opts;
    const hourAgo = now - 3_600_000;
    let lastHour = 0;
    // Right after `evict`, a window of at most an hour holds only the last hour's requests.
    if (evicted && o.windowMs <= 3_600_000) lastHour = n;
    else for (let i = st.entries.length - 1; i >= st.head && st.entries[i]!.at >= hourAgo; i--) lastHour++;
    let maxFillers = 0;
    let distinct = 0;
    for (const t of st.templates.values()) {
      maxFillers = Math.max(maxFillers, t.fillers.size);
      distinct += t.fillers.size;
    }
    const duplicates = n ? st.dup / n : 0;
    const systematic = n ? Math.min(1, maxFillers / n) : 0;
    const logprobs = n ? st.logprobs / n : 0;
    const coverage = st.templated >= 10 ? Math.min(1, (0.5 * (distinct / st.templated) + 0.5 * (st.mono / st.templated)) * Math.min(1, (2 * st.templated) / n)) : 0;
    const volume = Math.min(1, lastHour / o.volumePerHour);
    const signals = { duplicates, systematic, logprobs, coverage, volume };
    const w = o.weights;
    const total = w.duplicates + w.systematic + w.logprobs + w.coverage + w.volume || 1;
    const score = n < o.minRequests ? 0 : (w.duplicates * duplicates + w.systematic * systematic + w.logprobs * logprobs + w.coverage * coverage + w.volume * volume) / total;
    const reasons: string[] = [];
    if (duplicates >= 0.5) reasons.push(`${Math.round(duplicates * 100)}% of the last ${n} prompts are near-duplicates of each other`);
    if (systematic >= 0.3) reasons.push(`one prompt template with ${maxFillers} different fillers (systematic variation)`);
    if (logprobs >= 0.3) reasons.push(`${Math.round(logprobs * 100)}% logprobs/top_logprobs use (weighted by alternatives asked)`);
    if (coverage >= 0.3) reasons.push(`templated prompts sweep new fillers${st.mono ? ' in increasing order' : ''} (coverage-style querying)`);
    if (volume >= 0.5) reasons.push(`${lastHour} requests in the last hour`);
    return { score: Math.round(score * 1000) / 1000, requests: n, signals, reasons, flagged: n >= o.minRequests && score >= o.threshold };
  }
}
