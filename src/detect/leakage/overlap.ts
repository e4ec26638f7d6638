/**
 * Verbatim system-prompt leakage: long shared word n-grams and the longest common substring
 * between an output and the system prompt, in linear time (rolling hashes and a suffix automaton).
 */
import type { Finding } from '../types.js';

/** Options of {@link detectOverlap}. */
export interface OverlapOptions {
  /** Longest common substring (normalised characters) that triggers a finding. Default 80. */
  minChars?: number;
  /** Longest run of shared consecutive words that triggers a finding. Default 12. */
  minNgramWords?: number;
  /** Fraction of the system prompt's word n-grams found in the output that triggers a finding. Default 0.5. */
  minCoverage?: number;
  /** N-gram size used for the coverage measure. Default 5. */
  ngram?: number;
  /** Longest system prompt considered, in characters (the rest is ignored). Default 200 000. */
  maxPromptChars?: number;
}

/** Overlap measures; never the shared text itself. */
export interface OverlapResult {
  /** At most one finding, spanning the longest shared passage in the output. */
  findings: Finding[];
  /** Length of the longest common substring (normalised characters). */
  longestCommonChars: number;
  /** That length divided by the normalised system-prompt length. */
  ratio: number;
  /** Longest run of consecutive shared words. */
  longestSharedWords: number;
  /** Fraction of the system prompt's n-grams present in the output. */
  coverage: number;
}

