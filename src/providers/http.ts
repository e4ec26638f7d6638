/** Upstream HTTP through one pooled undici Agent per provider (keep-alive, bounded timeouts). */
import { readFileSync } from 'node:fs';
import { Agent, errors as undiciErrors } from 'undici';
import { GatewayError } from '../errors.js';
import type { UpstreamResponse, UpstreamSignal } from './types.js';

/** Timeouts and pool sizing for upstream calls. */
export interface UpstreamTimeouts {
  connectTimeoutMs: number;
  firstByteTimeoutMs: number;
  streamIdleTimeoutMs: number;
  connections: number;
  /** Largest upstream body read into memory for a non-stream call (bytes); unlimited when absent. */
  maxResponseBytes?: number;
}

/** Creates the pooled dispatcher for one provider. */
export function createAgent(t: UpstreamTimeouts): Agent {
  return new Agent({
    connections: t.connections,
    pipelining: 1,
    keepAliveTimeout: 30_000,
    connect: { timeout: t.connectTimeoutMs },
    headersTimeout: t.firstByteTimeoutMs,
    bodyTimeout: t.streamIdleTimeoutMs,
  });
}

/** Reads the upstream credential from env or a secret file (never from the client). */
export function readCredential(p: { apiKeyEnv?: string; apiKeyFile?: string }, env: Record<string, string | undefined> = process.env): string | undefined {
  if (p.apiKeyFile) {
    const hit = fileCache.get(p.apiKeyFile);
    if (hit && hit.until > Date.now()) return hit.value;
    const value = readFileSync(p.apiKeyFile, 'utf8').trim();
    fileCache.set(p.apiKeyFile, { value, until: Date.now() + 60_000 }); // picks up rotated secret files within a minute
    return value;
  }
  if (p.apiKeyEnv) return env[p.apiKeyEnv];
  return undefined;
}

const fileCache = new Map<string, { value: string; until: number }>();

/**
 * An upstream base URL split once into the origin undici pools connections by and the path
 * prefix of every call (without a trailing slash). Calls go through `agent.request({ origin, path })`
 * rather than undici's top-level `request(url, { dispatcher })`, which parses a `URL` per call: in a
 * loaded gateway that path left undici's request objects alive past young-generation GCs (heap
 * allocation sampling of a bare fastify + undici proxy: 50 MB promoted in 6 s against 13 MB), and
 * promoted garbage is what makes V8 grow the old space.
 */
export interface UpstreamBase {
  origin: string;
  basePath: string;
}

/** Splits a provider's base URL (`http://host:port/prefix`) into origin and path prefix. */
export function upstreamBase(baseUrl: string): UpstreamBase {
  const u = new URL(baseUrl);
  return { origin: u.origin, basePath: u.pathname.replace(/\/+$/, '') };
}

/** The JSON POST of a provider call: origin, path below the base URL, headers (the client's are never among them), body. */
function postOptions(base: UpstreamBase, path: string, headers: Record<string, string>, body: unknown) {
  return {
    origin: base.origin,
    path: base.basePath + path,
    method: 'POST' as const,
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers },
    body: JSON.stringify(body),
  };
}

/** Sends one POST upstream to `base` + `path`, mapping transport failures to GatewayErrors (details only internal). */
export async function postJson(
  agent: Agent,
  base: UpstreamBase,
  path: string,
  headers: Record<string, string>,
  body: unknown,
  signal: UpstreamSignal,
): Promise<UpstreamResponse> {
  try {
    const res = await agent.request({
      ...postOptions(base, path, headers, body),
      // undici takes an EventEmitter-style signal as well as an AbortSignal (see util/abort.ts).
      signal: signal as AbortSignal,
    });
    return {
      status: res.statusCode,
      headers: res.headers,
      body: res.body,
      dump: () => {
        // Destroyed before its end, the body emits an 'error'; without a listener it is uncaught.
        res.body.on('error', () => {});
        res.body.destroy();
      },
    };
  } catch (e) {
    throw mapTransportError(e, base.origin + base.basePath + path);
  }
}

/**
 * A non-stream POST: the whole upstream body read into memory (at most `maxBytes`, or the call
 * fails with PCL_UPSTREAM_BAD_RESPONSE and the connection is dropped), through undici's
 * `dispatch` with a handler of its own. `agent.request` gives the body as a stream: per call a
 * request handler (an AsyncResource), a Readable and its end-of-stream machinery, all to be read
 * back into one buffer here (a bare proxy at one connection: p50 0.212 -> 0.195 ms). Timeouts
 * (the agent's), abort and error mapping are those of `postJson`; `body` still yields the bytes
 * for code that reads any upstream answer as a stream.
 */
