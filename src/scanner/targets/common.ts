/** Helpers shared by the target adapters. */
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import type { ChatReply, GuardDecision, RawRequest, RawResponse } from '../types.js';
import type { HttpResult, Transport } from './transport.js';

/** Settings common to every target. */
export interface TargetOptions {
  /** The URL given with `--target`. */
  url: string;
  model?: string;
  /** The API key (already read from the environment). */
  apiKey?: string;
  /** Extra headers (already expanded from the environment). */
  headers?: Record<string, string>;
  transport: Transport;
}

/** Parses an SSE body into its events (data + event name). */
export function parseSse(body: string): EventSourceMessage[] {
  const events: EventSourceMessage[] = [];
  const parser = createParser({ onEvent: (e) => events.push(e) });
  parser.feed(body);
  parser.feed('\n\n');
  return events;
}

/** Reads the gateway's debug headers, when present. */
export function guardFromHeaders(h: Record<string, string>): GuardDecision | undefined {
  const name = h['x-portcullis-guard'];
  const action = h['x-portcullis-action'];
  if (!name && !action) return undefined;
  return { name: name ?? 'unknown', action: action ?? 'unknown' };
}

/** Builds the reply skeleton from an HTTP result (status, headers, timing, error). */
export function baseReply(r: HttpResult, streamed: boolean): ChatReply {
  const ok = r.status >= 200 && r.status < 300;
  const reply: ChatReply = {
    status: r.status,
    text: '',
    toolCalls: [],
    headers: r.headers,
    latencyMs: r.latencyMs,
    attempts: r.attempts,
    streamed,
  };
  if (!ok) reply.error = r.error ?? (r.body.slice(0, 500) || `HTTP ${r.status}`);
  const guard = guardFromHeaders(r.headers);
  if (guard) reply.guard = guard;
  return reply;
}

/** Joins a base URL and a path without doubling slashes. */
export function joinUrl(base: string, path: string): string {
  return base.replace(/\/+$/, '') + '/' + path.replace(/^\/+/, '');
}

/** Sends a raw request (no retries) relative to `base`; used by API-level probes. */
export async function sendRaw(transport: Transport, base: string, authHeaders: Record<string, string>, req: RawRequest, signal?: AbortSignal): Promise<RawResponse> {
  const headers: Record<string, string> = { ...(req.noAuth ? {} : authHeaders), ...(req.headers ?? {}) };
  if (req.body !== undefined && !Object.keys(headers).some((k) => k.toLowerCase() === 'content-type')) headers['content-type'] = 'application/json';
  const r = await transport.send(joinUrl(base, req.path), { method: req.method, headers, body: req.body }, { retry: false, signal });
  return { status: r.status, headers: r.headers, body: r.body, latencyMs: r.latencyMs, ...(r.error ? { error: r.error } : {}) };
}

/** Safe JSON parse returning undefined on failure. */
export function tryJson(s: string): unknown {
  try {
    return JSON.parse(s) as unknown;
  } catch {
    return undefined;
  }
}
