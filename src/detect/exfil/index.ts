/**
 * Exfiltration / insecure output handling: finds URLs a client would render or fetch in a
 * model output (markdown images, links, reference definitions, autolinks, bare URLs, HTML
 * img/iframe/a/script/form/srcset/CSS url()) and removes or neutralises the ones the policy
 * does not allow. Parsing uses the `marked` lexer and `htmlparser2`, not regexes alone.
 */
import { Lexer, type Token, type Tokens } from 'marked';
import { Parser } from 'htmlparser2';
import type { Finding, Severity } from '../types.js';
import { dataScore, hostAllowed, parseUrl, type UrlInfo } from './urls.js';
import { exfilRiskyTail } from './risky-tail.js';

export { dataScore, hostAllowed, parseUrl, looksEncoded, type UrlInfo } from './urls.js';
export { sanitizeHtml, type SanitizeHtmlOptions } from './sanitize.js';
export { exfilRiskyTail } from './risky-tail.js';

/** The URL policy for model outputs. */
export interface LinkPolicy {
  /** Exact hosts allowed; `*.example.com` allows its subdomains. Default: none. */
  allowHosts?: readonly string[];
  /** When true, only URLs in `trustedUrls` pass (the host list is ignored). */
  allowOnlyTrustedUrls?: boolean;
  /** URLs that appeared in trusted input (system prompt, user message); they always pass. */
  trustedUrls?: readonly string[];
  /** Maximum URLs per output; the rest are findings. Default 20. */
  maxUrls?: number;
  /** What the rewrite does with disallowed URLs. Default 'remove'. */
  action?: 'remove' | 'neutralize' | 'flag';
  /** Minimum number of near-identical URLs that flags character-by-character exfiltration. Default 3. */
  minSequence?: number;
}

/** Where in the output a URL sits and how it would be used by a client. */
export type UrlKind =
  | 'md-image'
  | 'md-link'
  | 'md-definition'
  | 'autolink'
  | 'bare'
  | 'html-img'
  | 'html-iframe'
  | 'html-a'
  | 'html-script'
  | 'html-form'
  | 'html-srcset'
  | 'html-style'
  | 'html-other';

/** One URL found in an output. */
export interface OutputUrl {
  kind: UrlKind;
  url: string;
  /** Span of the whole element to replace (offsets into the original text). */
  start: number;
  end: number;
  /** Visible text to keep when the URL is removed (link text, image alt). */
  text: string;
}

/** The result of {@link scanOutputLinks}. */
export interface LinkScanResult {
  findings: Finding[];
  /** The output with disallowed URLs removed or neutralised (unchanged for action 'flag'). */
  rewritten: string;
  /** Every URL found, in order. */
  urls: OutputUrl[];
}

const AUTO_FETCHED: ReadonlySet<UrlKind> = new Set(['md-image', 'html-img', 'html-iframe', 'html-script', 'html-srcset', 'html-style']);
const DANGEROUS_SCHEMES = new Set(['javascript', 'vbscript', 'file']);
const WEB_SCHEMES = new Set(['http', 'https', 'ftp', 'ws', 'wss']);
/** Finding categories whose span is exactly one element that the rewrite removes. */
const REMOVABLE = new Set(['data_exfiltration', 'disallowed_url', 'data_uri', 'dangerous_scheme', 'script', 'css_expression', 'too_many_urls']);

/** Invisible characters used to smuggle data: tag characters, zero-width and bidi controls. */
export const INVISIBLE_RE = /(?:[\u200B-\u200F\u202A-\u202E\u2060-\u2064\u2066-\u2069\uFEFF\u180E]|\uDB40[\uDC00-\uDC7F])+/g;

function plainText(tokens: Token[] | undefined, fallback: string): string {
  if (!tokens) return fallback;
  let out = '';
  for (const t of tokens) {
    if (t.type === 'image') out += (t as Tokens.Image).text;
    else if ('tokens' in t && Array.isArray((t as Tokens.Generic).tokens)) out += plainText((t as Tokens.Generic).tokens as Token[], (t as Tokens.Generic).text ?? '');
    else if (t.type === 'html') continue;
    else out += (t as Tokens.Generic).text ?? '';
  }
  return out;
}

