/** Light structural validation of client bodies: wrong types get a clear 400 naming the field. */
import { GatewayError } from '../errors.js';
import type { Api } from '../providers/types.js';
import { isTokenArray } from '../guards/inspect.js';

function bad(param: string, expected: string): never {
  throw new GatewayError('PCL_INVALID_REQUEST', { message: `Invalid type for '${param}': expected ${expected}.`, param });
}

function optional(body: Record<string, unknown>, key: string, type: 'boolean' | 'number' | 'string' | 'object'): void {
  const v = body[key];
  if (v === undefined || v === null) return;
  if (type === 'object' ? typeof v !== 'object' || Array.isArray(v) : typeof v !== type) bad(key, `a${type === 'object' ? 'n' : ''} ${type}`);
}

/**
 * Message content the guards can read: absent, null, a string, or an array of strings and part
 * objects whose `text`, when present, is a string. Anything else (an object, a number) is refused
 * as the providers do, rather than forwarded to a lenient upstream unscanned.
 */
function content(param: string, v: unknown): void {
  if (v === undefined || v === null || typeof v === 'string') return;
  if (!Array.isArray(v)) bad(param, 'a string or an array of content parts');
  for (const [j, p] of v.entries()) {
    if (typeof p === 'string') continue;
    if (!p || typeof p !== 'object' || Array.isArray(p)) bad(`${param}[${j}]`, 'a content part object');
    const text = (p as { text?: unknown }).text;
    if (text !== undefined && typeof text !== 'string') bad(`${param}[${j}].text`, 'a string');
    const inner = (p as { type?: unknown; content?: unknown }).type === 'tool_result' ? (p as { content?: unknown }).content : undefined;
    if (inner !== undefined) content(`${param}[${j}].content`, inner);
  }
}

/** A prompt or embeddings input: a string, token ids, or an array of strings or of token-id arrays. */
function textsOrTokens(param: string, v: unknown): void {
  const ids = (a: unknown[]) => a.length === 0 || isTokenArray(a);
  if (typeof v === 'string') return;
  if (!Array.isArray(v)) bad(param, 'a string or an array');
  if (ids(v)) return;
  for (const [i, x] of v.entries()) {
    if (typeof x === 'string' || (Array.isArray(x) && ids(x))) continue;
    bad(`${param}[${i}]`, 'a string or an array of token ids');
  }
}

/** Checks the fields the gateway relies on; everything else is the provider's business. */
export function validateBody(api: Api, body: Record<string, unknown>): void {
  if (typeof body.model !== 'string' || body.model.length === 0) {
    if (body.model === undefined) throw new GatewayError('PCL_INVALID_REQUEST', { message: "Missing required parameter: 'model'.", param: 'model' });
    bad('model', 'a non-empty string');
  }
  optional(body, 'stream', 'boolean');
  optional(body, 'stream_options', 'object');
  for (const k of ['max_tokens', 'max_completion_tokens', 'max_output_tokens', 'temperature', 'top_p', 'n']) optional(body, k, 'number');
  optional(body, 'user', 'string');
  if (body.tools !== undefined && !Array.isArray(body.tools)) bad('tools', 'an array');
  switch (api) {
    case 'chat':
      if (!Array.isArray(body.messages)) bad('messages', 'an array of messages');
      if (body.messages.length === 0) throw new GatewayError('PCL_INVALID_REQUEST', { message: "'messages' must contain at least one message.", param: 'messages' });
      for (const [i, m] of body.messages.entries()) {
        if (!m || typeof m !== 'object' || Array.isArray(m) || typeof (m as { role?: unknown }).role !== 'string') bad(`messages[${i}]`, 'an object with a string role');
        content(`messages[${i}].content`, (m as { content?: unknown }).content);
      }
      break;
    case 'messages':
      if (!Array.isArray(body.messages)) bad('messages', 'an array of messages');
      if (body.max_tokens === undefined) throw new GatewayError('PCL_INVALID_REQUEST', { message: "Missing required parameter: 'max_tokens'.", param: 'max_tokens' });
      for (const [i, m] of body.messages.entries()) {
        if (!m || typeof m !== 'object' || Array.isArray(m) || typeof (m as { role?: unknown }).role !== 'string') bad(`messages[${i}]`, 'an object with a string role');
        content(`messages[${i}].content`, (m as { content?: unknown }).content);
      }
      content('system', body.system);
      break;
    case 'completions':
      textsOrTokens('prompt', body.prompt);
      optional(body, 'suffix', 'string');
      break;
    case 'embeddings':
      textsOrTokens('input', body.input);
      if (body.stream !== undefined) bad('stream', 'absent (embeddings do not stream)');
      break;
    case 'responses':
      if (body.input !== undefined && typeof body.input !== 'string' && !Array.isArray(body.input)) bad('input', 'a string or an array');
      optional(body, 'instructions', 'string');
      if (Array.isArray(body.input)) {
        for (const [i, it] of body.input.entries()) {
          if (it && typeof it === 'object' && !Array.isArray(it) && 'content' in it) content(`input[${i}].content`, (it as { content?: unknown }).content);
        }
      }
      break;
  }
}
