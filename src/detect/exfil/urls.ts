/** URL helpers for the exfiltration detector: host policy and "does this URL carry data". */

/** A parsed URL as the exfiltration policy sees it. */
export interface UrlInfo {
  /** Lower-case scheme without the colon (`https`, `data`, `javascript`, …); '' for relative URLs. */
  scheme: string;
  /** Lower-case host (punycode, no trailing dot); '' when there is none. */
  host: string;
  /** The URL as the WHATWG parser normalised it (or the raw value when it did not parse). */
  normalized: string;
  /** Path segments, query values and fragment: the parts that can carry data. */
  parts: string[];
  /** Whether the URL has a query string. */
  hasQuery: boolean;
  /** Whether the URL has user info (`user:pass@`). */
  hasUserInfo: boolean;
}

const RELATIVE_BASE = 'https://relative.portcullis.invalid';

/** Parses a URL (absolute, protocol-relative or relative) into the parts the policy needs. */
export function parseUrl(raw: string): UrlInfo {
  const value = raw.trim().replace(/[\u0000-\u001f\u007f]/g, '');
  const schemeMatch = /^([a-zA-Z][a-zA-Z0-9+.-]*):/.exec(value);
  let u: URL | null = null;
  try {
    u = new URL(value, RELATIVE_BASE);
  } catch {
    u = null;
  }
  if (!u) return { scheme: schemeMatch ? schemeMatch[1].toLowerCase() : '', host: '', normalized: value, parts: [value], hasQuery: false, hasUserInfo: false };
  const isRelative = u.origin === RELATIVE_BASE && !/^\/\/|^[a-zA-Z][a-zA-Z0-9+.-]*:/.test(value);
  const scheme = isRelative ? '' : u.protocol.replace(/:$/, '').toLowerCase();
  const host = isRelative ? '' : u.hostname.toLowerCase().replace(/\.$/, '').replace(/^\[|\]$/g, '');
  const parts: string[] = [];
  if (scheme === 'http' || scheme === 'https' || scheme === '' || scheme === 'ftp' || scheme === 'ws' || scheme === 'wss') {
    for (const seg of u.pathname.split('/')) if (seg) parts.push(safeDecode(seg));
    for (const [k, v] of u.searchParams) parts.push(v === '' ? k : v);
    if (u.hash.length > 1) parts.push(safeDecode(u.hash.slice(1)));
  } else {
    parts.push(value.slice(value.indexOf(':') + 1));
  }
  return {
    scheme,
    host,
    normalized: isRelative ? value : u.href,
    parts,
    hasQuery: u.search.length > 1,
    hasUserInfo: u.username !== '' || u.password !== '',
  };
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/**
 * Whether `host` is allowed by the list: entries are exact hosts; `*.example.com` allows
 * subdomains of example.com (not example.com itself). No implicit suffix matching.
 */
export function hostAllowed(host: string, allowHosts: readonly string[]): boolean {
  if (!host) return false;
  for (const entryRaw of allowHosts) {
    const entry = entryRaw.trim().toLowerCase().replace(/\.$/, '');
    if (entry.startsWith('*.')) {
      const suffix = entry.slice(1);
      if (host.endsWith(suffix) && host.length > suffix.length) return true;
    } else if (host === entry) {
      return true;
    }
  }
  return false;
}

const BASE64ISH = /^[A-Za-z0-9+/_=-]{20,}$/;
const HEXISH = /^[0-9a-fA-F]{16,}$/;

/** Whether one URL part looks like encoded data rather than a word or slug. */
export function looksEncoded(part: string): boolean {
  if (HEXISH.test(part)) return true;
  if (BASE64ISH.test(part)) {
    const classes = [/[a-z]/, /[A-Z]/, /[0-9]/].filter((r) => r.test(part)).length;
    return classes >= 2 && !/^[a-z]+(?:-[a-z]+)+$/.test(part);
  }
  return false;
}

/** How strongly a URL looks like it carries data, in [0, 1] (query, long or encoded segments, user info). */
export function dataScore(info: UrlInfo): number {
  let s = 0;
  if (info.hasQuery) s += 0.4;
  if (info.hasUserInfo) s += 0.3;
  let longest = 0;
  let encoded = false;
  for (const p of info.parts) {
    longest = Math.max(longest, p.length);
    if (looksEncoded(p)) encoded = true;
  }
  if (encoded) s += 0.5;
  else if (longest >= 40) s += 0.3;
  else if (longest >= 24) s += 0.15;
  if (/[ \n\t]/.test(info.parts.join(''))) s += 0.2; // sentences in a URL
  return Math.min(1, s);
}
