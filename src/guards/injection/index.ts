/**
 * The injection guard: prompt injection and jailbreaks in user turns and untrusted content.
 * Untrusted segments (tool results, retrieved documents) use the stricter thresholds. At or
 * above the upper threshold the configured action applies (block, flag, or spotlight the
 * untrusted segment); in the uncertainty band the policy decides (ask a judge, flag, act, allow).
 */
import { DEFAULT_THRESHOLDS, detectInjection, type Thresholds } from '../../detect/injection/index.js';
import type { Trust } from '../../detect/types.js';
import type { DetectionCache } from '../cache.js';
import type { Judge } from '../judges/index.js';
import { newSpotlightTag, spotlightNote, spotlightText, type SpotlightMethod } from '../spotlight/index.js';
import { joinParts, partAt, partGroups } from '../inspect.js';
import type { Guard, GuardInput, SegmentFinding, SegmentRole, Verdict } from '../types.js';

/** Options of the injection guard. */
export interface InjectionGuardOptions {
  action?: 'block' | 'flag' | 'spotlight';
  uncertain?: 'judge' | 'flag' | 'act' | 'allow';
  /** Required when `uncertain` is `judge`. */
  judge?: Judge;
  thresholds?: Partial<Record<Trust, Thresholds>>;
  roles?: readonly SegmentRole[];
  mode?: 'enforce' | 'shadow';
  failMode?: 'open' | 'closed';
  timeoutMs?: number;
  /** Method used by the `spotlight` action. */
  spotlightMethod?: SpotlightMethod;
  /** Cache of detector results (by text hash). */
  cache?: DetectionCache;
}

/** Categories added to every injection block, so clients can tell the family apart. */
export const INJECTION_CATEGORY = 'prompt_injection';

