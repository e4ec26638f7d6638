/** Upstream HTTP through one pooled undici Agent per provider (keep-alive, bounded timeouts). */
import { readFileSync } from 'node:fs';
import { Agent, request, errors as undiciErrors } from 'undici';
import { GatewayError } from '../errors.js';
import type { UpstreamResponse } from './types.js';

/** Timeouts and pool sizing for upstream calls. */
export interface UpstreamTimeouts {
  connectTimeoutMs: number;
  firstByteTimeoutMs: number;
  streamIdleTimeoutMs: number;
  connections: number;
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

/** Sends one POST upstream, mapping transport failures to GatewayErrors (details only internal). */
export async function postJson(
  agent: Agent,
  url: string,
  headers: Record<string, string>,
  body: unknown,
  signal: AbortSignal,
): Promise<UpstreamResponse> {
  try {
    const res = await request(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers },
      body: JSON.stringify(body),
      dispatcher: agent,
      signal,
    });
    return {
      status: res.statusCode,
      headers: res.headers,
      body: res.body,
      dump: () => {
        res.body.destroy();
      },
    };
  } catch (e) {
    throw mapTransportError(e, url);
  }
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
