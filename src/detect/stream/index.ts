/**
 * Streaming hold-back: lets response guards scan streamed text without a bypass.
 * Text is released once no finding can still start inside it; at most `holdBack`
 * characters (plus an unfinished risky fragment) are held, never the whole response.
 */
import type { Finding } from '../types.js';

/** Options of {@link createStreamScanner}. */
export interface StreamScannerOptions {
  /** Scans a window of text; spans are offsets into that window. Must be deterministic and local. */
  scan: (text: string) => { findings: Finding[] };
  /** Rewrites a released prefix given the findings inside it; `null` blocks the stream. */
  rewrite: (text: string, findings: Finding[]) => string | null;
  /** Characters always held back; must be at least the longest finding the scan can produce. Default 256. */
  holdBack?: number;
  /** Length of an unfinished risky fragment at the end of the text (e.g. an open `![`), held back too. */
  riskyTail?: (text: string) => number;
  /** Upper bound on what `riskyTail` may hold (so a stream is never held whole). Default 4096. */
  maxHold?: number;
  /**
   * Scan only once at least this many characters beyond `holdBack` are pending. Trades lag
   * (at most `holdBack + minRelease`) for fewer scans on streams of tiny deltas. Default 0.
   */
  minRelease?: number;
}

/** The result of one push or the end of a stream scanner. */
export interface StreamStep {
  /** Text to send to the client now (already rewritten). */
  emit: string;
  /** Set when the stream is blocked: the findings that blocked it. Nothing is emitted afterwards. */
  blocked?: Finding[];
}

/** An incremental scanner over a stream of text deltas. */
export interface StreamScanner {
  /** Adds a delta; returns what may be released now. */
  push(delta: string): StreamStep;
  /** Flushes everything held back (scanned and rewritten). */
  end(): StreamStep;
  /** Every finding committed so far (offsets into the whole original stream). */
  readonly findings: readonly Finding[];
  /** Whether the stream has been blocked. */
  readonly isBlocked: boolean;
}

/** Default hold-back window: longer than the longest PII/secret/canary/URL pattern we scan for. */
export const DEFAULT_HOLD_BACK = 256;

/**
 * Creates an incremental scanner. Its concatenated output equals `rewrite(text, scan(text))`
 * of the whole text when `scan` is local (a finding depends on at most `holdBack` characters
 * of context and is at most `holdBack` long) and `rewrite` replaces spans independently.
 */
export function createStreamScanner(opts: StreamScannerOptions): StreamScanner {
  const holdBack = Math.max(0, opts.holdBack ?? DEFAULT_HOLD_BACK);
  const maxHold = Math.max(holdBack, opts.maxHold ?? 4096);
  const minRelease = Math.max(0, opts.minRelease ?? 0);
  /** Original text already released (only the last `holdBack` chars are kept as context). */
  let context = '';
  /** Original text not yet released. */
  let pending = '';
  /** Absolute offset of `pending[0]` in the whole stream. */
  let base = 0;
  let blocked: Finding[] | undefined;
  const committed: Finding[] = [];

  function release(final: boolean): StreamStep {
    if (blocked) return { emit: '', blocked };
    const window = context + pending;
    const ctxLen = context.length;
    let cut = pending.length;
    if (!final) {
      const risky = opts.riskyTail ? Math.min(Math.max(0, opts.riskyTail(window)), maxHold) : 0;
      cut = Math.max(0, pending.length - Math.max(holdBack, risky));
      if (cut === 0) return { emit: '' };
    }
    // Findings that end in already released context were handled when that text was released.
    // A finding that starts there but reaches into pending text (one longer than the hold-back,
    // or one whose span covers more than its carrier) is never dropped: its unreleased part is
    // rewritten (clipped to the start of pending).
    const found = opts.scan(window).findings
      .filter((f) => f.end > f.start && f.end > ctxLen)
      .map((f) => ({ ...f, start: Math.max(0, f.start - ctxLen), end: f.end - ctxLen }));
    // Never cut inside a finding: move the cut left until stable.
    let moved = true;
    while (moved && !final) {
      moved = false;
      for (const f of found) {
        if (f.start < cut && f.end > cut) {
          cut = f.start;
          moved = true;
        }
      }
    }
    if (cut === 0) return { emit: '' };
    const inPrefix = found.filter((f) => f.end <= cut);
    const prefix = pending.slice(0, cut);
    const out = inPrefix.length === 0 ? prefix : opts.rewrite(prefix, inPrefix);
    for (const f of inPrefix) committed.push({ ...f, start: f.start + base, end: f.end + base });
    if (out === null) {
      blocked = inPrefix;
      pending = '';
      context = '';
      return { emit: '', blocked };
    }
    context = (context + prefix).slice(-holdBack);
    pending = pending.slice(cut);
    base += cut;
    return { emit: out };
  }

  return {
    push(delta: string): StreamStep {
      if (blocked) return { emit: '', blocked };
      pending += delta;
      if (pending.length <= holdBack + minRelease) return { emit: '' };
      return release(false);
    },
    end(): StreamStep {
      if (blocked) return { emit: '', blocked };
      if (pending.length === 0) return { emit: '' };
      return release(true);
    },
    get findings() {
      return committed;
    },
    get isBlocked() {
      return blocked !== undefined;
    },
  };
}

