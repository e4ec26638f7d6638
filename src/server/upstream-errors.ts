/** Turns an upstream error response into a sanitised client error; the detail is logged only. */
import { Readable } from 'node:stream';
import { GatewayError } from '../errors.js';
import { bodyOverLimit } from '../providers/http.js';
import type { UpstreamResponse } from '../providers/types.js';

/** Reads at most `max` bytes of a body; throws PCL_UPSTREAM_BAD_RESPONSE above it. */
export function readBounded(body: AsyncIterable<Uint8Array>, max: number): Promise<Buffer> {
  return isReadable(body) ? readStream(body, max) : readIterable(body, max);
}

async function readIterable(body: AsyncIterable<Uint8Array>, max: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let n = 0;
  for await (const chunk of body) {
    n += chunk.length;
    if (n > max) throw bodyOverLimit(max);
    parts.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
  }
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
}

function isReadable(b: unknown): b is Readable {
  return b instanceof Readable;
}

/**
 * A node stream (undici's response bodies) read through its events: what `for await` does for
 * a body, without an async iterator, its end-of-stream watcher and a promise per chunk (about a
 * tenth of the gateway's own time on a request at one connection). Errors and a close before
 * 'end' reject as the iterator would; a body over `max` is destroyed.
 */
function readStream(body: Readable, max: number): Promise<Buffer> {
  return new Promise<Buffer>((resolve, reject) => {
    if (body.errored) return reject(body.errored);
    if (body.destroyed) return reject(prematureClose());
    const parts: Buffer[] = [];
    let n = 0;
    const onData = (chunk: Uint8Array) => {
      n += chunk.length;
      if (n > max) {
        cleanup();
        // Destroyed before its end, an undici body emits an 'error' (RequestAbortedError): with no
        // listener left that was an uncaught exception, and the process went down (a streamed
        // request whose upstream sent an error page or a body over the limit was enough).
        body.on('error', () => {});
        body.destroy();
        reject(bodyOverLimit(max));
        return;
      }
      parts.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    };
    const onEnd = () => {
      cleanup();
      resolve(parts.length === 1 ? parts[0]! : Buffer.concat(parts, n));
    };
    const onError = (e: Error) => {
      cleanup();
      reject(e);
    };
    const onClose = () => {
      cleanup();
      reject(body.errored ?? prematureClose());
    };
    const cleanup = () => {
      body.off('data', onData);
      body.off('end', onEnd);
      body.off('error', onError);
      body.off('close', onClose);
    };
    body.on('data', onData);
    body.on('end', onEnd);
    body.on('error', onError);
    body.on('close', onClose);
  });
}

function prematureClose(): Error {
  return Object.assign(new Error('Premature close'), { code: 'ERR_STREAM_PREMATURE_CLOSE' });
}

function header(h: Record<string, string | string[] | undefined>, name: string): string | undefined {
  const v = h[name];
  return Array.isArray(v) ? v[0] : v;
}

/**
 * Maps an upstream status to a client error. 4xx that describe the client's request are
 * relayed with a generic message; auth/config problems of the gateway itself become 502.
 */
export function mapUpstreamStatus(status: number, headers: Record<string, string | string[] | undefined>, bodyText: string): GatewayError {
  const internal = { upstreamStatus: status, upstreamBody: bodyText.slice(0, 2000) };
  switch (status) {
    case 400:
      return new GatewayError('PCL_INVALID_REQUEST', { message: 'The upstream provider rejected the request as invalid.', internal });
    case 404:
      return new GatewayError('PCL_MODEL_NOT_FOUND', { message: 'The upstream provider does not know this model or resource.', internal });
    case 409:
    case 422:
      return new GatewayError('PCL_INVALID_REQUEST', { status, message: 'The upstream provider could not process the request.', internal });
    case 413:
      return new GatewayError('PCL_BODY_TOO_LARGE', { message: 'The upstream provider refused the request as too large.', internal });
    case 429: {
      const ra = header(headers, 'retry-after');
      return new GatewayError('PCL_RATE_LIMITED', {
        message: 'The upstream provider is rate limiting requests; retry later.',
        headers: ra && /^\d{1,6}$/.test(ra) ? { 'retry-after': ra } : {},
        internal,
      });
    }
    case 408:
    case 504:
      return new GatewayError('PCL_UPSTREAM_TIMEOUT', { internal });
    case 503:
    case 529:
      return new GatewayError('PCL_UPSTREAM_ERROR', { status: 503, message: 'The upstream provider is overloaded; retry later.', internal });
    default:
      return new GatewayError('PCL_UPSTREAM_ERROR', { internal });
  }
}

/** The client error for an upstream error response, reading at most 64 KiB of its body for the log. */
export async function upstreamStatusError(res: UpstreamResponse): Promise<GatewayError> {
  let text = '';
  try {
    text = (await readBounded(res.body, 64 * 1024)).toString('utf8');
  } catch {
    res.dump();
  }
  return mapUpstreamStatus(res.status, res.headers, text);
}
