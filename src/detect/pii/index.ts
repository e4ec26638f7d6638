/**
 * PII detection: recognizers per family, Presidio-style context words, allow/deny lists and a
 * score threshold. Pure and synchronous: text in, findings out.
 */
import type { Finding, Severity } from '../types.js';
import { addressRecognizer } from './address.js';
import { DEFAULT_CONTEXT, NEGATIVE_CONTEXT, hasContextWord } from './context.js';
import { dobRecognizer } from './dob.js';
import { emailRecognizer } from './email.js';
import { cardRecognizer, cryptoRecognizer, ibanRecognizer } from './financial.js';
import { driverLicenseRecognizer, ninoRecognizer, passportRecognizer, usIdRecognizer } from './government-id.js';
import { ipRecognizer, macRecognizer } from './network.js';
import { nerRecognizer } from './ner.js';
import { keepBest } from './overlap.js';
import { phoneRecognizer } from './phone.js';
import { compileUserPattern } from './pattern.js';
import { PII_ENTITIES, type PiiEntity, type RawMatch, type Recognizer, type ScanInput } from './types.js';

export { PII_ENTITIES, type PiiEntity } from './types.js';
export { compileUserPattern, UnsafePatternError, MAX_USER_PATTERN_LENGTH } from './pattern.js';
export * as validators from './validators.js';

/** Entities found by validated patterns (fast, high precision); excludes the NER-based PERSON/LOCATION. */
export const STRUCTURED_ENTITIES: readonly PiiEntity[] = PII_ENTITIES.filter((e) => e !== 'PERSON' && e !== 'LOCATION');

/**
 * Entities detected when `entities` is not given: everything except PERSON/LOCATION, whose NER
 * (compromise) runs at ~0.05-0.1 MB/s and is therefore opt-in (`entities: PII_ENTITIES`).
 */
export const DEFAULT_ENTITIES: readonly PiiEntity[] = STRUCTURED_ENTITIES;

/** A list entry: an exact value (case-insensitive) or a pattern. */
export type ListEntry = string | RegExp | { pattern: string };

/** Options of detectPii. Every field is optional; defaults are safe for a first run. */
export interface PiiOptions {
  /** Entity types to detect (default: DEFAULT_ENTITIES, i.e. all but the slow NER-based PERSON/LOCATION). */
  entities?: readonly PiiEntity[];
  /** Minimum score for a finding to be reported (default 0.5). */
  threshold?: number;
  /** Default region for national phone numbers (default `US`). */
  defaultRegion?: string;
  /** Extra regions tried for national phone numbers (default US, GB, CA, AU, IN, DE, FR, ES, IT, NL, BR). */
  phoneRegions?: readonly string[];
  /** Values or patterns that are never reported (e.g. the company's support address). */
  allowList?: readonly ListEntry[];
  /** Values or patterns that are always reported, with category `denyCategory`. */
  denyList?: readonly ListEntry[];
  /** Category used for deny-list hits (default `CUSTOM`). */
  denyCategory?: string;
  /** Extra context words per entity (merged with the defaults). */
  contextWords?: Partial<Record<PiiEntity, readonly string[]>>;
  /** Score added when a context word is near a candidate (default 0.35). */
  contextBoost?: number;
}

const RECOGNIZERS: readonly Recognizer[] = [
  emailRecognizer, cardRecognizer, ibanRecognizer, usIdRecognizer, ninoRecognizer, ipRecognizer, macRecognizer,
  cryptoRecognizer, phoneRecognizer, dobRecognizer, passportRecognizer, driverLicenseRecognizer, addressRecognizer, nerRecognizer,
];

const SEVERITY: Record<PiiEntity, Severity> = {
  EMAIL: 'medium', PHONE: 'medium', CREDIT_CARD: 'high', IBAN: 'high', US_SSN: 'high', US_ITIN: 'high', UK_NINO: 'high',
  IP_ADDRESS: 'low', MAC_ADDRESS: 'low', DATE_OF_BIRTH: 'medium', STREET_ADDRESS: 'medium', PERSON: 'low', LOCATION: 'low',
  CRYPTO_WALLET: 'medium', PASSPORT: 'high', DRIVER_LICENSE: 'high',
};

const NUMERIC: ReadonlySet<PiiEntity> = new Set<PiiEntity>(['CREDIT_CARD', 'PHONE', 'US_SSN', 'US_ITIN', 'IP_ADDRESS']);
const DEFAULT_REGIONS = ['US', 'GB', 'CA', 'AU', 'IN', 'DE', 'FR', 'ES', 'IT', 'NL', 'BR'];

function lowerSameLength(text: string): string {
  const lower = text.toLowerCase();
  if (lower.length === text.length) return lower;
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    const l = c.toLowerCase();
    out += l.length === 1 ? l : c;
  }
  return out;
}

interface CompiledList {
  values: Set<string>;
  patterns: RegExp[];
}

const listCache = new WeakMap<readonly ListEntry[], CompiledList>();