/** Finds every URL in a markdown/HTML output, with the span of the element that carries it. */
export function extractOutputUrls(text: string): OutputUrl[] {
  // marked turns \r\n into \n; keep lengths identical so offsets stay valid.
  const src = text.replace(/\r\n/g, ' \n').replace(/\r/g, '\n');
  const urls: OutputUrl[] = [];
  const codeRanges: Array<[number, number]> = [];
  let tokens: Token[] = [];
  try {
    tokens = Lexer.lex(src, { gfm: true });
  } catch {
    tokens = [];
  }

  function walk(list: Token[] | undefined, from: number): void {
    if (!list) return;
    let cursor = from;
    for (const tok of list) {
      const raw = (tok as Tokens.Generic).raw ?? '';
      let at = raw ? src.indexOf(raw, cursor) : -1;
      if (at < 0) at = cursor;
      else cursor = at + raw.length;
      switch (tok.type) {
        case 'code':
        case 'codespan':
          if (raw) codeRanges.push([at, at + raw.length]);
          continue;
        case 'image': {
          const t = tok as Tokens.Image;
          urls.push({ kind: 'md-image', url: t.href, start: at, end: at + raw.length, text: t.text });
          continue;
        }
        case 'link': {
          const t = tok as Tokens.Link & { autolink?: boolean };
          const autolink = t.autolink === true || raw.startsWith('<');
          const bare = !raw.startsWith('[') && !raw.startsWith('<');
          urls.push({
            kind: bare ? 'bare' : autolink ? 'autolink' : 'md-link',
            url: t.href,
            start: at,
            end: at + raw.length,
            text: autolink || bare ? '' : plainText(t.tokens, t.text),
          });
          // An image inside link text is fetched on render: look inside.
          if (!autolink && !bare) walk(t.tokens, at);
          continue;
        }
        case 'def': {
          const t = tok as Tokens.Def;
          const end = raw.endsWith('\n') ? at + raw.length - 1 : at + raw.length;
          urls.push({ kind: 'md-definition', url: t.href, start: at, end, text: '' });
          continue;
        }
        default:
          break;
      }
      const g = tok as Tokens.Generic;
      if (Array.isArray(g.tokens)) walk(g.tokens as Token[], at);
      if (Array.isArray(g.items)) walk(g.items as Token[], at);
      if (tok.type === 'table') {
        const tt = tok as Tokens.Table;
        let c = at;
        for (const cell of tt.header) walk(cell.tokens, c);
        for (const row of tt.rows) for (const cell of row) walk(cell.tokens, c);
        c = at;
      }
    }
  }
  walk(tokens, 0);
  const inCode = (pos: number): boolean => codeRanges.some(([a, b]) => pos >= a && pos < b);

  // HTML: one pass over the whole text; elements that start inside code are ignored.
  const openA: Array<{ start: number; url: OutputUrl | null }> = [];
  const parser: Parser = new Parser(
    {
      onopentag(name, attribs) {
        const start = parser.startIndex;
        const end = parser.endIndex + 1;
        if (inCode(start)) {
          if (name === 'a') openA.push({ start, url: null });
          return;
        }
        const push = (kind: UrlKind, url: string, s = start, e = end): OutputUrl => {
          const o = { kind, url, start: s, end: e, text: '' };
          urls.push(o);
          return o;
        };
        if (name === 'img' || name === 'iframe' || name === 'script' || name === 'embed' || name === 'video' || name === 'audio' || name === 'source' || name === 'object') {
          const kind: UrlKind = name === 'img' ? 'html-img' : name === 'iframe' ? 'html-iframe' : name === 'script' ? 'html-script' : 'html-other';
          for (const attr of ['src', 'data', 'poster']) if (attribs[attr]) push(kind, attribs[attr]);
          if (name === 'img' && !attribs.src && !attribs.srcset) push('html-img', '');
          if (attribs.alt && name === 'img') urls[urls.length - 1] && (urls[urls.length - 1].text = attribs.alt);
        }
        if (name === 'script' && !attribs.src) push('html-script', '');
        if (name === 'a' || name === 'area') {
          const o = attribs.href !== undefined ? push('html-a', attribs.href) : null;
          if (name === 'a') openA.push({ start, url: o });
        }
        if (name === 'form') push('html-form', attribs.action ?? '');
        if (attribs.formaction) push('html-form', attribs.formaction);
        if (attribs.srcset) {
          for (const cand of attribs.srcset.split(',')) {
            const u = cand.trim().split(/\s+/)[0];
            if (u) push('html-srcset', u);
          }
        }
        if (attribs.background) push('html-style', attribs.background);
        if (attribs.style) {
          for (const m of attribs.style.matchAll(/url\(\s*(['"]?)([^'")]*)\1\s*\)/gi)) push('html-style', m[2]);
          if (/@import|expression\s*\(/i.test(attribs.style)) push('html-style', '');
        }
      },
      onclosetag(name, implied) {
        if (implied) return;
        if (name === 'a') {
          const open = openA.pop();
          if (open?.url) {
            // Extend the element to the closing tag, keeping its inner text.
            const inner = src.slice(open.url.end, parser.startIndex);
            open.url.text = inner.replace(/<[^>]*>/g, '');
            open.url.end = parser.endIndex + 1;
          }
        } else if (name === 'script' || name === 'iframe') {
          const last = [...urls].reverse().find((u) => u.kind === (name === 'script' ? 'html-script' : 'html-iframe'));
          if (last && last.end <= parser.startIndex) last.end = parser.endIndex + 1;
        }
      },
    },
    { decodeEntities: true, lowerCaseTags: true, lowerCaseAttributeNames: true, recognizeSelfClosing: true },
  );
  parser.write(src);
  parser.end();

  // Fallback: URLs the lexer did not see (e.g. inside malformed markup), outside code.
  const covered = (s: number, e: number): boolean => urls.some((u) => s >= u.start && e <= u.end) || inCode(s);
  for (const m of src.matchAll(/\b(?:https?|ftp):\/\/[^\s<>"'`)\]]+|\bdata:[a-z]+\/[a-z0-9.+-]+[;,][^\s<>"'`)\]]*/gi)) {
    if (!covered(m.index, m.index + m[0].length)) urls.push({ kind: 'bare', url: m[0], start: m.index, end: m.index + m[0].length, text: '' });
  }
  urls.sort((a, b) => a.start - b.start || b.end - a.end);
  return urls;
}

function finding(category: string, severity: Severity, score: number, start: number, end: number, reason: string, detector = 'exfil.url'): Finding {
  return { detector, category, severity, score: Math.round(score * 100) / 100, start, end, reason };
}

function normalizeForCompare(u: string): string {
  const info = parseUrl(u);
  return info.normalized;
}

/**
 * Scans a model output for links and HTML that could exfiltrate data or run code, and
 * rewrites it per the policy (link text kept, URL removed or neutralised).
 */
export function scanOutputLinks(text: string, policy: LinkPolicy = {}): LinkScanResult {
  return scanImpl(text, policy, null);
}

/**
 * Rewrites `text` for the given findings only (those from a previous scan of the same text):
 * the `rewrite` half of a stream-scanner adapter, so a released prefix is never re-judged alone.
 */
export function rewriteOutputLinks(text: string, findings: readonly Finding[], policy: LinkPolicy = {}): string {
  return scanImpl(text, policy, findings).rewritten;
}

/** The scan/rewrite/riskyTail triple that plugs the link policy into `createStreamScanner`. */
export function linkStreamAdapter(policy: LinkPolicy = {}): {
  scan: (text: string) => { findings: Finding[] };
  rewrite: (text: string, findings: Finding[]) => string;
  riskyTail: (text: string) => number;
} {
  return {
    scan: (text) => scanOutputLinks(text, policy),
    rewrite: (text, findings) => rewriteOutputLinks(text, findings, policy),
    riskyTail: exfilRiskyTail,
  };
}

/** Cheap pre-check: without any of these there can be no link, tag, URL or invisible character to report. */
const MAYBE_RELEVANT = /\]\s*[(:[]|<|:\/\/|www\.|(?:javascript|vbscript|data|file|mailto|sms|tel):|[\u200B-\u200F\u202A-\u202E\u2060-\u2064\u2066-\u2069\uFEFF\u180E]|\uDB40/i;

function scanImpl(text: string, policy: LinkPolicy, only: readonly Finding[] | null): LinkScanResult {
  if (!MAYBE_RELEVANT.test(text)) return { findings: [], rewritten: text, urls: [] };
  const onlySpans = only ? new Set(only.map((f) => `${f.start}:${f.end}`)) : null;
  const allowHosts = policy.allowHosts ?? [];
  const trusted = new Set((policy.trustedUrls ?? []).map(normalizeForCompare));
  const maxUrls = policy.maxUrls ?? 20;
  const action = policy.action ?? 'remove';
  const minSequence = Math.max(2, policy.minSequence ?? 3);
  const urls = extractOutputUrls(text);
  const findings: Finding[] = [];
  const toReplace = new Map<OutputUrl, string>();
  const disallowedWeb: Array<{ u: OutputUrl; info: UrlInfo }> = [];

  let counted = 0;
  for (const u of urls) {
    const info = parseUrl(u.url);
    const auto = AUTO_FETCHED.has(u.kind);
    const where = u.kind.replace('md-', 'markdown ').replace('html-', 'HTML ');
    let bad: Finding | null = null;
    if (u.url === '' && (u.kind === 'html-script' || u.kind === 'html-style')) {
      bad = finding(u.kind === 'html-script' ? 'script' : 'css_expression', 'high', 0.9, u.start, u.end, `${where} in output`, 'exfil.html');
    } else if (u.url === '' ) {
      continue;
    } else if (DANGEROUS_SCHEMES.has(info.scheme)) {
      bad = finding('dangerous_scheme', 'high', 0.95, u.start, u.end, `${info.scheme}: URL in ${where}`);
    } else if (info.scheme === 'data') {
      bad = finding('data_uri', auto ? 'medium' : 'high', 0.8, u.start, u.end, `data URI in ${where}`);
    } else if (WEB_SCHEMES.has(info.scheme)) {
      counted++;
      const ok = policy.allowOnlyTrustedUrls ? trusted.has(info.normalized) : trusted.has(info.normalized) || hostAllowed(info.host, allowHosts);
      if (!ok) {
        // A form submits data by design; treat its target like a data-carrying URL.
        const ds = u.kind === 'html-form' ? Math.max(0.5, dataScore(info)) : dataScore(info);
        const severity: Severity = ds >= 0.4 ? (auto ? 'critical' : 'high') : auto ? 'high' : 'medium';
        const reason = `${where} to a host not on the allow-list${ds >= 0.4 ? ', URL carries data' : ''}`;
        bad = finding(ds >= 0.4 ? 'data_exfiltration' : 'disallowed_url', severity, Math.min(1, 0.5 + ds / 2 + (auto ? 0.1 : 0)), u.start, u.end, reason);
        disallowedWeb.push({ u, info });
      } else if (counted > maxUrls) {
        bad = finding('too_many_urls', 'medium', 0.6, u.start, u.end, `more than ${maxUrls} URLs in output`);
      }
    } else if (info.scheme === 'mailto' || info.scheme === 'sms' || info.scheme === 'tel') {
      if (/[?&](?:body|subject|cc|bcc)=/i.test(u.url)) bad = finding('data_exfiltration', 'medium', 0.6, u.start, u.end, `${info.scheme}: link carrying a message body`);
    } else if (info.scheme !== '') {
      bad = finding('disallowed_url', 'medium', 0.6, u.start, u.end, `${info.scheme}: URL in ${where}`);
    } else if (u.kind === 'html-form') {
      bad = finding('disallowed_url', 'medium', 0.6, u.start, u.end, 'HTML form in output');
    }
    if (bad) {
      findings.push(bad);
      if (!onlySpans || onlySpans.has(`${u.start}:${u.end}`)) toReplace.set(u, replacementFor(u, info, action));
    }
  }
  if (counted > maxUrls && !findings.some((f) => f.category === 'too_many_urls')) {
    findings.push(finding('too_many_urls', 'medium', 0.6, 0, text.length, `more than ${maxUrls} URLs in output`));
  }

  // Character-by-character exfiltration: several URLs that differ only in one short part.
  for (const [s, e, n] of nearIdenticalRuns(disallowedWeb.slice(0, 300), minSequence)) {
    findings.push(finding('char_by_char', 'critical', 0.95, s, e, `${n} near-identical URLs differing in one short segment`));
  }

  for (const m of text.matchAll(INVISIBLE_RE)) {
    if (isEmojiJoiner(text, m.index, m[0])) continue;
    const tags = /\uDB40/.test(m[0]);
    // Long runs of zero-width characters encode data (binary in ZWSP/ZWNJ); single ones are usually noise.
    const longRun = m[0].length >= 4;
    findings.push(
      finding(tags ? 'unicode_tags' : 'invisible_unicode', tags || longRun ? 'high' : 'medium', tags ? 0.95 : longRun ? 0.85 : 0.7, m.index, m.index + m[0].length, `${tags ? 'Unicode tag characters' : 'invisible characters'} in output (${m[0].length} code units)`, 'exfil.unicode'),
    );
  }

  findings.sort((a, b) => a.start - b.start);
  let rewritten = text;
  if (action !== 'flag' && only) {
    // Fail closed: a reported element this rescan did not reproduce (different context) is cut out anyway.
    const done = new Set([...toReplace.keys()].map((u) => `${u.start}:${u.end}`));
    for (const f of only) {
      if (!REMOVABLE.has(f.category) || done.has(`${f.start}:${f.end}`) || f.end - f.start >= text.length) continue;
      toReplace.set({ kind: 'bare', url: '', start: f.start, end: f.end, text: '' }, action === 'remove' ? '' : '[link removed]');
    }
  }
  if (action !== 'flag') {
    // Replace outermost elements right to left; nested ones are covered by their parent.
    const items = [...toReplace.entries()].sort((a, b) => a[0].start - b[0].start || b[0].end - a[0].end);
    const kept: Array<[OutputUrl, string]> = [];
    for (const it of items) {
      const last = kept[kept.length - 1];
      if (last && it[0].start < last[0].end) continue;
      kept.push(it);
    }
    let out = '';
    let pos = 0;
    for (const [u, rep] of kept) {
      out += text.slice(pos, u.start) + rep;
      pos = u.end;
    }
    out += text.slice(pos);
    rewritten = onlySpans ? out : out.replace(INVISIBLE_RE, (m, at: number, whole: string) => (isEmojiJoiner(whole, at, m) ? m : ''));
    if (onlySpans) {
      // Strip only the invisible runs that were reported (positions shift, so match by content order).
      const keep = new Set(only!.filter((f) => f.detector === 'exfil.unicode').map((f) => text.slice(f.start, f.end)));
      if (keep.size > 0) rewritten = out.replace(INVISIBLE_RE, (m) => (keep.has(m) ? '' : m));
    }
  }
  return { findings, rewritten, urls };
}

function replacementFor(u: OutputUrl, info: UrlInfo, action: 'remove' | 'neutralize' | 'flag'): string {
  const label = (u.text ?? '').replace(INVISIBLE_RE, '').trim();
  if (action === 'flag') return '';
  if (action === 'remove') {
    if (u.kind === 'md-definition' || u.kind === 'html-script' || u.kind === 'html-style' || u.kind === 'html-form') return '';
    return label;
  }
  const where = info.host ? `link to ${info.host} removed` : 'link removed';
  if (u.kind === 'md-definition') return `[${where}]`;
  return label ? `${label} [${where}]` : `[${where}]`;
}

/** Whether two parts differ only by a short edit (after their common prefix and suffix). */
function shortEdit(a: string, b: string): boolean {
  if (a === b) return false;
  let p = 0;
  while (p < a.length && p < b.length && a[p] === b[p]) p++;
  let q = 0;
  while (q < a.length - p && q < b.length - p && a[a.length - 1 - q] === b[b.length - 1 - q]) q++;
  return a.length - p - q <= 3 && b.length - p - q <= 3;
}

/** Groups of URLs (same host and shape) that pairwise-chain by one short edit; returns [start, end, size]. */
function nearIdenticalRuns(list: Array<{ u: OutputUrl; info: UrlInfo }>, minSize: number): Array<[number, number, number]> {
  const n = list.length;
  const parent = list.map((_, i) => i);
  const find = (i: number): number => (parent[i] === i ? i : (parent[i] = find(parent[i])));
  const toks = list.map(({ info }) => [info.host, ...info.parts]);
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      const a = toks[i];
      const b = toks[j];
      if (a.length !== b.length || a[0] !== b[0]) continue;
      let diffs = 0;
      let ok = true;
      for (let k = 1; k < a.length && ok; k++) {
        if (a[k] !== b[k]) {
          diffs++;
          ok = diffs === 1 && shortEdit(a[k], b[k]);
        }
      }
      if (ok && diffs === 1) parent[find(i)] = find(j);
    }
  }
  const groups = new Map<number, number[]>();
  for (let i = 0; i < n; i++) {
    const r = find(i);
    groups.set(r, [...(groups.get(r) ?? []), i]);
  }
  const out: Array<[number, number, number]> = [];
  for (const idx of groups.values()) {
    const distinct = new Set(idx.map((i) => list[i].info.normalized));
    if (distinct.size >= minSize) {
      out.push([Math.min(...idx.map((i) => list[i].u.start)), Math.max(...idx.map((i) => list[i].u.end)), distinct.size]);
    }
  }
  return out;
}

const PICTO = /[\p{Extended_Pictographic}\u{1F3FB}-\u{1F3FF}\uFE0F]/u;

/** A lone U+200D between emoji (family, profession sequences) is legitimate, not smuggling. */
function isEmojiJoiner(text: string, at: number, run: string): boolean {
  if (run !== '\u200D') return false;
  const before = text.slice(Math.max(0, at - 2), at);
  const after = text.slice(at + 1, at + 3);
  return PICTO.test(before) && PICTO.test(after);
}
