/**
 * Batch input under the request guards and the policy: every line of a batch's input file is a
 * request the upstream will run, so each goes through the checks a live request of its API gets
 * (model and tool authorization, then the request-stage guards). A line that would be refused
 * live refuses the batch; lines the guards rewrite (redaction) make a new input file.
 */
import { GatewayError } from '../errors.js';
import type { Api } from '../providers/types.js';
import { parseJsonBody } from './body.js';

/** Batch line URLs and the API each one is. */
const BATCH_APIS: Record<string, Api> = {
  '/v1/chat/completions': 'chat',
  '/v1/completions': 'completions',
  '/v1/embeddings': 'embeddings',
  '/v1/responses': 'responses',
};

/** What the caller's checks make of one line's body. */
export interface BatchLineCheck {
  /** Throws the refusal of the line's request (policy, guards); returns the body to run (the same object when unchanged). */
  (api: Api, body: Record<string, unknown>): Promise<Record<string, unknown>>;
}

/** The guarded input: its lines, and whether any changed. */
export interface GuardedBatch {
  text: string;
  changed: boolean;
  lines: number;
}

/** Names a line in a refusal: its number and `custom_id`. */
function lineName(n: number, customId: unknown): string {
  return `line ${n}${typeof customId === 'string' ? ` (custom_id ${JSON.stringify(customId.slice(0, 64))})` : ''}`;
}

/**
 * Checks every line of a batch input file (JSON lines of `{custom_id, method, url, body}`). A line
 * that is not such an object, names a URL the gateway does not guard, or is refused by `check`
 * refuses the whole batch with the same status the live request would get and a message naming
 * the line (never its content).
 */
export async function guardBatchInput(file: Buffer, fileId: string, maxDepth: number, check: BatchLineCheck): Promise<GuardedBatch> {
  const lines: string[] = [];
  let changed = false;
  let count = 0;
  for (let at = 0, i = 0; at <= file.length; i++) {
    let end = file.indexOf(0x0a, at);
    if (end < 0) end = file.length;
    let bytes = file.subarray(at, end);
    at = end + 1;
    if (bytes.length > 0 && bytes[bytes.length - 1] === 0x0d) bytes = bytes.subarray(0, bytes.length - 1);
    const raw = bytes.toString('utf8');
    lines.push(raw);
    if (raw.trim() === '') continue;
    count++;
    const n = i + 1;
    let line: Record<string, unknown>;
    try {
      // As a live request body is parsed (valid UTF-8, an object, nested no deeper than the body
      // limit allows: one level more for the line around the body).
      line = parseJsonBody(bytes, maxDepth + 1);
    } catch (e) {
      const why = e instanceof GatewayError ? e.message.replace(/^The request body/, 'It').replace(/\.$/, '') : 'It is not JSON';
      throw new GatewayError('PCL_INVALID_REQUEST', { message: `Line ${n} of batch input file ${fileId} is not a JSON request object (${why}).`, param: 'input_file_id' });
    }
    if (!line.body || typeof line.body !== 'object' || Array.isArray(line.body)) {
      throw new GatewayError('PCL_INVALID_REQUEST', { message: `Line ${n} of batch input file ${fileId} is not a request object with a JSON body.`, param: 'input_file_id' });
    }
    const api = typeof line.url === 'string' ? BATCH_APIS[line.url] : undefined;
    if (!api) {
      throw new GatewayError('PCL_INVALID_REQUEST', { message: `The ${lineName(n, line.custom_id)} of batch input file ${fileId} names a URL the gateway cannot check (expected one of ${Object.keys(BATCH_APIS).join(', ')}).`, param: 'input_file_id' });
    }
    const body = line.body as Record<string, unknown>;
    let out: Record<string, unknown>;
    try {
      out = await check(api, body);
    } catch (e) {
      if (!(e instanceof GatewayError)) throw e;
      // The live refusal, its status and code kept, its message naming the line.
      throw new GatewayError(e.code, {
        status: e.status,
        message: `The ${lineName(n, line.custom_id)} of batch input file ${fileId} was refused: ${e.message}`,
        param: 'input_file_id',
        ...(e.details ? { details: e.details } : {}),
        headers: e.headers,
        ...(e.internal !== undefined ? { internal: { line: n, detail: e.internal } } : { internal: { line: n } }),
      });
    }
    if (out !== body) {
      lines[i] = JSON.stringify({ ...line, body: out });
      changed = true;
    }
  }
  return { text: lines.join('\n'), changed, lines: count };
}
