/**
 * The output checker: one scan over an assistant output (PII, secrets, canary, system-prompt
 * overlap, exfiltration links, unsafe content, banned topics) whose findings are sorted into
 * what blocks, what is rewritten and what is only recorded. The same checker serves whole
 * bodies and the per-choice stream scanners, so streamed and non-streamed outputs get the
 * same treatment.
 */
import { canaryAlnumLength, detectCanary, type DecodedView } from '../../detect/leakage/index.js';
import { detectOverlap } from '../../detect/leakage/overlap.js';
import { exfilRiskyTail, rewriteOutputLinks, scanOutputLinks, type LinkPolicy } from '../../detect/exfil/index.js';
import { normalize, payloadMap, toOriginal } from '../../detect/normalize/index.js';
import { detectPii, type PiiOptions } from '../../detect/pii/index.js';
import { applyActions } from '../../detect/redact.js';
import { detectSecrets } from '../../detect/secrets/index.js';
import { replaceSpans } from '../../detect/stream/index.js';
import { detectTopics } from '../../detect/topics/index.js';
import { detectUnsafe, unsafeCandidate, UNSAFE_NEED_MAX_LENGTH, type HazardId } from '../../detect/unsafe/index.js';
import type { Finding } from '../../detect/types.js';
import type { GuardsConfig } from '../config.js';
import type { ResponseGuardsConfig } from './config.js';

/** What a finding leads to. */
export type OutputAct = 'block' | 'rewrite' | 'flag';

/** The response guards, by name (used in records, headers and findings). */
export type OutputGuardName = 'response:pii' | 'response:secrets' | 'response:canary' | 'response:overlap' | 'response:exfil' | 'response:unsafe' | 'response:topics' | 'response:judge' | 'response:tools';

/** A finding of the output checker with the guard it belongs to and what it leads to. */
export interface OutputFinding extends Finding {
  guard: OutputGuardName;
  act: OutputAct;
}

/** Per-request facts the checker needs besides the config. */
export interface OutputContext {
  /** The canary token added to this request's system prompt. */
  canary?: string;
  /** The system prompt as the client sent it (for the overlap check). */
  systemPrompt?: string;
  /** URLs that appeared in trusted input (system and user turns). */
  trustedUrls?: readonly string[];
}

/** The output checker of one request. */
export interface OutputChecker {
  /** Characters a stream must hold back so every local finding is seen whole. */
  readonly holdBack: number;
  /** Every finding in a text (offsets into it). */
  scan(text: string): OutputFinding[];
  /** Only the detectors that can rewrite or block (what a stream must scan before releasing text). */
  scanActing(text: string): OutputFinding[];
  /** Only the flag-only detectors (run once over a whole streamed output). */
  scanFlags(text: string): OutputFinding[];
  /** Whether some enabled detector can only flag. */
  readonly hasFlagOnly: boolean;
  /** Applies the rewrite findings to `text` (block and flag findings are ignored). */
  rewrite(text: string, findings: readonly OutputFinding[]): string;
  /** Unfinished risky fragment (open link/image/tag/URL) at the end of a stream window. */
  riskyTail(text: string): number;
  /** Checks needing the whole output (off-topic). */
  whole(text: string): OutputFinding[];
  /** The link policy in force. */
  readonly linkPolicy: LinkPolicy;
}

type RedactionAction = 'flag' | 'block' | 'redact' | 'mask' | 'hash';

function effectiveAction(own: ResponseGuardsConfig['pii']['action'], inherited: string): RedactionAction {
  // Inheriting `pseudonymize`: the values in the output are the caller's own, restored on purpose — record only.
  if (own === 'inherit') return inherited === 'pseudonymize' ? 'flag' : (inherited as RedactionAction);
  return own;
}

function actOf(a: RedactionAction): OutputAct {
  return a === 'flag' ? 'flag' : a === 'block' ? 'block' : 'rewrite';
}

/** Reasons the exfil detector gives for a clickable (not auto-fetched) link without data to a host not allowed. */
const PLAIN_LINK_REASON = /^(?:markdown link|markdown definition|autolink|bare|HTML a) to a host not on the allow-list$/;

