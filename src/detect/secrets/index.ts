/**
 * Secret detection: provider rules as data, a one-pass keyword prefilter (Aho-Corasick) so only
 * rules whose keywords occur are run, entropy floors and validators. Pure and synchronous.
 */
import type { Finding } from '../types.js';
import { keepBest } from '../pii/overlap.js';
import { shannonEntropy } from '../pii/validators.js';
import { buildKeywordScanner, type KeywordScanner } from './keywords.js';
import { SECRET_RULES, type SecretRule } from './rules.js';

export { SECRET_RULES, isPlaceholder, type SecretRule } from './rules.js';
export { buildKeywordScanner, type KeywordScanner } from './keywords.js';
export { keepBest } from '../pii/overlap.js';

/** Options of detectSecrets. */
export interface SecretOptions {
  /** Only these rule ids (default: all). */
  rules?: readonly string[];
  /** Rule ids to skip. */
  disable?: readonly string[];
  /** Extra rules appended to the built-in set (same shape; patterns must be global and linear). */
  extraRules?: readonly SecretRule[];
  /** Minimum score to report (default 0.5). */
  threshold?: number;
  /** Values (exact) that are never reported, e.g. documented example keys. */
  allowValues?: readonly string[];
}

interface Compiled {
  rules: readonly SecretRule[];
  scanner: KeywordScanner;
  byKeyword: number[][];
  always: number[];
}

const cache = new WeakMap<readonly SecretRule[], Compiled>();

function compile(rules: readonly SecretRule[]): Compiled {
  const hit = cache.get(rules);
  if (hit) return hit;
  const words: string[] = [];
  const index = new Map<string, number>();
  const byKeyword: number[][] = [];
  const always: number[] = [];
  rules.forEach((r, ri) => {
    if (r.keywords.length === 0) always.push(ri);
    for (const k of r.keywords) {
      const w = k.toLowerCase();
      let ki = index.get(w);
      if (ki === undefined) {
        ki = words.length;
        index.set(w, ki);
        words.push(w);
        byKeyword.push([]);
      }
      byKeyword[ki]!.push(ri);
    }
  });
  const c = { rules, scanner: buildKeywordScanner(words), byKeyword, always };
  cache.set(rules, c);
  return c;
}

let defaultCompiled: Compiled | undefined;

/** Number of built-in rules. */
export const RULE_COUNT = SECRET_RULES.length;

/** Detects secrets in `text`. Findings are sorted, non-overlapping (best score wins); reasons never echo values. */
export function detectSecrets(text: string, opts: SecretOptions = {}): Finding[] {
  let compiled: Compiled;
  if (!opts.extraRules || opts.extraRules.length === 0) compiled = defaultCompiled ??= compile(SECRET_RULES);
  else compiled = compile([...SECRET_RULES, ...opts.extraRules]);
  const threshold = opts.threshold ?? 0.5;
  const only = opts.rules ? new Set(opts.rules) : undefined;
  const skip = opts.disable ? new Set(opts.disable) : undefined;
  const allow = opts.allowValues ? new Set(opts.allowValues) : undefined;

  const run = new Set<number>(compiled.always);
  for (const k of compiled.scanner.scan(text)) for (const ri of compiled.byKeyword[k]!) run.add(ri);

  const found: Finding[] = [];
  for (const ri of [...run].sort((a, b) => a - b)) {
    const rule = compiled.rules[ri]!;
    if (only && !only.has(rule.id)) continue;
    if (skip?.has(rule.id)) continue;
    const score = rule.score ?? 0.9;
    if (score < threshold) continue;
    const re = rule.pattern;
    re.lastIndex = 0;
    if (rule.hint) {
      const at = text.search(rule.hint.re);
      if (at < 0) continue;
      re.lastIndex = Math.max(0, at - rule.hint.back);
    }
    for (let m = re.exec(text); m !== null; m = re.exec(text)) {
      const whole = m[0];
      if (whole.length === 0) {
        re.lastIndex++;
        continue;
      }
      let start = m.index;
      let end = m.index + whole.length;
      let secret = whole;
      // The secret part: the named group `secret` when the rule has one, else capture group 1.
      const part = m.groups?.secret ?? m[1];
      if (part !== undefined) {
        const off = whole.lastIndexOf(part);
        start = m.index + off;
        end = start + part.length;
        secret = part;
      }
      if (rule.extend) {
        end = rule.extend(text, m.index + whole.length);
        secret = text.slice(start, end);
        re.lastIndex = Math.max(re.lastIndex, end);
      }
      if (rule.entropy !== undefined && shannonEntropy(secret) < rule.entropy) continue;
      if (rule.validate && !rule.validate(secret, whole, text.slice(Math.max(0, m.index - 48), m.index))) continue;
      if (allow?.has(secret)) continue;
      found.push({
        detector: `secrets.${rule.id}`,
        category: rule.id,
        severity: rule.severity ?? 'high',
        score,
        start,
        end,
        reason: `${rule.description} (${secret.length} chars)`,
      });
    }
  }
  // Best finding wins where spans overlap: higher score, then longer.
  return keepBest(found);
}
