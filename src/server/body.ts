/** Request body parsing: UTF-8 validation, a nesting-depth limit, then JSON.parse. */
import { isUtf8 } from 'node:buffer';
import { GatewayError } from '../errors.js';

const OPEN_OBJECT = 0x7b; // {
const OPEN_ARRAY = 0x5b; // [
const CLOSE_OBJECT = 0x7d; // }
const CLOSE_ARRAY = 0x5d; // ]
const QUOTE = 0x22; // "
const BACKSLASH = 0x5c; // \

/**
 * Whether a JSON text (UTF-8 bytes) nests deeper than `max`. A text with at most `max` opening
 * brackets cannot (counted with native `indexOf`); otherwise one linear scan over the bytes that
 * skips strings. UTF-8 continuation bytes are ≥ 0x80, so they never look like ASCII punctuation.
 */
export function jsonDepthExceeds(buf: Uint8Array, max: number): boolean {
  const b = Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  let opening = 0;
  for (let i = b.indexOf(OPEN_OBJECT); i !== -1 && opening <= max; i = b.indexOf(OPEN_OBJECT, i + 1)) opening++;
  for (let i = b.indexOf(OPEN_ARRAY); i !== -1 && opening <= max; i = b.indexOf(OPEN_ARRAY, i + 1)) opening++;
  if (opening <= max) return false;
  let depth = 0;
  const n = b.length;
  for (let i = 0; i < n; i++) {
    const c = b[i]!;
    if (c === QUOTE) {
      for (i++; i < n; i++) {
        const d = b[i]!;
        if (d === BACKSLASH) i++;
        else if (d === QUOTE) break;
      }
    } else if (c === OPEN_OBJECT || c === OPEN_ARRAY) {
      if (++depth > max) return true;
    } else if (c === CLOSE_OBJECT || c === CLOSE_ARRAY) depth--;
  }
  return false;
}

/**
 * Refuses (415) a JSON body the gateway would misread: compressed (`Content-Encoding` other than
 * identity) or declared in a charset other than UTF-8 — with a message saying so, rather than a
 * misleading "not valid UTF-8 / JSON".
 */
export function checkJsonEncoding(headers: Record<string, string | string[] | undefined>): void {
  const enc = headers['content-encoding'] === undefined ? '' : String(headers['content-encoding']).trim();
  if (enc !== '' && enc.toLowerCase() !== 'identity') {
    throw new GatewayError('PCL_BAD_CONTENT_TYPE', { message: `Content-Encoding '${enc.slice(0, 40).replace(/[^\w.+-]/g, '')}' is not supported: send the request body uncompressed.` });
  }
  const charset = /;\s*charset\s*=\s*"?([^";\s]+)/i.exec(String(headers['content-type'] ?? ''))?.[1]?.toLowerCase();
  if (charset !== undefined && charset !== 'utf-8' && charset !== 'utf8') {
    throw new GatewayError('PCL_BAD_CONTENT_TYPE', { message: `The request body must be UTF-8 JSON (charset ${charset.slice(0, 40).replace(/[^\w.+-]/g, '')} is not supported).` });
  }
}

/** A UTF-8 byte order mark, which RFC 8259 lets a parser ignore. */
const BOM = Buffer.from([0xef, 0xbb, 0xbf]);

/** Parses a JSON request body, refusing invalid UTF-8, excessive nesting and non-objects (a leading byte order mark is ignored). */
export function parseJsonBody(buf: Buffer, maxDepth: number): Record<string, unknown> {
  if (buf.length >= 3 && buf[0] === BOM[0] && buf[1] === BOM[1] && buf[2] === BOM[2]) buf = buf.subarray(3);
  if (buf.length === 0) throw new GatewayError('PCL_BAD_JSON', { message: 'The request body is empty; a JSON object is required.' });
  if (!isUtf8(buf)) throw new GatewayError('PCL_BAD_UTF8');
  if (jsonDepthExceeds(buf, maxDepth)) throw new GatewayError('PCL_TOO_DEEP', { message: `The request body is nested deeper than ${maxDepth} levels.` });
  let value: unknown;
  try {
    value = JSON.parse(buf.toString('utf8'));
  } catch {
    throw new GatewayError('PCL_BAD_JSON');
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new GatewayError('PCL_INVALID_REQUEST', { message: 'The request body must be a JSON object.' });
  }
  return value as Record<string, unknown>;
}