/** Lower-cases, drops zero-width and markdown emphasis, collapses whitespace; keeps original offsets. */
function normalize(text: string): { s: string; map: number[] } {
  let s = '';
  const map: number[] = [];
  let lastSpace = true;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (/[\u200B-\u200D\u2060\uFEFF*_`]/.test(ch)) continue;
    if (/\s/.test(ch)) {
      if (!lastSpace) {
        s += ' ';
        map.push(i);
        lastSpace = true;
      }
      continue;
    }
    const lower = ch.toLowerCase();
    for (const l of lower) {
      s += l;
      map.push(i);
    }
    lastSpace = false;
  }
  return { s, map };
}

/**
 * A suffix automaton over `s` (at most 2|s| states) for longest-common-substring queries.
 * Transitions are kept in flat edge lists (typed arrays), which is far lighter than a Map per state.
 */
class SuffixAutomaton {
  private link: Int32Array;
  private len: Int32Array;
  private head: Int32Array;
  private edgeNext: Int32Array;
  private edgeChar: Uint16Array;
  private edgeTo: Int32Array;
  private states = 1;
  private edges = 0;
  private last = 0;

  constructor(s: string) {
    const maxStates = 2 * s.length + 2;
    const maxEdges = 3 * s.length + 4;
    this.link = new Int32Array(maxStates);
    this.len = new Int32Array(maxStates);
    this.head = new Int32Array(maxStates).fill(-1);
    this.edgeNext = new Int32Array(maxEdges);
    this.edgeChar = new Uint16Array(maxEdges);
    this.edgeTo = new Int32Array(maxEdges);
    this.link[0] = -1;
    for (let i = 0; i < s.length; i++) this.extend(s.charCodeAt(i));
  }

  private find(v: number, c: number): number {
    for (let e = this.head[v]; e !== -1; e = this.edgeNext[e]) if (this.edgeChar[e] === c) return e;
    return -1;
  }

  private get(v: number, c: number): number {
    const e = this.find(v, c);
    return e === -1 ? -1 : this.edgeTo[e];
  }

  private set(v: number, c: number, to: number): void {
    const e = this.find(v, c);
    if (e !== -1) {
      this.edgeTo[e] = to;
      return;
    }
    if (this.edges >= this.edgeTo.length) this.grow();
    const n = this.edges++;
    this.edgeChar[n] = c;
    this.edgeTo[n] = to;
    this.edgeNext[n] = this.head[v];
    this.head[v] = n;
  }

  private grow(): void {
    const size = this.edgeTo.length * 2;
    const next = new Int32Array(size);
    next.set(this.edgeNext);
    const chars = new Uint16Array(size);
    chars.set(this.edgeChar);
    const to = new Int32Array(size);
    to.set(this.edgeTo);
    this.edgeNext = next;
    this.edgeChar = chars;
    this.edgeTo = to;
  }

  private extend(c: number): void {
    const cur = this.states++;
    this.len[cur] = this.len[this.last] + 1;
    let p = this.last;
    while (p !== -1 && this.get(p, c) === -1) {
      this.set(p, c, cur);
      p = this.link[p];
    }
    if (p === -1) {
      this.link[cur] = 0;
    } else {
      const q = this.get(p, c);
      if (this.len[p] + 1 === this.len[q]) {
        this.link[cur] = q;
      } else {
        const clone = this.states++;
        this.len[clone] = this.len[p] + 1;
        this.link[clone] = this.link[q];
        for (let e = this.head[q]; e !== -1; e = this.edgeNext[e]) this.set(clone, this.edgeChar[e], this.edgeTo[e]);
        while (p !== -1 && this.get(p, c) === q) {
          this.set(p, c, clone);
          p = this.link[p];
        }
        this.link[q] = clone;
        this.link[cur] = clone;
      }
    }
    this.last = cur;
  }

  /** Longest substring of `t` that occurs in the automaton's string: [length, end index in t]. */
  longestCommon(t: string): [number, number] {
    let v = 0;
    let l = 0;
    let best = 0;
    let bestEnd = 0;
    for (let i = 0; i < t.length; i++) {
      const c = t.charCodeAt(i);
      while (v !== 0 && this.get(v, c) === -1) {
        v = this.link[v];
        l = this.len[v];
      }
      const to = this.get(v, c);
      if (to !== -1) {
        v = to;
        l++;
      }
      if (l > best) {
        best = l;
        bestEnd = i + 1;
      }
    }
    return [best, bestEnd];
  }
}

/** Every window of `n` consecutive words, joined into one set key. */
function ngramHashes(words: string[], n: number): string[] {
  const out: string[] = [];
  for (let i = 0; i + n <= words.length; i++) out.push(words.slice(i, i + n).join('\u0001'));
  return out;
}

/**
 * Measures how much of the system prompt an output repeats verbatim; returns a finding when
 * the longest common substring, the longest shared word run or the n-gram coverage crosses its threshold.
 */
export function detectOverlap(output: string, systemPrompt: string, opts: OverlapOptions = {}): OverlapResult {
  const minChars = opts.minChars ?? 80;
  const minWords = opts.minNgramWords ?? 12;
  const minCoverage = opts.minCoverage ?? 0.5;
  const n = Math.max(2, opts.ngram ?? 5);
  const prompt = normalize(systemPrompt.slice(0, opts.maxPromptChars ?? 200_000)).s;
  const out = normalize(output);
  const empty: OverlapResult = { findings: [], longestCommonChars: 0, ratio: 0, longestSharedWords: 0, coverage: 0 };
  if (prompt.length === 0 || out.s.length === 0) return empty;

  const [lcs, lcsEnd] = new SuffixAutomaton(prompt).longestCommon(out.s);

  // Word runs: the longest stretch of output words covered by shared n-grams (set lookups, linear).
  const pw = prompt.split(' ').filter(Boolean);
  const owTokens: Array<{ w: string; at: number }> = [];
  for (const m of out.s.matchAll(/\S+/g)) owTokens.push({ w: m[0], at: m.index });
  const ow = owTokens.map((t) => t.w);
  const k = Math.min(n, Math.max(2, Math.min(pw.length, ow.length)));
  const promptSet = new Set(ngramHashes(pw, k));
  const outGrams = ngramHashes(ow, k);
  const outSet = new Set(outGrams);
  let run = 0;
  let bestRunWords = 0;
  for (let i = 0; i < outGrams.length; i++) {
    run = promptSet.has(outGrams[i]) ? run + 1 : 0;
    if (run > 0) bestRunWords = Math.max(bestRunWords, run + k - 1);
  }
  let covered = 0;
  for (const g of promptSet) if (outSet.has(g)) covered++;
  const coverage = promptSet.size > 0 ? covered / promptSet.size : 0;
  const ratio = lcs / prompt.length;

  const result: OverlapResult = { findings: [], longestCommonChars: lcs, ratio: round(ratio), longestSharedWords: bestRunWords, coverage: round(coverage) };
  const longEnough = lcs >= Math.min(minChars, prompt.length) && lcs >= 20;
  if (longEnough || bestRunWords >= minWords || (coverage >= minCoverage && promptSet.size >= 4)) {
    const start = out.map[lcsEnd - lcs] ?? 0;
    const end = (out.map[lcsEnd - 1] ?? output.length - 1) + 1;
    const score = Math.min(1, Math.max(lcs / (minChars * 2), bestRunWords / (minWords * 2), coverage) + 0.4);
    result.findings.push({
      detector: 'leakage.overlap',
      category: 'system_prompt_overlap',
      severity: ratio >= 0.5 || coverage >= 0.5 ? 'high' : 'medium',
      score: round(score),
      start,
      end,
      reason: `output repeats the system prompt: ${lcs} chars in common (${Math.round(ratio * 100)}% of it), ${bestRunWords} consecutive shared words, ${Math.round(coverage * 100)}% n-gram coverage`,
    });
  }
  return result;
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}