function compileList(list: readonly ListEntry[] | undefined): CompiledList | undefined {
  if (!list || list.length === 0) return undefined;
  const cached = listCache.get(list);
  if (cached) return cached;
  const values = new Set<string>();
  const patterns: RegExp[] = [];
  for (const e of list) {
    if (typeof e === 'string') values.add(e.toLowerCase());
    else if (e instanceof RegExp) patterns.push(compileUserPattern(e));
    else patterns.push(compileUserPattern(e.pattern));
  }
  const c = { values, patterns };
  listCache.set(list, c);
  return c;
}

function listed(list: CompiledList, value: string): boolean {
  if (list.values.has(value.toLowerCase())) return true;
  for (const p of list.patterns) {
    p.lastIndex = 0;
    const m = p.exec(value);
    if (m && m.index === 0 && m[0].length === value.length) return true;
  }
  return false;
}

/** Keeps the best of overlapping findings: higher score first, then the longer span. */
export function resolveOverlaps(findings: Finding[]): Finding[] {
  return keepBest(findings);
}

interface Plan {
  wanted: ReadonlySet<PiiEntity>;
  /** The recognizers with at least one wanted entity, in RECOGNIZERS order. */
  recognizers: readonly Recognizer[];
}

function makePlan(entities: readonly PiiEntity[]): Plan {
  const wanted = new Set<PiiEntity>(entities);
  return { wanted, recognizers: RECOGNIZERS.filter((r) => r.entities.some((e) => wanted.has(e))) };
}

const DEFAULT_PLAN = makePlan(DEFAULT_ENTITIES);
const planCache = new WeakMap<readonly PiiEntity[], Plan>();

/**
 * The wanted set and recognizers of an `entities` option: built once for the default and for
 * frozen arrays (a caller may change an unfrozen array between calls, so those get a new plan).
 */
function planOf(entities: readonly PiiEntity[] | undefined): Plan {
  if (entities === undefined) return DEFAULT_PLAN;
  let p = planCache.get(entities);
  if (p === undefined) {
    p = makePlan(entities);
    if (Object.isFrozen(entities)) planCache.set(entities, p);
  }
  return p;
}

/** Detects PII in `text`. Findings are sorted by offset, non-overlapping, and never echo the value. */
export function detectPii(text: string, opts: PiiOptions = {}): Finding[] {
  const { wanted, recognizers } = planOf(opts.entities);
  const threshold = opts.threshold ?? 0.5;
  const boost = opts.contextBoost ?? 0.35;
  const allow = compileList(opts.allowList);
  const deny = compileList(opts.denyList);
  const input: ScanInput = {
    text,
    lower: lowerSameLength(text),
    defaultRegion: opts.defaultRegion ?? 'US',
    phoneRegions: opts.phoneRegions ?? DEFAULT_REGIONS,
  };
  const raw: RawMatch[] = [];
  for (const r of recognizers) {
    for (const m of r.detect(input)) if (wanted.has(m.entity)) raw.push(m);
  }
  const findings: Finding[] = [];
  for (const m of raw) {
    const words = opts.contextWords?.[m.entity] ? [...(DEFAULT_CONTEXT[m.entity] ?? []), ...opts.contextWords[m.entity]!] : DEFAULT_CONTEXT[m.entity] ?? [];
    const negative = NUMERIC.has(m.entity) && hasContextWord(input.lower, m.start, m.end, NEGATIVE_CONTEXT, 24, 0);
    const ctx = m.needsContext ? true : !negative && hasContextWord(input.lower, m.start, m.end, words);
    let score = m.score;
    if (ctx && !m.needsContext) score = Math.min(1, score + boost);
    if (negative) score -= 0.45;
    score = Math.round(Math.max(0, score) * 100) / 100;
    if (score < threshold) continue;
    if (allow && listed(allow, text.slice(m.start, m.end))) continue;
    findings.push({
      detector: `pii.${m.entity.toLowerCase()}`,
      category: m.entity,
      severity: SEVERITY[m.entity],
      score,
      start: m.start,
      end: m.end,
      reason: ctx && !m.needsContext ? `${m.reason}; context word nearby` : m.reason,
    });
  }
  if (deny) {
    const category = opts.denyCategory ?? 'CUSTOM';
    const lowerText = input.lower;
    for (const v of deny.values) {
      let i = lowerText.indexOf(v);
      while (i >= 0 && v.length > 0) {
        findings.push({ detector: 'pii.deny_list', category, severity: 'high', score: 1, start: i, end: i + v.length, reason: 'deny-listed value' });
        i = lowerText.indexOf(v, i + v.length);
      }
    }
    for (const p of deny.patterns) {
      p.lastIndex = 0;
      for (const m of text.matchAll(p)) {
        if (m[0].length === 0) continue;
        findings.push({ detector: 'pii.deny_list', category, severity: 'high', score: 1, start: m.index, end: m.index + m[0].length, reason: 'deny-list pattern match' });
      }
    }
  }
  return resolveOverlaps(findings);
}