/** Creates the injection guard; validates the options once. */
export function createInjectionGuard(opts: InjectionGuardOptions = {}): Guard {
  const action = opts.action ?? 'block';
  const uncertain = opts.uncertain ?? 'flag';
  if (uncertain === 'judge' && !opts.judge) throw new Error('injection guard: uncertain=judge needs a judge');
  const thresholds: Record<Trust, Thresholds> = {
    trusted: opts.thresholds?.trusted ?? { ...DEFAULT_THRESHOLDS.trusted },
    untrusted: opts.thresholds?.untrusted ?? { ...DEFAULT_THRESHOLDS.untrusted },
  };
  for (const t of ['trusted', 'untrusted'] as const) {
    const th = thresholds[t];
    if (!(th.lower >= 0 && th.upper <= 1 && th.lower <= th.upper)) throw new Error(`injection guard: thresholds.${t} must satisfy 0 <= lower <= upper <= 1`);
  }
  // Per trust level, built once: the detector options and the cache scope of its results.
  const detectOpts: Record<Trust, { trust: Trust; thresholds: Thresholds }> = {
    trusted: { trust: 'trusted', thresholds: thresholds.trusted },
    untrusted: { trust: 'untrusted', thresholds: thresholds.untrusted },
  };
  const cacheScope: Record<Trust, string> = {
    trusted: `injection:trusted:${thresholds.trusted.lower}:${thresholds.trusted.upper}`,
    untrusted: `injection:untrusted:${thresholds.untrusted.lower}:${thresholds.untrusted.upper}`,
  };
  const roles = new Set(opts.roles ?? ['user', 'tool', 'retrieved']);
  const judge = opts.judge;
  const cache = opts.cache;
  interface Scan {
    acted: SegmentFinding[];
    unsure: SegmentFinding[];
    actedSegments: Set<string>;
    score: number;
  }
  type Segment = GuardInput['segments'][number];
  /** A scored text: one segment, or the joined text parts of one message (`group`, first segment in `s`). */
  type Scored = { s: Segment; text: string; group?: { segs: readonly Segment[]; starts: readonly number[] }; r: ReturnType<typeof detectInjection> };
  const score = (text: string, trust: Trust) => (cache ? cache.get(cacheScope[trust], text, () => detectInjection(text, detectOpts[trust])) : detectInjection(text, detectOpts[trust]));
  /**
   * Scores every segment of the configured roles (the cache serves repeated texts), and the text
   * parts of one message joined as the model reads them, so an attack cut into parts (down to
   * one character per part) is scored whole. Parts are joined per trust level: a user's own
   * instructions next to a retrieved document are not judged by the document's stricter
   * thresholds (the document's parts are, joined and alone).
   */
  const scoreAll = (input: GuardInput): Scored[] => {
    const out: Scored[] = [];
    for (const s of input.segments) if (roles.has(s.role)) out.push({ s, text: s.text, r: score(s.text, s.trust) });
    for (const segs of partGroups(input.segments, (s) => roles.has(s.role), (s) => `${s.trust}\0${s.group}`)) {
      const { text, starts } = joinParts(segs);
      out.push({ s: segs[0]!, text, group: { segs, starts }, r: score(text, segs[0]!.trust) });
    }
    return out;
  };
  /** A finding on a joined text, placed on the segment where it starts (offsets relative to it). */
  const locate = (f: ReturnType<typeof detectInjection>['findings'][number], { segs, starts }: NonNullable<Scored['group']>): SegmentFinding => {
    const i = partAt(starts, f.start);
    const g = segs[i]!;
    const start = Math.max(0, Math.min(f.start - starts[i]!, g.text.length));
    return { ...f, start, end: Math.max(start, Math.min(f.end - starts[i]!, g.text.length)), segment: g.id };
  };
  /** Adds one scored text to the scan; `act` is whether the action applies to it. */
  const add = (sc: Scan, { s, group, r }: Scored, act: boolean, unsure: boolean) => {
    const fs = group ? r.findings.map((f) => locate(f, group)) : r.findings.map((f) => ({ ...f, segment: s.id }));
    if (act) {
      sc.acted.push(...fs);
      for (const g of group?.segs ?? [s]) sc.actedSegments.add(g.id);
    } else if (unsure) sc.unsure.push(...fs);
  };
  /** Without a judge: synchronous. */
  const checkNow = (input: GuardInput): Verdict => {
    const sc: Scan = { acted: [], unsure: [], actedSegments: new Set(), score: 0 };
    for (const x of scoreAll(input)) {
      sc.score = Math.max(sc.score, x.r.score);
      if (x.r.band === 'allow') continue;
      if (x.r.band !== 'act' && uncertain === 'allow') continue;
      add(sc, x, x.r.band === 'act' || uncertain === 'act', true);
    }
    return decide(input, sc);
  };
  /** Judge mode: asks the judge about each uncertain segment, in segment order. */
  const checkJudged = async (input: GuardInput): Promise<Verdict> => {
    const sc: Scan = { acted: [], unsure: [], actedSegments: new Set(), score: 0 };
    let judged = false;
    for (const x of scoreAll(input)) {
      sc.score = Math.max(sc.score, x.r.score);
      if (x.r.band === 'allow') continue;
      let act = x.r.band === 'act';
      if (!act) {
        judged = true;
        const v = await judge!.classify(x.text, input.signal); // a judge failure fails this guard (its failMode decides)
        if (v.unsafe) {
          act = true;
          for (const c of v.categories) sc.acted.push({ detector: `judge.${judge!.name}`, category: c, severity: 'high', score: v.score, start: 0, end: x.s.text.length, reason: `${judge!.name} confirmed an uncertain score`, segment: x.s.id });
        }
      }
      add(sc, x, act, !judged);
    }
    return decide(input, sc);
  };
  const decide = (input: GuardInput, { acted, unsure, actedSegments, score }: Scan): Verdict => {
    const rounded = Math.round(score * 1000) / 1000;
    if (acted.length > 0) {
      const categories = [INJECTION_CATEGORY, ...new Set(acted.map((f) => f.category))];
      if (action === 'flag') return { action: 'flag', findings: acted, categories, score: rounded };
      if (action === 'spotlight') {
        const trustedHit = input.segments.some((s) => actedSegments.has(s.id) && s.trust === 'trusted');
        if (!trustedHit) {
          const tag = newSpotlightTag();
          const method = opts.spotlightMethod ?? 'delimit';
          const rewrites: Record<string, string> = {};
          for (const s of input.segments) if (actedSegments.has(s.id)) rewrites[s.id] = spotlightText(s.text, method, tag);
          input.run.systemNotes.push(spotlightNote(method, tag));
          return { action: 'transform', findings: acted, categories, rewrites, score: rounded };
        }
      }
      return { action: 'block', findings: acted, categories: [...new Set(categories)], score: rounded };
    }
    if (unsure.length > 0 && uncertain === 'flag') return { action: 'flag', findings: unsure, categories: [INJECTION_CATEGORY, ...new Set(unsure.map((f) => f.category))], score: rounded, uncertain: true };
    return { action: 'allow', score: rounded };
  };
  return {
    name: 'injection',
    stages: ['request'],
    cost: uncertain === 'judge' ? 'moderate' : 'cheap',
    timeoutMs: opts.timeoutMs ?? (judge ? judge.timeoutMs + 1_000 : 3_000),
    failMode: opts.failMode ?? 'closed',
    mode: opts.mode ?? 'enforce',
    // Without a judge the check is synchronous (no promise, no timer in the pipeline).
    check(input: GuardInput): Verdict | Promise<Verdict> {
      return uncertain === 'judge' ? checkJudged(input) : checkNow(input);
    },
  };
}
