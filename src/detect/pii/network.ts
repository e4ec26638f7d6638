/** IP (v4/v6) and MAC address recognizers. */
import { isIPv6 } from 'node:net';
import type { RawMatch, Recognizer, ScanInput } from './types.js';

const OCTET = '(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)';
const IPV4 = new RegExp(`(?<![\\w.])${OCTET}(?:\\.${OCTET}){3}(?![\\w]|\\.\\d)`, 'g');
// The look-behind after the first character (same matches): the engine skips ahead faster.
const IPV6_CAND = /[0-9A-Fa-f:](?<![\w:.][0-9A-Fa-f:])[0-9A-Fa-f:]{1,38}(?:\.\d{1,3}){0,3}(?:%[A-Za-z0-9]{1,15})?(?![\w:])/g;
const MAC = /(?<![\w:-])[0-9A-Fa-f]{2}([:-])(?:[0-9A-Fa-f]{2}\1){4}[0-9A-Fa-f]{2}(?![\w:-])|(?<![\w.])[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}(?![\w.])/g;
/**
 * What every MAC match contains: a separator, two hex digits and a separator 2 characters after
 * its start (colon/dash form), or a dot, four hex digits and a dot 4 characters after it (Cisco).
 * Starts with a literal class, so the engine finds it fast; MAC runs from 4 before the first one.
 */
const MAC_HINT = /[:-][0-9A-Fa-f]{2}[:-]|\.[0-9A-Fa-f]{4}\./g;

function versionLike(lower: string, start: number): boolean {
  const pre = lower.slice(Math.max(0, start - 12), start);
  return /(?:^|[^a-z])v\s?$/.test(pre) || /(?:version|release|ver\.?|build)\s*:?\s*$/.test(pre);
}

/** Finds IPv4 addresses (not versions like `v1.2.3.4`) and IPv6 addresses (validated). */
export const ipRecognizer: Recognizer = {
  entities: ['IP_ADDRESS'],
  detect({ text, lower }: ScanInput): RawMatch[] {
    const out: RawMatch[] = [];
    IPV4.lastIndex = 0;
    for (let m = IPV4.exec(text); m !== null; m = IPV4.exec(text)) {
      if (versionLike(lower, m.index)) continue;
      const base = m[0] === '0.0.0.0' || m[0].startsWith('127.') ? 0.5 : 0.8;
      out.push({ entity: 'IP_ADDRESS', start: m.index, end: m.index + m[0].length, score: base, reason: 'IPv4 address' });
    }
    if (text.includes(':')) {
      IPV6_CAND.lastIndex = 0;
      for (let m = IPV6_CAND.exec(text); m !== null; m = IPV6_CAND.exec(text)) {
        const v = m[0];
        if (v.indexOf(':') === v.lastIndexOf(':')) continue;
        const addr = v.split('%')[0]!;
        const groups = addr.split(':').filter((g) => g.length > 0).length;
        if (!isIPv6(addr) || groups < 3) continue;
        if (!addr.includes('::') && addr.split(':').length < 8 && !addr.includes('.')) continue;
        out.push({ entity: 'IP_ADDRESS', start: m.index, end: m.index + v.length, score: 0.8, reason: 'IPv6 address' });
      }
    }
    return out;
  },
};

/** Finds MAC addresses in colon, dash or Cisco dotted notation. */
export const macRecognizer: Recognizer = {
  entities: ['MAC_ADDRESS'],
  detect({ text }: ScanInput): RawMatch[] {
    const out: RawMatch[] = [];
    MAC_HINT.lastIndex = 0;
    const hint = MAC_HINT.exec(text);
    if (hint === null) return out;
    MAC.lastIndex = Math.max(0, hint.index - 4); // the exec loop starts here
    for (let m = MAC.exec(text); m !== null; m = MAC.exec(text)) {
      const digits = m[0].replace(/[^0-9A-Fa-f]/g, '');
      if (/^0+$/.test(digits) || /^f+$/i.test(digits)) continue;
      out.push({ entity: 'MAC_ADDRESS', start: m.index, end: m.index + m[0].length, score: 0.7, reason: 'MAC address notation' });
    }
    return out;
  },
};
