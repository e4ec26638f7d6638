/**
 * Prompt-injection and jailbreak detection (pure): rules + a shipped linear classifier,
 * run on the normalised view of the text and on every decoded payload, with long inputs
 * scored in overlapping windows. Offsets of findings refer to the original text.
 */
import type { Finding, Severity, Trust } from '../types.js';
import { normalize, toOriginal, type NormalizedText } from '../normalize/index.js';
import { matchRules, type RuleCategory } from './rules.js';
import { classifyWindows } from './classifier.js';

export { RULES, RULE_LANGUAGES } from './rules.js';
export { MODEL_META } from './classifier.js';
export { parseLlamaGuard } from './llama-guard.js';

/** Finding categories of the injection detector. */
export type InjectionCategory = RuleCategory | 'classifier' | 'encoded_payload' | 'invisible_text';

/** Two thresholds: at or above `upper` the policy acts; between `lower` and `upper` the result is uncertain. */
export interface Thresholds {
  upper: number;
  lower: number;
}

/** Default thresholds per trust level: untrusted content (tool results, retrieved documents) is judged more strictly. */
export const DEFAULT_THRESHOLDS: Readonly<Record<Trust, Readonly<Thresholds>>> = Object.freeze({
  trusted: Object.freeze({ upper: 0.7, lower: 0.6 }),
  untrusted: Object.freeze({ upper: 0.5, lower: 0.3 }),
});

/** Options of `detectInjection`. */
export interface InjectionOptions {
  /** Trust level of the text (default `trusted`). */
  trust?: Trust;
  /** Override the thresholds of the trust level. */
  thresholds?: Thresholds;
}

/** Result of `detectInjection`. */
export interface InjectionResult {
  /** Overall score in [0, 1]. */
  score: number;
  /** `act` at or above the upper threshold, `uncertain` between the thresholds, else `allow`. */
  band: 'allow' | 'uncertain' | 'act';
  findings: Finding[];
}

/** Findings below this score are not reported. */
const MIN_FINDING = 0.25;

interface Scored {
  score: number;
  findings: Finding[];
}

function severityOf(score: number, t: Thresholds): Severity {
  if (score >= Math.max(t.upper, 0.9)) return 'critical';
  if (score >= t.upper) return 'high';
  if (score >= t.lower) return 'medium';
  return 'low';
}

/** Rule evidence is combined within windows of two adjacent blocks of this many code units. */
const RULE_BLOCK = 512;

/** Noisy-or over categories of the rules' maxima. */
function combineRules(perCategory: Map<string, number>): number {
  let keep = 1;
  for (const s of perCategory.values()) keep *= 1 - s;
  return Math.min(0.99, 1 - keep);
}

/** Fuses the rule score and the classifier score: either alone, reinforced when both see something. */
export function fuse(rules: number, classifier: number): number {
  const both = rules >= 0.3 && classifier >= 0.3 ? 1 - (1 - rules) * (1 - classifier) : 0;
  return Math.min(0.999, Math.max(rules, classifier, both));
}

/**
 * Scores one normalised view. `span` forces every finding onto one original span (used for
 * decoded payloads, whose inner offsets are not offsets of the original text).
 */
function scoreView(norm: NormalizedText, t: Thresholds, untrusted: boolean, span?: { start: number; end: number }): Scored {
  const findings: Finding[] = [];
  const mapSpan = (s: number, e: number) => span ?? toOriginal(norm, s, e);
  // Per 512-unit block: each category's best rule score. Categories are combined only within a
  // window of two adjacent blocks, so unrelated matches far apart in a long text do not add up.
  const blocks = new Map<number, Map<string, number>>();
  for (const m of matchRules(norm.fold)) {
    const c = m.rule.category;
    const b = Math.floor(m.start / RULE_BLOCK);
    let perCategory = blocks.get(b);
    if (perCategory === undefined) blocks.set(b, (perCategory = new Map()));
    perCategory.set(c, Math.max(perCategory.get(c) ?? 0, m.rule.score));
    if (m.rule.score < MIN_FINDING) continue;
    const o = mapSpan(m.start, m.end);
    findings.push({
      detector: 'injection.rules',
      category: c,
      severity: severityOf(m.rule.score, t),
      score: m.rule.score,
      start: o.start,
      end: o.end,
      reason: `rule ${m.rule.id}`,
    });
  }
  // Rule score per window key b (blocks b and b + 1).
  const ruleAt = new Map<number, number>();
  for (const [b, perCategory] of blocks) {
    const next = blocks.get(b + 1);
    const joint = new Map(perCategory);
    if (next) for (const [c, v] of next) joint.set(c, Math.max(joint.get(c) ?? 0, v));
    ruleAt.set(b, combineRules(joint));
  }
  let best = { start: 0, end: norm.fold.length, score: 0 };
  // Classifier score per window key: a window starting in block b counts for key b, and for key
  // b - 1 when it lies within blocks b - 1 and b (the small indirect windows).
  const classifierAt = new Map<number, { start: number; end: number; score: number }>();
  const keep = (b: number, w: { start: number; end: number; score: number }) => {
    if (w.score > (classifierAt.get(b)?.score ?? 0)) classifierAt.set(b, w);
  };
  if (norm.fold.trim().length > 0) {
    const words = wordCount(norm.fold);
    for (const w of classifyWindows(norm.fold, untrusted, words < SHORT_TEXT_WORDS)) {
      const score = shortTextScore(w.score, words);
      const win = score === w.score ? w : { start: w.start, end: w.end, score };
      if (score > best.score) best = win;
      const b = Math.floor(w.start / RULE_BLOCK);
      keep(b, win);
      if (b > 0 && w.end - w.start <= RULE_BLOCK) keep(b - 1, win);
    }
  }
  // Rules and classifier reinforce each other only when they see the same part of the text.
  let score = best.score;
  // The classifier window that raised the score together with a rule, if that is what set it.
  let reinforcing: { start: number; end: number; score: number } | undefined;
  for (const [b, r] of ruleAt) {
    const c = classifierAt.get(b);
    const s = fuse(r, c?.score ?? 0);
    if (s > score) {
      score = s;
      reinforcing = c !== undefined && s > Math.max(r, c.score) ? c : undefined;
    }
  }
  // A classifier score below the reporting floor that still raised the text score together with a
  // rule is reported too (on its own window), so the findings explain the score.
  if (best.score < Math.min(t.lower, 0.5) && reinforcing !== undefined) best = reinforcing;
  if (best.score >= Math.min(t.lower, 0.5) || best === reinforcing) {
    const o = mapSpan(best.start, best.end);
    findings.push({
      detector: 'injection.classifier',
      category: 'classifier',
      severity: severityOf(best.score, t),
      score: round(best.score),
      start: o.start,
      end: o.end,
      reason: 'n-gram classifier window score',
    });
  }
  return { score, findings };
}

