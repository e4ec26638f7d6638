/** Tool-call arguments as scannable text, and taint tracking from flagged tool results into later calls. */
import type { Finding } from '../types.js';
import { detectOverlap } from '../leakage/overlap.js';

/** One string value inside tool-call arguments. */
export interface ArgumentString {
  /** JSON pointer of the value, e.g. `/query` or `/items/0/url`. */
  path: string;
  value: string;
}

/**
 * Lists the string values (and object keys longer than 32 characters) of parsed arguments, so
 * the secret, PII, injection and exfil detectors can scan them. Bounded in depth and count.
 */
export function toolArgumentStrings(args: unknown, limits: { maxDepth?: number; maxStrings?: number } = {}): ArgumentString[] {
  const maxDepth = limits.maxDepth ?? 32;
  const maxStrings = limits.maxStrings ?? 10_000;
  const out: ArgumentString[] = [];
  const esc = (k: string) => k.replace(/~/g, '~0').replace(/\//g, '~1');
  function walk(v: unknown, path: string, depth: number): void {
    if (out.length >= maxStrings || depth > maxDepth) return;
    if (typeof v === 'string') out.push({ path: path || '/', value: v });
    else if (Array.isArray(v)) v.forEach((x, i) => walk(x, `${path}/${i}`, depth + 1));
    else if (v && typeof v === 'object') {
      for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
        if (k.length > 32) out.push({ path: `${path}/${esc(k)}#key`, value: k });
        walk(x, `${path}/${esc(k)}`, depth + 1);
      }
    }
  }
  walk(args, '', 0);
  return out;
}

/** Options of {@link detectTaint}. */
export interface TaintOptions {
  /** Shortest shared passage (normalised characters) that counts as carried-over content. Default 24. */
  minChars?: number;
}

/**
 * Flags a tool call whose arguments carry content from tainted text (e.g. a tool result that had
 * injection findings): a shared passage of at least `minChars` characters. Reports lengths only.
 */
export function detectTaint(argumentsText: string, tainted: readonly string[], opts: TaintOptions = {}): Finding[] {
  const minChars = opts.minChars ?? 24;
  const findings: Finding[] = [];
  tainted.forEach((source, i) => {
    if (!source || !argumentsText) return;
    const r = detectOverlap(argumentsText, source, { minChars: Number.MAX_SAFE_INTEGER, minNgramWords: Number.MAX_SAFE_INTEGER, minCoverage: 2 });
    if (r.longestCommonChars >= minChars) {
      findings.push({
        detector: 'tools.taint',
        category: 'tainted_argument',
        severity: 'high',
        score: Math.min(1, 0.6 + r.longestCommonChars / (minChars * 10)),
        start: 0,
        end: argumentsText.length,
        reason: `tool-call arguments carry ${r.longestCommonChars} characters from flagged content #${i + 1}`,
      });
    }
  });
  return findings;
}