export function postJsonBuffered(
  agent: Agent,
  base: UpstreamBase,
  path: string,
  headers: Record<string, string>,
  body: unknown,
  signal: UpstreamSignal,
  maxBytes = Infinity,
  onHeaders?: () => void,
): Promise<UpstreamResponse> {
  const where = base.origin + base.basePath + path;
  return new Promise<UpstreamResponse>((resolve, reject) => {
    if (signal.aborted) return reject(mapTransportError(abortError(signal.reason), where));
    let abort: ((reason?: Error) => void) | undefined;
    let settled = false;
    let status = 0;
    let resHeaders: Record<string, string | string[] | undefined> = {};
    let parts: Buffer[] = [];
    let n = 0;
    const onAbort = () => {
      const e = abortError(signal.reason);
      if (abort) abort(e);
      else fail(e);
    };
    const listen = (on: boolean) => {
      const s = signal as { once?: Function; removeListener?: Function; addEventListener?: Function; removeEventListener?: Function };
      if (typeof s.once === 'function' && typeof s.removeListener === 'function') {
        if (on) s.once.call(signal, 'abort', onAbort);
        else s.removeListener.call(signal, 'abort', onAbort);
      } else if (on) s.addEventListener!.call(signal, 'abort', onAbort, { once: true });
      else s.removeEventListener!.call(signal, 'abort', onAbort);
    };
    const fail = (e: unknown) => {
      if (settled) return;
      settled = true;
      listen(false);
      parts = [];
      reject(mapTransportError(e, where));
    };
    listen(true);
    try {
      agent.dispatch(
        postOptions(base, path, headers, body),
        {
          onConnect(a: (reason?: Error) => void) {
            abort = a;
            if (settled) a(new Error('aborted'));
          },
          onHeaders(statusCode: number, raw: Buffer[]) {
            if (statusCode < 200) return true; // 1xx: the final answer follows
            status = statusCode;
            resHeaders = parseRawHeaders(raw);
            onHeaders?.();
            return true;
          },
          onData(chunk: Buffer) {
            n += chunk.length;
            if (n > maxBytes) {
              const e = bodyOverLimit(maxBytes);
              if (abort) abort(e);
              fail(e);
              return false;
            }
            parts.push(chunk);
            return true;
          },
          onComplete() {
            if (settled) return;
            settled = true;
            listen(false);
            const buf = parts.length === 1 ? parts[0]! : Buffer.concat(parts, n);
            resolve({ status, headers: resHeaders, body: once(buf), bodyBuffer: buf, dump() {} });
          },
          onError(e: Error) {
            fail(e);
          },
        } as unknown as Parameters<Agent['dispatch']>[1],
      );
    } catch (e) {
      fail(e);
    }
  });
}

/** The error of an upstream body over the gateway's limit (`upstream.maxResponseBytes`, or a smaller one for error bodies). */
export function bodyOverLimit(max: number): GatewayError {
  return new GatewayError('PCL_UPSTREAM_BAD_RESPONSE', { internal: `upstream body over ${max} bytes` });
}

async function* once(buf: Buffer): AsyncIterable<Uint8Array> {
  yield buf;
}

/** The reason of an aborted signal as undici reports it (an AbortError whose cause is the reason). */
function abortError(reason: unknown): Error {
  if (reason instanceof GatewayError) return reason;
  return Object.assign(new Error('This operation was aborted'), { name: 'AbortError', code: 'UND_ERR_ABORTED', cause: reason });
}

/** undici's raw header list (`[name, value, …]` as Buffers) as a record of lower-case names. */
function parseRawHeaders(raw: Buffer[]): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const k = raw[i]!.toString('latin1').toLowerCase();
    const v = raw[i + 1]!.toString('latin1');
    const had = out[k];
    if (had === undefined) out[k] = v;
    else if (Array.isArray(had)) had.push(v);
    else out[k] = [had, v];
  }
  return out;
}

/** Maps undici/abort errors to a sanitised GatewayError. */
export function mapTransportError(e: unknown, where: string): GatewayError {
  if (e instanceof GatewayError) return e;
  const err = e as Error & { code?: string };
  const internal = { where, name: err?.name, code: err?.code, message: err?.message };
  if (err instanceof undiciErrors.HeadersTimeoutError || err instanceof undiciErrors.BodyTimeoutError || err?.code === 'UND_ERR_CONNECT_TIMEOUT' || err instanceof undiciErrors.ConnectTimeoutError) {
    return new GatewayError('PCL_UPSTREAM_TIMEOUT', { internal });
  }
  if (err?.name === 'AbortError' || err?.name === 'TimeoutError' || err?.code === 'UND_ERR_ABORTED') {
    const reason = (err as { cause?: unknown }).cause;
    if (reason instanceof GatewayError) return reason;
    return new GatewayError('PCL_UPSTREAM_TIMEOUT', { internal });
  }
  return new GatewayError('PCL_UPSTREAM_UNREACHABLE', { internal });
}