/** Texts with fewer words than this get a classifier score above 0.5 pulled toward 0.5 (minimum evidence). */
const SHORT_TEXT_WORDS = 7;

/** Number of words (runs of letters or digits) of a folded view, counted up to SHORT_TEXT_WORDS. */
function wordCount(fold: string): number {
  let words = 0;
  let inWord = false;
  for (let i = 0; i < fold.length && words < SHORT_TEXT_WORDS; i++) {
    const c = fold.charCodeAt(i);
    const w = (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c >= 0xc0;
    if (w && !inWord) words++;
    inWord = w;
  }
  return words;
}

/**
 * Minimum evidence for the classifier: with only a few words the L2-normalised n-gram vector
 * has few features and one imperative word ("say", "repeat") can dominate it, so short benign
 * prompts scored as high as attacks. Below SHORT_TEXT_WORDS words the classifier's positive
 * log-odds are scaled by words / SHORT_TEXT_WORDS (low scores stay as they are); rules are unaffected, so short known attack phrases
 * still act.
 */
export function shortTextScore(p: number, words: number): number {
  if (words >= SHORT_TEXT_WORDS || p <= 0.5 || p >= 1) return p;
  const z = Math.log(p / (1 - p)) * (words / SHORT_TEXT_WORDS);
  return 1 / (1 + Math.exp(-z));
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}

/** Detects prompt injection and jailbreaks in a text. */
export function detectInjection(text: string, opts: InjectionOptions = {}): InjectionResult {
  const trust: Trust = opts.trust ?? 'trusted';
  const t = opts.thresholds ?? DEFAULT_THRESHOLDS[trust];
  const norm = normalize(text);
  const main = scoreView(norm, t, trust === 'untrusted');
  let score = main.score;
  const findings = main.findings;

  // Invisible characters: a weak signal on their own (emoji sequences use ZWJ), strong for tags/bidi overrides.
  const f = norm.flags;
  if (f.bidi > 0 || f.zeroWidth >= 3 || f.variationSelectors >= 8) {
    const s = f.bidi > 0 ? 0.4 : 0.3;
    findings.push({ detector: 'injection.normalize', category: 'invisible_text', severity: severityOf(s, t), score: s, start: 0, end: text.length, reason: `invisible characters removed (zero-width ${f.zeroWidth}, bidi ${f.bidi}, variation selectors ${f.variationSelectors})` });
  }

  // Decoded payloads: scan what they decode to; report on the payload's original span.
  for (const p of norm.decoded) {
    const inner = scoreView(p.view, t, trust === 'untrusted', { start: p.start, end: p.end });
    const base = p.kind === 'tags' ? 0.6 : 0.2;
    const s = Math.min(0.999, Math.max(base, inner.score >= 0.3 ? inner.score + 0.05 : inner.score));
    findings.push({
      detector: 'injection.normalize',
      category: p.kind === 'tags' ? 'invisible_text' : 'encoded_payload',
      severity: severityOf(s, t),
      score: round(s),
      start: p.start,
      end: p.end,
      reason: p.kind === 'tags' ? 'Unicode tag characters (hidden ASCII) decoded' : `${p.kind} payload decoded (depth ${p.depth})`,
    });
    findings.push(...inner.findings);
    score = Math.max(score, s);
  }

  findings.sort((a, b) => b.score - a.score || a.start - b.start);
  score = round(score);
  const band = score >= t.upper ? 'act' : score >= t.lower ? 'uncertain' : 'allow';
  return { score, band, findings };
}