const MAYBE_ENCODED = /[A-Za-z0-9+/=_-]{16,}|%[0-9a-f]{2}|\\[ux][0-9a-f]{2}|[\u{E0000}-\u{E007F}]/iu;

/** Characters of the run in MAYBE_ENCODED: [A-Za-z0-9+/=_-] (plus U+017F and U+212A, which /iu folds onto s and k). */
const RUN = new Uint8Array(128);
for (const ch of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=_-') RUN[ch.charCodeAt(0)] = 1;

/**
 * A cheap necessary condition of MAYBE_ENCODED: a `%`, a backslash or a tag character's high
 * surrogate at or after `from`, or a run of 16 run characters ending at or after `from`. With
 * `from` 0 it covers the whole text; a stream window whose start repeats (up to `from`) a window
 * in which it failed needs only the rest checked. Most stream windows of prose have none of them.
 */
function encodedPrecheck(t: string, from: number): boolean {
  if (t.indexOf('%', from) >= 0 || t.indexOf('\\', from) >= 0 || t.indexOf('\uDB40', from) >= 0) return true;
  let run = 0;
  for (let i = Math.max(0, from - 15); i < t.length; i++) {
    const c = t.charCodeAt(i);
    if (c < 128 ? RUN[c] === 1 : c === 0x017f || c === 0x212a) {
      if (++run >= 16) return true;
    } else run = 0;
  }
  return false;
}

/** MAYBE_ENCODED.test(t), with the cheap necessary condition first. */
function maybeEncoded(t: string): boolean {
  return encodedPrecheck(t, 0) && MAYBE_ENCODED.test(t);
}

/** What the last scanned stream window showed, for the next one (each window starts with the end of the one before). */
interface WindowMemo {
  text: string;
  /** No unsafe rule's `need` anywhere in it. */
  unsafeClean: boolean;
  /** The encoded-text precheck fails everywhere in it. */
  encodedClean: boolean;
}

/**
 * L such that `text` starts with the last L characters of `prev` (verified; 0 when none is found,
 * e.g. in very repetitive text, where the checks then simply cover the whole window).
 */
function overlapOf(prev: string, text: string): number {
  if (prev.length < 32 || text.length < 32) return 0;
  const head = text.slice(0, 32);
  let at = prev.indexOf(head, Math.max(0, prev.length - text.length));
  for (let tries = 0; at >= 0 && tries < 16; tries++) {
    if (text.startsWith(prev.slice(at))) return prev.length - at;
    at = prev.indexOf(head, at + 1);
  }
  return 0;
}

/** Characters of an encoded token: base64 (both alphabets, padding), `%` and `\` escapes. */
const ENCODED_TOKEN = /^[A-Za-z0-9+/=_\-%\\]+$/;

/**
 * Length of an unfinished carrier of encoded text at the end of a stream window: a run of Unicode
 * tag characters (or a lone high surrogate of one), a token of base64/hex/URL-encoded characters
 * at least 16 long, or a run of separated hex pairs. A canary decoded from a carrier is reported
 * over the whole carrier, so the carrier is held back until it is complete (up to the scanner's
 * `maxHold`) — its start is never released before the decoder has seen all of it.
 */
function openCarrier(t: string): number {
  const n = t.length;
  let i = n;
  if (i > 0 && t.charCodeAt(i - 1) === 0xdb40) i--;
  while (i >= 2 && t.charCodeAt(i - 2) === 0xdb40 && (t.charCodeAt(i - 1) & 0xff80) === 0xdc00) i -= 2;
  if (i < n) return n - i;
  const floor = Math.max(0, n - 4097);
  let j = n;
  while (j > floor) {
    const c = t.charCodeAt(j - 1);
    if (c === 32 || c === 10 || c === 9 || c === 13 || c === 0xa0) break;
    j--;
  }
  if (n - j >= 16 && ENCODED_TOKEN.test(t.slice(j))) return n - j;
  // Hex pairs separated by spaces, colons or commas (`70 63 6c …`), walked back from the end.
  let k = n;
  for (let h = 0; h < 2 && k > floor && isHexCode(t.charCodeAt(k - 1)); h++) k--;
  let pairs = 0;
  while (k - 3 >= floor && isHexSep(t.charCodeAt(k - 1)) && isHexCode(t.charCodeAt(k - 2)) && isHexCode(t.charCodeAt(k - 3))) {
    k -= 3;
    pairs++;
  }
  return pairs >= 3 ? n - k : 0;
}

/**
 * Length of the shortest suffix of `t` holding `count` ASCII letters and digits (full-width ones
 * too), at most 4097: a canary padded with invisible characters between its letters is longer
 * than the hold-back, and must still be seen whole before any of it is released.
 */
function alnumTail(t: string, count: number): number {
  const floor = Math.max(0, t.length - 4097);
  let seen = 0;
  let i = t.length;
  while (i > floor && seen < count) {
    let c = t.charCodeAt(--i);
    if (c >= 0xff01 && c <= 0xff5e) c -= 0xfee0;
    if ((c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122)) seen++;
  }
  return t.length - i;
}

function isHexCode(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 97 && c <= 102) || (c >= 65 && c <= 70);
}
function isHexSep(c: number): boolean {
  return c === 32 || c === 58 || c === 44;
}

