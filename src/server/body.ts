/** Request body parsing: UTF-8 validation, a nesting-depth limit, then JSON.parse. */
import { isUtf8 } from 'node:buffer';
import { GatewayError } from '../errors.js';

/** Largest nesting depth of a JSON text (linear scan that skips strings). */
export function jsonDepthExceeds(text: string, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 92 /* \ */) i++;
      else if (c === 34 /* " */) inString = false;
    } else if (c === 34) inString = true;
    else if (c === 123 /* { */ || c === 91 /* [ */) {
      if (++depth > max) return true;
    } else if (c === 125 || c === 93) depth--;
  }
  return false;
}

/** Parses a JSON request body, refusing invalid UTF-8, excessive nesting and non-objects. */
export function parseJsonBody(buf: Buffer, maxDepth: number): Record<string, unknown> {
  if (buf.length === 0) throw new GatewayError('PCL_BAD_JSON', { message: 'The request body is empty; a JSON object is required.' });
  if (!isUtf8(buf)) throw new GatewayError('PCL_BAD_UTF8');
  const text = buf.toString('utf8');
  if (jsonDepthExceeds(text, maxDepth)) throw new GatewayError('PCL_TOO_DEEP', { message: `The request body is nested deeper than ${maxDepth} levels.` });
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new GatewayError('PCL_BAD_JSON');
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new GatewayError('PCL_INVALID_REQUEST', { message: 'The request body must be a JSON object.' });
  }
  return value as Record<string, unknown>;
}
