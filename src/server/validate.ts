/** Light structural validation of client bodies: wrong types get a clear 400 naming the field. */
import { GatewayError } from '../errors.js';
import type { Api } from '../providers/types.js';

function bad(param: string, expected: string): never {
  throw new GatewayError('PCL_INVALID_REQUEST', { message: `Invalid type for '${param}': expected ${expected}.`, param });
}

function optional(body: Record<string, unknown>, key: string, type: 'boolean' | 'number' | 'string' | 'object'): void {
  const v = body[key];
  if (v === undefined || v === null) return;
  if (type === 'object' ? typeof v !== 'object' || Array.isArray(v) : typeof v !== type) bad(key, `a${type === 'object' ? 'n' : ''} ${type}`);
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
      }
      break;
    case 'messages':
      if (!Array.isArray(body.messages)) bad('messages', 'an array of messages');
      if (body.max_tokens === undefined) throw new GatewayError('PCL_INVALID_REQUEST', { message: "Missing required parameter: 'max_tokens'.", param: 'max_tokens' });
      for (const [i, m] of body.messages.entries()) {
        if (!m || typeof m !== 'object' || Array.isArray(m) || typeof (m as { role?: unknown }).role !== 'string') bad(`messages[${i}]`, 'an object with a string role');
      }
      break;
    case 'completions':
      if (typeof body.prompt !== 'string' && !Array.isArray(body.prompt)) bad('prompt', 'a string or an array');
      break;
    case 'embeddings':
      if (typeof body.input !== 'string' && !Array.isArray(body.input)) bad('input', 'a string or an array');
      if (body.stream !== undefined) bad('stream', 'absent (embeddings do not stream)');
      break;
    case 'responses':
      if (body.input !== undefined && typeof body.input !== 'string' && !Array.isArray(body.input)) bad('input', 'a string or an array');
      break;
  }
}