/** Whether a scan of kind `which` runs a detector that can only flag (`isFlagOnly`) or can act. */
function wanted(which: 'all' | 'acting' | 'flags', isFlagOnly: boolean): boolean {
  return which === 'all' || (which === 'acting' ? !isFlagOnly : isFlagOnly);
}

/** Builds the output checker of one request from the effective guards config. */
export function createOutputChecker(cfg: GuardsConfig, ctx: OutputContext, hashKey: string | Uint8Array): OutputChecker {
  const r = cfg.response;
  const piiAction = effectiveAction(r.pii.action, cfg.pii.action);
  const secretsAction = effectiveAction(r.secrets.action, cfg.secrets.action);
  const p = cfg.pii;
  const piiOpts: PiiOptions = {
    ...(p.entities ? { entities: p.entities } : {}),
    ...(p.threshold !== undefined ? { threshold: p.threshold } : {}),
    ...(p.allowList ? { allowList: p.allowList } : {}),
    ...(p.denyList ? { denyList: p.denyList } : {}),
    ...(p.defaultRegion ? { defaultRegion: p.defaultRegion } : {}),
  };
  const secretOpts = { ...(cfg.secrets.threshold !== undefined ? { threshold: cfg.secrets.threshold } : {}), ...(cfg.secrets.disable ? { disable: cfg.secrets.disable } : {}) };
  const exfilAct: OutputAct = r.exfil.action === 'block' ? 'block' : r.exfil.action === 'flag' ? 'flag' : 'rewrite';
  const linkPolicy: LinkPolicy = {
    allowHosts: r.exfil.allowHosts,
    allowOnlyTrustedUrls: r.exfil.allowOnlyTrustedUrls,
    trustedUrls: ctx.trustedUrls ?? [],
    maxUrls: r.exfil.maxUrls,
    action: r.exfil.action === 'neutralize' ? 'neutralize' : r.exfil.action === 'flag' ? 'flag' : 'remove',
    minSequence: r.exfil.minSequence,
  };
  const rewritePolicy: LinkPolicy = { ...linkPolicy, action: linkPolicy.action === 'flag' ? 'remove' : linkPolicy.action };
  const canary = r.canary.enabled ? ctx.canary : undefined;
  const overlapPrompt = r.overlap.enabled && ctx.systemPrompt && ctx.systemPrompt.length >= r.overlap.minChars ? ctx.systemPrompt : undefined;
  const banned = r.topics.banned && Object.keys(r.topics.banned).length > 0 ? { banned: r.topics.banned } : undefined;
  const allowedTopics = r.topics.allowed && Object.keys(r.topics.allowed).length > 0 ? { allowed: r.topics.allowed } : undefined;
  const unsafeOpts = r.unsafe.categories ? { categories: r.unsafe.categories as HazardId[] } : {};
  /** The MAYBE_ENCODED answer for the window being scanned, when already known. */
  let encodedKnown: { text: string; value: boolean } | undefined;
  // Each decoded view keeps the way back to the original text: a hit is reported over the
  // characters that carry it (the tag characters, the ROT13 letters) or the carrier span (a
  // base64/hex/URL-encoded run), never over the whole window.
  const decode = (t: string): DecodedView[] => {
    if (!(encodedKnown && encodedKnown.text === t ? encodedKnown.value : maybeEncoded(t))) return [];
    const n = normalize(t);
    const views: DecodedView[] = [{ text: n.text, start: 0, end: t.length, map: (a, b) => toOriginal(n, a, b) }];
    for (const d of n.decoded) {
      const map = payloadMap(n, d);
      views.push(map ? { text: d.view.text, start: d.start, end: d.end, map } : { text: d.view.text, start: d.start, end: d.end });
    }
    return views;
  };
  /** Letters and digits the longest folded form of the canary spans (held back whatever pads them). */
  const canaryAlnum = canary ? canaryAlnumLength(canary) : 0;
  // Long enough for the longest local finding: secrets such as PEM keys and the unsafe rules' sentence context.
  const holdBack = Math.max(r.holdBack, r.unsafe.enabled ? 400 : 0, overlapPrompt ? r.overlap.minChars + 32 : 0, canary ? 160 : 0);

  const tag = (fs: readonly Finding[], guard: OutputGuardName, act: OutputAct): OutputFinding[] => fs.map((f) => ({ ...f, guard, act }));

  // Detectors that can only flag (never rewrite or block) do not change a stream: they run once over the whole text.
  const flagOnly = {
    secrets: actOf(secretsAction) === 'flag',
    pii: actOf(piiAction) === 'flag',
    unsafe: r.unsafe.action === 'flag',
    topics: r.topics.action === 'flag',
    overlap: r.overlap.action === 'flag',
  };
  const hasFlagOnly = (r.secrets.enabled && flagOnly.secrets) || (r.pii.enabled && flagOnly.pii) || (r.unsafe.enabled && flagOnly.unsafe) || (!!banned && flagOnly.topics) || (!!overlapPrompt && flagOnly.overlap);

  /** The last stream window scanned (scanActing), for the cheap checks of the next. */
  let memo: WindowMemo | undefined;

  function scanImpl(text: string, which: 'all' | 'acting' | 'flags'): OutputFinding[] {
    const out: OutputFinding[] = [];
    if (text.length === 0) return out;
    // Stream windows overlap: where this one repeats a window in which a cheap necessary check failed, only the rest is checked.
    let unsafeClean: boolean | undefined;
    if (which === 'acting' && text.length <= 200_000) {
      const prev = memo;
      const L = prev ? overlapOf(prev.text, text) : 0;
      if (r.unsafe.enabled && !flagOnly.unsafe) unsafeClean = !unsafeCandidate(L > 0 && prev!.unsafeClean ? text.slice(Math.max(0, L - (UNSAFE_NEED_MAX_LENGTH - 1))) : text);
      let encodedClean = false;
      if (canary) {
        encodedClean = !encodedPrecheck(text, L > 0 && prev!.encodedClean ? L : 0);
        encodedKnown = { text, value: !encodedClean && MAYBE_ENCODED.test(text) };
      }
      memo = { text, unsafeClean: unsafeClean === true, encodedClean };
    }
    if (r.secrets.enabled && wanted(which, flagOnly.secrets)) out.push(...tag(detectSecrets(text, secretOpts), 'response:secrets', actOf(secretsAction)));
    if (r.pii.enabled && wanted(which, flagOnly.pii)) out.push(...tag(detectPii(text, piiOpts), 'response:pii', actOf(piiAction)));
    // No rule's `need` in the text: detectUnsafe would find nothing.
    if (r.unsafe.enabled && wanted(which, flagOnly.unsafe) && unsafeClean !== true) out.push(...tag(detectUnsafe(text, unsafeOpts), 'response:unsafe', r.unsafe.action));
    if (banned && wanted(which, flagOnly.topics)) out.push(...tag(detectTopics(text, banned).findings, 'response:topics', r.topics.action));
    if (overlapPrompt && wanted(which, flagOnly.overlap)) {
      const o = detectOverlap(text, overlapPrompt, { minChars: r.overlap.minChars, minNgramWords: r.overlap.minNgramWords, minCoverage: r.overlap.minCoverage });
      out.push(...tag(o.findings, 'response:overlap', r.overlap.action));
    }
    if (which === 'flags') return out;
    if (canary) out.push(...tag(detectCanary(text, canary, decode), 'response:canary', r.canary.action === 'block' ? 'block' : 'rewrite'));
    if (r.exfil.enabled) {
      const links = scanOutputLinks(text, linkPolicy).findings;
      // A run of near-identical URLs is exfiltration even when each link alone looks plain.
      const sequence = links.some((f) => f.category === 'char_by_char');
      for (const f of links) {
        // Char-by-char sequences and invisible text are recorded; the URLs themselves are rewritten one by one.
        const plain = r.exfil.plainLinks === 'keep' && !r.exfil.allowOnlyTrustedUrls && !sequence && f.category === 'disallowed_url' && PLAIN_LINK_REASON.test(f.reason);
        const removable = !plain && f.category !== 'char_by_char' && f.category !== 'invisible_unicode' && f.category !== 'unicode_tags';
        out.push({ ...f, guard: 'response:exfil', act: plain || (exfilAct === 'rewrite' && !removable) ? 'flag' : exfilAct });
      }
    }
    return out;
  }

  function replacement(text: string, group: Finding[]): string {
    const gs = Math.min(...group.map((f) => f.start));
    const ge = Math.max(...group.map((f) => f.end));
    const slice = text.slice(gs, ge);
    const shifted = (group as OutputFinding[]).map((f) => ({ ...f, start: f.start - gs, end: f.end - gs }));
    const exfil = shifted.filter((f) => f.guard === 'response:exfil');
    if (exfil.length > 0) {
      const out = rewriteOutputLinks(slice, exfil, rewritePolicy);
      return out === slice ? '[link removed]' : out;
    }
    if (shifted.some((f) => f.guard === 'response:canary')) return '[REDACTED]';
    const secret = shifted.filter((f) => f.guard === 'response:secrets');
    const action = secret.length > 0 ? secretsAction : piiAction;
    if (action === 'flag' || action === 'block') return slice;
    return applyActions(slice, shifted, action, { hashKey }).text;
  }

  return {
    holdBack,
    linkPolicy,
    hasFlagOnly,
    scan: (text) => scanImpl(text, 'all'),
    scanActing: (text) => scanImpl(text, 'acting'),
    scanFlags: (text) => scanImpl(text, 'flags'),
    rewrite(text, findings) {
      const rw = findings.filter((f) => f.act === 'rewrite');
      if (rw.length === 0) return text;
      return replaceSpans(text, rw, (group) => replacement(text, group));
    },
    riskyTail: canary ? (t) => Math.max(r.exfil.enabled ? exfilRiskyTail(t) : 0, openCarrier(t), alnumTail(t, canaryAlnum)) : r.exfil.enabled ? exfilRiskyTail : () => 0,
    whole(text) {
      if (!allowedTopics || text.trim().length === 0) return [];
      return tag(detectTopics(text, allowedTopics).findings.filter((f) => f.category === 'off_topic'), 'response:topics', r.topics.action);
    },
  };
}

/** Extracts http(s) URLs from trusted text (for `allowOnlyTrustedUrls` and trusted-URL pass-through). */
export function urlsIn(text: string): string[] {
  return text.match(/\bhttps?:\/\/[^\s<>"'`)\]]+/gi)?.slice(0, 1000) ?? [];
}