/**
 * Replaces the spans of `findings` in `text` (overlapping spans are merged) with
 * `replacement(findings of that merged span)`. A span-local rewrite usable with the stream scanner.
 */
export function replaceSpans(text: string, findings: Finding[], replacement: (group: Finding[]) => string): string {
  if (findings.length === 0) return text;
  const sorted = [...findings].filter((f) => f.end > f.start).sort((a, b) => a.start - b.start || b.end - a.end);
  let out = '';
  let pos = 0;
  let i = 0;
  while (i < sorted.length) {
    const group = [sorted[i]];
    let end = sorted[i].end;
    const start = sorted[i].start;
    i++;
    while (i < sorted.length && sorted[i].start < end) {
      group.push(sorted[i]);
      end = Math.max(end, sorted[i].end);
      i++;
    }
    out += text.slice(pos, start) + replacement(group);
    pos = end;
  }
  return out + text.slice(pos);
}

/** A streaming restorer of pseudonymisation placeholders. */
export interface StreamRestorer {
  /** Adds a delta; returns the text that can be released, with complete placeholders restored. */
  push(delta: string): string;
  /** Flushes the rest. */
  end(): string;
}

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * Restores placeholders (e.g. `<PERSON_1>` → the original value) in a stream, holding back
 * only a suffix that could still be the start of a placeholder.
 */
export function createStreamRestorer(mapping: Map<string, string>): StreamRestorer {
  const keys = [...mapping.keys()].filter((k) => k.length > 0).sort((a, b) => b.length - a.length);
  const prefixes = new Set<string>();
  let maxLen = 0;
  for (const k of keys) {
    maxLen = Math.max(maxLen, k.length);
    for (let i = 1; i < k.length; i++) prefixes.add(k.slice(0, i));
  }
  const re = keys.length > 0 ? new RegExp(keys.map(escapeRegex).join('|'), 'g') : null;
  const restore = (s: string): string => (re ? s.replace(re, (m) => mapping.get(m) ?? m) : s);
  let pending = '';

  return {
    push(delta: string): string {
      pending += delta;
      if (!re) {
        const out = pending;
        pending = '';
        return out;
      }
      // Earliest start of a suffix that is a proper prefix of some placeholder.
      let cut = pending.length;
      for (let i = Math.max(0, pending.length - maxLen + 1); i < pending.length; i++) {
        if (prefixes.has(pending.slice(i))) {
          cut = i;
          break;
        }
      }
      // Do not split a complete placeholder that crosses the cut.
      re.lastIndex = 0;
      let m: RegExpExecArray | null;
      while ((m = re.exec(pending)) !== null) {
        if (m.index < cut && m.index + m[0].length > cut) cut = m.index;
        if (m.index >= cut) break;
      }
      const out = restore(pending.slice(0, cut));
      pending = pending.slice(cut);
      return out;
    },
    end(): string {
      const out = restore(pending);
      pending = '';
      return out;
    },
  };
}
