/**
 * Topical rail: banned topics and "is this on an allowed topic" from keyword sets, with
 * word-boundary, case- and accent-insensitive matching in one compiled pass over the text.
 */
import type { Finding } from '../types.js';

/** Topic keyword sets: topic name → keywords or phrases. */
export interface TopicConfig {
  /** Topics the assistant is meant to discuss; when set, text matching none of them is off-topic. */
  allowed?: Record<string, string[]>;
  /** Topics that are refused wherever they appear. */
  banned?: Record<string, string[]>;
}

/** The result of {@link detectTopics}. */
export interface TopicResult {
  /** One finding per banned-topic match, plus one `off_topic` finding when allowed topics are set and none matched. */
  findings: Finding[];
  /** Banned topics that matched (names, de-duplicated). */
  banned: string[];
  /** Allowed topics that matched. */
  allowed: string[];
  /** Whether the text is on an allowed topic; `undefined` when no allowed topics are configured. */
  onTopic: boolean | undefined;
}

/** A compiled topic matcher (reuse it: compiling is the expensive part). */
export interface TopicMatcher {
  detect(text: string): TopicResult;
}

/** Lower-cases and strips diacritics character by character, keeping the original offset of each output char. */
export function foldText(text: string): { s: string; map: number[] } {
  let s = '';
  const map: number[] = [];
  for (let i = 0; i < text.length; ) {
    const cp = text.codePointAt(i)!;
    const ch = String.fromCodePoint(cp);
    const folded = ch.normalize('NFKD').replace(/\p{M}/gu, '').toLowerCase();
    for (const unit of folded.split('')) {
      s += unit;
      map.push(i);
    }
    i += ch.length;
  }
  return { s, map };
}

function foldKeyword(k: string): string {
  return foldText(k.trim()).s.replace(/\s+/g, ' ');
}

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Compiles a topic configuration into one alternation regex with a keyword → topics table. */
export function compileTopics(config: TopicConfig): TopicMatcher {
  const owners = new Map<string, Array<{ kind: 'allowed' | 'banned'; topic: string }>>();
  for (const kind of ['allowed', 'banned'] as const) {
    for (const [topic, words] of Object.entries(config[kind] ?? {})) {
      for (const w of words) {
        const k = foldKeyword(w);
        if (!k) continue;
        const list = owners.get(k) ?? [];
        list.push({ kind, topic });
        owners.set(k, list);
      }
    }
  }
  const keys = [...owners.keys()].sort((a, b) => b.length - a.length);
  const body = keys.map((k) => escapeRegex(k).replace(/ /g, '[\\s\\-_]+')).join('|');
  const re = keys.length > 0 ? new RegExp(`(?<![\\p{L}\\p{N}])(?:${body})(?![\\p{L}\\p{N}])`, 'gu') : null;
  const hasAllowed = Object.keys(config.allowed ?? {}).length > 0;
  const lookup = (m: string): Array<{ kind: 'allowed' | 'banned'; topic: string }> => owners.get(m.replace(/[\s\-_]+/g, ' ')) ?? [];

  return {
    detect(text: string): TopicResult {
      const findings: Finding[] = [];
      const banned = new Set<string>();
      const allowed = new Set<string>();
      if (re) {
        const { s, map } = foldText(text);
        re.lastIndex = 0;
        for (const m of s.matchAll(re)) {
          const start = map[m.index];
          const end = map[m.index + m[0].length - 1] + 1;
          const endUnit = end < text.length && /[\uDC00-\uDFFF]/.test(text[end]) ? end + 1 : end;
          for (const o of lookup(m[0])) {
            if (o.kind === 'banned') {
              banned.add(o.topic);
              findings.push({ detector: 'topics.banned', category: o.topic, severity: 'medium', score: 0.8, start, end: endUnit, reason: `banned topic "${o.topic}"` });
            } else {
              allowed.add(o.topic);
            }
          }
        }
      }
      const onTopic = hasAllowed ? allowed.size > 0 : undefined;
      if (onTopic === false) findings.push({ detector: 'topics.allowed', category: 'off_topic', severity: 'low', score: 0.6, start: 0, end: text.length, reason: 'text matches none of the allowed topics' });
      return { findings, banned: [...banned], allowed: [...allowed], onTopic };
    },
  };
}

const compiled = new Map<string, TopicMatcher>();

/** Detects banned topics and whether `text` is on an allowed topic (compiled matchers are cached per config). */
export function detectTopics(text: string, config: TopicConfig): TopicResult {
  const key = JSON.stringify([config.allowed ?? {}, config.banned ?? {}]);
  let m = compiled.get(key);
  if (!m) {
    m = compileTopics(config);
    if (compiled.size >= 64) compiled.delete(compiled.keys().next().value!);
    compiled.set(key, m);
  }
  return m.detect(text);
}
