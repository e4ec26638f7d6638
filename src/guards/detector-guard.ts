/**
 * The shared shape of detector-backed guards (pii, secrets, user regexes): run a pure detector
 * on every segment of the configured roles, then flag, block, or rewrite the findings
 * (redact, mask, hash, pseudonymize with the vault).
 */
import { applyActions } from '../detect/redact.js';
import type { Finding } from '../detect/types.js';
import { joinParts, partAt, partGroups } from './inspect.js';
import type { PseudonymVault } from './vault.js';
import type { Guard, GuardInput, SegmentFinding, SegmentRole, Stage, Verdict } from './types.js';

/** Actions a detector guard can take. */
export type DetectorAction = 'flag' | 'block' | 'redact' | 'mask' | 'hash' | 'pseudonymize';

/** Options of a detector guard. */
export interface DetectorGuardOptions {
  name: string;
  /** The pure detector: text (and trust) in, findings out. */
  detect(text: string, trust: 'trusted' | 'untrusted'): Finding[];
  action: DetectorAction;
  roles: readonly SegmentRole[];
  stages?: readonly Stage[];
  mode?: 'enforce' | 'shadow';
  failMode?: 'open' | 'closed';
  timeoutMs?: number;
  cost?: Guard['cost'];
  /** HMAC key for `hash`. */
  hashKey?: string | Uint8Array;
  /** Vault for `pseudonymize`. */
  vault?: PseudonymVault;
  /** `surrogate` uses format-preserving fakes instead of `<CATEGORY_n>` placeholders. */
  placeholderStyle?: 'tag' | 'surrogate';
}

/** Creates a guard around a pure detector; validates the options once. */
export function createDetectorGuard(opts: DetectorGuardOptions): Guard {
  if (opts.action === 'hash' && opts.hashKey === undefined) throw new Error(`guard ${opts.name}: the hash action needs a key`);
  if (opts.action === 'pseudonymize' && !opts.vault) throw new Error(`guard ${opts.name}: the pseudonymize action needs a vault`);
  const roles = new Set(opts.roles);
  const action = opts.action;
  return {
    name: opts.name,
    stages: opts.stages ?? ['request', 'response'],
    cost: opts.cost ?? 'cheap',
    timeoutMs: opts.timeoutMs ?? 2_000,
    failMode: opts.failMode ?? 'closed',
    mode: opts.mode ?? 'enforce',
    check(input: GuardInput): Verdict {
      const findings: SegmentFinding[] = [];
      const bySegment = new Map<string, Finding[]>();
      let score = 0;
      for (const s of input.segments) {
        if (!roles.has(s.role)) continue;
        const fs = opts.detect(s.text, s.trust);
        if (fs.length === 0) continue;
        bySegment.set(s.id, fs);
        for (const f of fs) {
          findings.push({ ...f, segment: s.id });
          score = Math.max(score, f.score);
        }
      }
      crossPartFindings(input, roles, opts.detect, bySegment, (f) => {
        findings.push(f);
        score = Math.max(score, f.score);
      });
      if (findings.length === 0) return { action: 'allow' };
      const categories = [...new Set(findings.map((f) => f.category))];
      if (action === 'flag') return { action: 'flag', findings, categories, score };
      if (action === 'block') return { action: 'block', findings, categories, score };
      const rewrites: Record<string, string> = {};
      const session = action === 'pseudonymize' ? opts.vault!.session(input.tenant ?? '', input.conversationId) : undefined;
      for (const s of input.segments) {
        const fs = bySegment.get(s.id);
        if (!fs) continue;
        if (session) {
          rewrites[s.id] = applyActions(s.text, fs, 'pseudonymize', {
            mapping: (value, category) => {
              const p = session.placeholder(value, category, opts.placeholderStyle);
              if (p === null) return `[${category}]`; // vault full: never forward the value
              input.run.pseudonyms.set(p, value);
              return p;
            },
          }).text;
        } else {
          rewrites[s.id] = applyActions(s.text, fs, action, opts.hashKey !== undefined ? { hashKey: opts.hashKey } : {}).text;
        }
      }
      return { action: 'transform', findings, categories, rewrites, score };
    },
  };
}

/**
 * The text parts of one message are read by the model as one text, so a value cut across parts
 * (a key in two halves) is found on the parts joined. Each finding that crosses a part boundary
 * is added to every part it covers, as that part's piece of it (a piece overlapping a finding the
 * part already has is left to that finding), so the action applies to each piece.
 */
function crossPartFindings(
  input: GuardInput,
  roles: ReadonlySet<SegmentRole>,
  detect: DetectorGuardOptions['detect'],
  bySegment: Map<string, Finding[]>,
  report: (f: SegmentFinding) => void,
): void {
  for (const segs of partGroups(input.segments, (s) => roles.has(s.role))) {
    const { text: joined, starts } = joinParts(segs);
    for (const f of detect(joined, segs.some((g) => g.trust === 'untrusted') ? 'untrusted' : 'trusted')) {
      // Findings inside one part were found on that part already.
      const first = partAt(starts, f.start);
      if (f.end <= starts[first]! + segs[first]!.text.length) continue;
      for (let i = first; i < segs.length && starts[i]! < f.end; i++) {
        const g = segs[i]!;
        const start = Math.max(f.start, starts[i]!) - starts[i]!;
        const end = Math.min(f.end, starts[i]! + g.text.length) - starts[i]!;
        if (end <= start) continue;
        const own = bySegment.get(g.id) ?? [];
        if (own.some((o) => o.start < end && start < o.end)) continue;
        const piece: Finding = { ...f, start, end, reason: `${f.reason} (across content parts)` };
        own.push(piece);
        bySegment.set(g.id, own);
        report({ ...piece, segment: g.id });
      }
    }
  }
}
