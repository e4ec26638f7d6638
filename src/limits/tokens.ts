/**
 * Input token estimation before forwarding: a real BPE tokenizer (gpt-tokenizer) for
 * OpenAI-family models, a documented characters-per-token approximation for the rest.
 */
import { createRequire } from 'node:module';
import { DEFAULT_TOKENIZERS, type LimitsConfig, type TokenizerSpec } from './config.js';
import { globTable, type GlobTable } from './glob.js';
import type { TokenCodec } from '../guards/types.js';
import { OutputMeter } from '../server/usage.js';

type CountFn = (text: string, opts?: { disallowedSpecial?: Set<string> }) => number;

const require = createRequire(import.meta.url);
const encoders = new Map<'o200k' | 'cl100k', CountFn>();
/** Special-token strings in user text are counted as plain text instead of throwing. */
const PLAIN = { disallowedSpecial: new Set<string>() };

function encoder(kind: 'o200k' | 'cl100k'): CountFn {
  let fn = encoders.get(kind);
  if (!fn) {
    // Loaded lazily (the o200k tables take ~0.5 s to load) and synchronously via the CJS build.
    const mod = require(kind === 'o200k' ? 'gpt-tokenizer/cjs/encoding/o200k_base' : 'gpt-tokenizer/cjs/encoding/cl100k_base') as {
      countTokens: CountFn;
    };
    fn = mod.countTokens;
    encoders.set(kind, fn);
  }
  return fn;
}

/**
 * Token counts of recently seen texts, per tokenizer: chat clients resend the whole
 * conversation (system prompt and history) on every turn, so most texts of a request were
 * counted before. Two generations (the older one dropped when the newer fills up) bound memory
 * to about 2 × COUNT_CACHE_CHARS characters of retained texts.
 */
const COUNT_CACHE_ENTRIES = 8192;
const COUNT_CACHE_CHARS = 2_000_000;
/** Texts shorter than this are counted directly (a lookup would cost about as much). */
const COUNT_CACHE_MIN_CHARS = 16;
class CountCache {
  private cur = new Map<string, number>();
  private old = new Map<string, number>();
  private chars = 0;
  get(text: string): number | undefined {
    const n = this.cur.get(text);
    if (n !== undefined) return n;
    const m = this.old.get(text);
    if (m !== undefined) this.set(text, m);
    return m;
  }
  set(text: string, n: number): void {
    if (this.cur.size >= COUNT_CACHE_ENTRIES || this.chars + text.length > COUNT_CACHE_CHARS) {
      this.old = this.cur;
      this.cur = new Map();
      this.chars = 0;
    }
    this.cur.set(text, n);
    this.chars += text.length;
  }
}
const countCaches = new Map<CountFn, CountCache>();

/** `count(text)` through the recent-texts cache. */
function cachedCount(count: CountFn, text: string): number {
  if (text.length < COUNT_CACHE_MIN_CHARS || text.length > COUNT_CACHE_CHARS / 8) return count(text, PLAIN);
  let cache = countCaches.get(count);
  if (!cache) countCaches.set(count, (cache = new CountCache()));
  let n = cache.get(text);
  if (n === undefined) cache.set(text, (n = count(text, PLAIN)));
  return n;
}

type BpeModule = { decode(ids: readonly number[]): string; encode(text: string, opts?: { disallowedSpecial?: Set<string> }): number[] };
const codecs = new Map<'o200k' | 'cl100k', TokenCodec>();

/**
 * Decoder and encoder of a model's BPE under this config (the same tables as the token counts), or
 * undefined when the model's tokenizer is the characters approximation: the guards use it to read
 * token-id inputs. `decode` answers undefined for ids outside the vocabulary (the library throws);
 * `encode` treats special-token strings as plain text.
 */
export function tokenCodecFor(model: string, config: LimitsConfig): TokenCodec | undefined {
  const spec = tokenizerFor(model, config);
  if (spec.kind === 'chars') return undefined;
  let c = codecs.get(spec.kind);
  if (!c) {
    encoder(spec.kind); // the tables, loaded once
    const mod = require(spec.kind === 'o200k' ? 'gpt-tokenizer/cjs/encoding/o200k_base' : 'gpt-tokenizer/cjs/encoding/cl100k_base') as BpeModule;
    c = {
      decode: (ids) => {
        try {
          return mod.decode(ids);
        } catch {
          return undefined;
        }
      },
      encode: (text) => mod.encode(text, PLAIN),
    };
    codecs.set(spec.kind, c);
  }
  return c;
}

/** Loads the BPE tables now (call at start-up so the first request does not pay for it). */
export function warmTokenizers(kinds: ('o200k' | 'cl100k')[] = ['o200k', 'cl100k']): void {
  for (const k of kinds) encoder(k);
}

const tables = new WeakMap<object, GlobTable<TokenizerSpec>>();
function tokenizerTable(config: LimitsConfig): GlobTable<TokenizerSpec> {
  let t = tables.get(config.tokenizers);
  if (!t) {
    t = globTable({ ...DEFAULT_TOKENIZERS, ...config.tokenizers });
    tables.set(config.tokenizers, t);
  }
  return t;
}

/** The tokenizer used for a model under this config. */
export function tokenizerFor(model: string, config: LimitsConfig): TokenizerSpec {
  return tokenizerTable(config).get(model) ?? { kind: 'chars', charsPerToken: 3.5 };
}

/**
 * Approximate token count: ASCII characters at `charsPerToken` each, every other code point
 * one token (conservative for CJK and emoji, which BPE vocabularies split finely).
 */
export function approxTokens(text: string, charsPerToken = 3.5): number {
  const m = new OutputMeter();
  m.add(text);
  return m.tokens(charsPerToken);
}

/**
 * Estimated input tokens of a request: each text (one per message, tool definition, …)
 * counted with the model's tokenizer, plus `perMessageOverheadTokens` per text and once more
 * for the reply priming. Only the first `maxExactTokenizeChars` characters of a request are
 * tokenized exactly; the rest is extrapolated from the observed tokens-per-character ratio,
 * never below the 4-characters-per-token approximation (keeps admission time bounded).
 */
export function estimateInputTokens(model: string, texts: string[], config: LimitsConfig): number {
  const spec = tokenizerFor(model, config);
  const overhead = config.perMessageOverheadTokens;
  let total = texts.length > 0 ? overhead : 0;
  if (spec.kind === 'chars') {
    for (const t of texts) total += approxTokens(t, spec.charsPerToken) + overhead;
    return total;
  }
  const count = encoder(spec.kind);
  let budget = config.maxExactTokenizeChars;
  let exactChars = 0;
  let exactTokens = 0;
  for (const t of texts) {
    total += overhead;
    if (t.length === 0) continue;
    if (t.length <= budget) {
      const n = cachedCount(count, t);
      total += n;
      exactChars += t.length;
      exactTokens += n;
      budget -= t.length;
      continue;
    }
    let rest = t;
    if (budget > 0) {
      const head = t.slice(0, budget);
      const n = count(head, PLAIN);
      total += n;
      exactChars += head.length;
      exactTokens += n;
      rest = t.slice(budget);
      budget = 0;
    }
    const ratio = exactChars > 0 ? exactTokens / exactChars : 0;
    total += Math.max(Math.ceil(ratio * rest.length), approxTokens(rest, 4));
  }
  return total;
}
