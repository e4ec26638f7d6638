/**
 * The proxy: identify → validate → route → authorize → admit → request guards → upstream
 * → response/stream guards → settle/audit. Every step is a plain call on the context.
 */
import type { OutgoingHttpHeaders } from 'node:http';
import { once } from 'node:events';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { GatewayError } from '../errors.js';
import { credentialFrom, type AuthResult, type Identity } from '../identity/service.js';
import { peerOf } from '../identity/mtls.js';
import type { Principal } from '../identity/types.js';
import { mapTransportError } from '../providers/http.js';
import type { Router } from '../providers/router.js';
import type { Api, UpstreamResponse } from '../providers/types.js';
import type { Config } from '../config/schema.js';
import type { AuditRequestState } from '../audit/event.js';
import type { ProxySteps, RequestContext, SseEvent, StreamReask, TokenUsage } from './context.js';
import { readBounded, upstreamStatusError } from './upstream-errors.js';
import { addUsage, inputEstimate, isTerminalEvent, OutputMeter, usageFromBody, usageFromEvent } from './usage.js';
import { validateBody } from './validate.js';
import { jsonDepthExceeds } from './body.js';
import { phase } from '../tracing/phases.js';
import { UpstreamAbort } from '../util/abort.js';
import type { AfterResponse } from './after-response.js';

/** What the proxy needs from the composition root. */
export interface ProxyDeps {
  config: Config;
  identity: Identity;
  router: Router;
  steps: ProxySteps;
  log: { warn(o: object, m: string): void; error(o: object, m: string): void };
  /** Earlier requests' post-response work runs while this one waits on its upstream (after-response.ts). */
  afterResponse?: Pick<AfterResponse, 'kick'>;
}

/**
 * Authenticates the caller or throws: 401 (generic) for a missing/invalid credential, 429 with
 * Retry-After when the client address or key id has too many recent failures. With mTLS
 * configured, a required client certificate is checked first; a presented credential (API key
 * or JWT) identifies the caller, otherwise the certificate's SAN URI does.
 */
export function identify(deps: Pick<ProxyDeps, 'identity'>, req: FastifyRequest): Principal | Promise<Principal> {
  const cred = credentialFrom(req.headers);
  const peer = deps.identity.authenticatePeer ? peerOf(req.raw.socket) : null;
  if (deps.identity.clientCertRequired && !peer?.authorized) {
    return deps.identity.authenticatePeer!(peer, { ip: req.ip }).then((r) => accepted(req, r.ok ? { ok: false, reason: 'client_cert', detail: 'certificate not authorized' } : r));
  }
  if (!cred && peer && deps.identity.authenticatePeer) return deps.identity.authenticatePeer(peer, { ip: req.ip }).then((r) => accepted(req, r));
  if (!cred) {
    throw new GatewayError('PCL_UNAUTHENTICATED', { message: 'Missing API key. Send it as `Authorization: Bearer <key>` or `x-api-key`.', internal: { authFailure: 'missing' } });
  }
  // A cached key verifies synchronously: no promise on the request's path.
  const r = deps.identity.authenticate(cred, { ip: req.ip });
  return r instanceof Promise ? r.then((x) => accepted(req, x)) : accepted(req, r);
}

/** The principal of a successful authentication, or the 401/429 of a failed one. */
function accepted(req: FastifyRequest, r: AuthResult<Principal>): Principal {
  if (!r.ok) {
    if (req.pcl) req.pcl.state.authFailure = r.reason;
    if (r.reason === 'rate_limited') throw new GatewayError('PCL_RATE_LIMITED', { message: 'Too many failed authentication attempts.', headers: { 'retry-after': String(r.retryAfterS ?? 60) }, internal: { authFailure: r.reason } });
    throw new GatewayError('PCL_UNAUTHENTICATED', { internal: { authFailure: r.reason, ...(r.detail ? { detail: r.detail } : {}) } });
  }
  if (r.principal.rotated && req.pcl) req.pcl.responseHeaders['x-portcullis-key-rotated'] = 'true';
  return r.principal;
}

/** The stream error event in each API's own format. */
export function streamErrorEvent(api: Api, err: GatewayError, requestId: string): SseEvent {
  const message = `${err.message} (request id: ${requestId})`;
  if (api === 'messages') return { event: 'error', data: JSON.stringify({ type: 'error', error: { type: err.status >= 500 ? 'api_error' : err.type, message } }) };
  if (api === 'responses') return { event: 'error', data: JSON.stringify({ type: 'error', code: err.publicCode, message, param: null }) };
  return { data: JSON.stringify({ error: { message, type: err.type, param: null, code: err.publicCode } }) };
}

/** Serialises one SSE event. */
export function formatSse(ev: SseEvent): string {
  return (ev.event ? `event: ${ev.event}\n` : '') + `data: ${ev.data}\n\n`;
}

/** Handles one proxied API call. */
export async function handleProxy(deps: ProxyDeps, api: Api, req: FastifyRequest, reply: FastifyReply): Promise<unknown> {
  const ctx = req.pcl;
  ctx.api = api;
  // Steps that finish synchronously (the usual case: cached key, in-memory limits) are not awaited.
  const who = phase(ctx, 'identify', () => identify(deps, req));
  ctx.principal = who instanceof Promise ? await who : who;
  const body = req.body as Record<string, unknown>;
  if (!body || typeof body !== 'object') throw new GatewayError('PCL_INVALID_REQUEST', { message: 'The request body must be a JSON object.' });
  validateBody(api, body);
  const model = body.model as string;
  ctx.model = model;
  const route = deps.router.resolve(model);
  if (!route) throw new GatewayError('PCL_MODEL_NOT_FOUND', { message: `The model '${model.slice(0, 100)}' does not exist or is not routed by this gateway.`, param: 'model' });
  if (!route.provider.apis.has(api)) throw new GatewayError('PCL_MODEL_UNSUPPORTED_ROUTE', { param: 'model' });
  ctx.provider = route.provider;
  ctx.upstreamModel = route.upstreamModel;
  ctx.stream = body.stream === true;
  ctx.body = body;
  // The body's `user` names the end user only when the credential does not: a user from a verified
  // JWT (or bound to the key) is never replaced by what the client writes (per-user limits, audit).
  if (ctx.principal && ctx.principal.user === undefined && typeof body.user === 'string') ctx.principal = { ...ctx.principal, user: body.user.slice(0, 256) };

  let step = phase(ctx, 'authorize', () => deps.steps.authorize?.(ctx));
  if (step) await step;
  step = phase(ctx, 'admit', () => deps.steps.admit?.(ctx));
  if (step) await step;
  step = phase(ctx, 'request_guards', () => deps.steps.requestGuards?.(ctx));
  if (step) await step;
  // A client that left while the steps ran (a slow guard or judge, an async admission) gets no
  // upstream call: its settlement already ran at the close and released what was reserved.
  if (ctx.aborted) throw new GatewayError('PCL_CLIENT_CLOSED');

  const upstreamBody: Record<string, unknown> = { ...ctx.body, model: route.upstreamModel };
  let clientWantsUsage = true;
  if (ctx.stream && (api === 'chat' || api === 'completions')) {
    const so = (ctx.body.stream_options ?? {}) as Record<string, unknown>;
    clientWantsUsage = so.include_usage === true;
    upstreamBody.stream_options = { ...so, include_usage: true }; // settle budgets on real usage
  }

  const ac = new UpstreamAbort();
  ctx.upstreamAbort = ac;
  const onClose = () => {
    if (!reply.raw.writableFinished) {
      ctx.aborted = true;
      ac.abort(new GatewayError('PCL_UPSTREAM_ERROR', { internal: 'client closed the connection' }));
    }
  };
  reply.raw.once('close', onClose);
  const total = setTimeout(() => ac.abort(new GatewayError('PCL_UPSTREAM_TIMEOUT', { internal: 'total timeout' })), deps.config.upstream.totalTimeoutMs);
  total.unref();

  const t0 = performance.now();
  let res: UpstreamResponse;
  try {
    // A non-stream call resolves with the whole body; its headers' arrival is the time to first byte
    // (and tells the limits that the upstream was reached, should the body then fail).
    const onHeaders = () => {
      ctx.ttfbMs = performance.now() - t0;
    };
    ctx.upstreamSent = true;
    const sent = phase(ctx, 'upstream', () => route.provider.send({ api, body: upstreamBody, stream: ctx.stream, signal: ac, requestId: ctx.requestId, onHeaders }));
    // Earlier requests' bookkeeping overlaps this wait; a stream's runs after its first event is
    // out instead (relayStream), so it never delays a first byte.
    if (!ctx.stream) deps.afterResponse?.kick();
    res = await sent;
  } catch (e) {
    // Transport error, timeout or client abort: the wait was the upstream's, not the gateway's.
    ctx.upstreamMs = performance.now() - t0;
    clearTimeout(total);
    throw mapTransportError(e, route.provider.name);
  }
  ctx.ttfbMs ??= performance.now() - t0;

  if (res.status >= 400) {
    clearTimeout(total);
    try {
      throw await upstreamStatusError(res);
    } finally {
      ctx.upstreamMs = performance.now() - t0; // the error body's read included
    }
  }

  const ctype = String(res.headers['content-type'] ?? '');
  if (ctx.stream && ctype.includes('text/event-stream')) {
    return relayStream(deps, ctx, res, reply, ac, total, clientWantsUsage, upstreamBody, t0);
  }

  let buf: Buffer;
  try {
    buf = res.bodyBuffer ?? (await readBounded(res.body, deps.config.upstream.maxResponseBytes));
  } catch (e) {
    throw mapTransportError(e, route.provider.name);
  } finally {
    clearTimeout(total);
    ctx.upstreamMs = performance.now() - t0;
  }
  let parsed: Record<string, unknown>;
  const raw = buf.toString('utf8');
  try {
    // Nesting deeper than any API answer has is refused before parsing: the guards' copy and the
    // re-serialisation of such a body overflowed the stack (a 500, as if the gateway had failed).
    if (jsonDepthExceeds(buf, UPSTREAM_MAX_JSON_DEPTH)) throw new Error('nested too deep');
    parsed = JSON.parse(raw);
    // An object, as every API answers: an array or a scalar is no answer (it was relayed as a 200).
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('not an object');
  } catch {
    throw new GatewayError('PCL_UPSTREAM_BAD_RESPONSE', { internal: { upstreamStatus: res.status, bodyPrefix: buf.subarray(0, 200).toString('utf8') } });
  }
  ctx.usage = usageFromBody(api, parsed);
  if (!ctx.usage) (ctx.outputMeter = new OutputMeter()).body(parsed); // settled on an estimate (limits)
  const checked = deps.steps.responseGuards?.(ctx, parsed);
  const out = checked === undefined ? parsed : checked instanceof Promise ? await checked : checked;
  ctx.status = res.status;
  reply.headers(ctx.responseHeaders);
  reply.code(res.status).header('content-type', 'application/json; charset=utf-8');
  // With guards off, the response steps that remain (object ownership, logprob rounding) copy what
  // they change: the same object back means unchanged, and the upstream's text goes out as it came
  // (it parsed as JSON) instead of being serialised again. With guards on it is always re-serialised.
  const text = out === parsed && !deps.config.guards.enabled ? raw : JSON.stringify(out);
  (ctx.state.audit as AuditRequestState | undefined)?.tap?.body(out, text); // output hash for the audit trail
  return reply.send(text);
}

async function relayStream(
  deps: ProxyDeps,
  ctx: RequestContext,
  res: UpstreamResponse,
  reply: FastifyReply,
  ac: UpstreamAbort,
  total: NodeJS.Timeout,
  clientWantsUsage: boolean,
  upstreamBody: Record<string, unknown>,
  t0: number,
): Promise<unknown> {
  const api = ctx.api;
  let transform = deps.steps.streamGuards?.(ctx);
  ctx.status = 200;
  // The events go straight to the response (fastify hands it over: `hijack`), not through a
  // PassThrough that fastify pipes into it: per stream that was a second stream object, its pipe
  // and end-of-stream listeners, all kept for the stream's life. The request's 'close' handlers
  // (finish, abort) are on the response itself and run as before.
  reply.hijack();
  const out = reply.raw;
  const headers: OutgoingHttpHeaders = {};
  for (const [k, v] of Object.entries(reply.getHeaders())) if (v !== undefined) headers[k] = v;
  out.writeHead(200, { ...headers, ...ctx.responseHeaders, 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', 'x-accel-buffering': 'no' });

  // TTFB of a stream is the time to its first event written to the client (after stream guards),
  // not to the upstream's headers: until then `ctx.ttfbMs` keeps the headers' time (the limits
  // read it as "the upstream was reached"), and `streamTtfb` tells the metrics it is not a TTFB yet.
  ctx.state.streamTtfb = 'pending';
  let pending: Array<{ ev: SseEvent; parsed: unknown }> = [];
  let terminal = false;
  const parser = createParser({
    onEvent(msg: EventSourceMessage) {
      let parsed: unknown = undefined;
      if (msg.data !== '[DONE]') {
        try {
          parsed = JSON.parse(msg.data);
        } catch {
          parsed = undefined;
        }
      }
      pending.push({ ev: msg.event ? { event: msg.event, data: msg.data } : { data: msg.data }, parsed });
    },
    // One event (or an unterminated line) may hold at most what a whole non-stream body may: without
    // a bound, an upstream that never ended a `data:` line was buffered until the timeouts (~0.5 GB
    // from one request). Other parse errors (unknown fields) are ignored, as before.
    onError(err) {
      if (err.type === 'max-buffer-size-exceeded') overflow = true;
    },
    maxBufferSize: deps.config.upstream.maxResponseBytes,
  });
  let overflow = false;

  // Everything the upstream sends is counted, what guards hold back included: it was generated.
  const meter = (ctx.outputMeter = new OutputMeter());
  let wrote = false;
  /** Tokens of a first upstream call that was blocked and re-asked (added to the second's). */
  let carried: TokenUsage | undefined;
  /** Whether a re-asked second upstream call was made (its usage, if any, is then in `ctx.usage`). */
  let secondCall = false;
  /** Input tokens of one upstream call that reported none: the admission's estimate, else the body's length / 4. */

  /** Sends events; `parsed[i]`, when given, is JSON.parse(evs[i].data) (events relayed unchanged). */
  const write = async (evs: SseEvent[], parsed?: unknown[]) => {
    if (evs.length === 0 || out.destroyed) return;
    const first = !wrote;
    wrote = true;
    const tap = (ctx.state.audit as AuditRequestState | undefined)?.tap; // output hash for the audit trail
    if (tap) for (let i = 0; i < evs.length; i++) tap.event(evs[i]!.data, parsed?.[i]);
    const ok = out.write(evs.map(formatSse).join(''));
    if (first) {
      ctx.ttfbMs = performance.now() - t0;
      ctx.state.streamTtfb = 'first_event';
      deps.afterResponse?.kick(); // the first byte is out: the gaps between events are idle
    }
    if (!ok && !out.destroyed) await Promise.race([once(out, 'drain'), once(out, 'close')]);
  };

  let failure: GatewayError | undefined;
  try {
    for (;;) {
      const decoder = new TextDecoder('utf-8');
      let reask: StreamReask | undefined;
      for await (const chunk of res.body) {
        parser.feed(decoder.decode(chunk, { stream: true }));
        if (overflow) throw new GatewayError('PCL_UPSTREAM_BAD_RESPONSE', { internal: `a stream event over upstream.maxResponseBytes (${deps.config.upstream.maxResponseBytes})` });
        const batch = pending;
        pending = [];
        // Everything parsed from one upstream chunk goes out in one socket write (no added delay).
        const outgoing: SseEvent[] = [];
        // Without stream transforms every outgoing event is an upstream one, already parsed.
        const outParsed: unknown[] | undefined = transform ? undefined : [];
        for (const { ev, parsed } of batch) {
          ctx.usage = usageFromEvent(api, parsed, ctx.usage);
          meter.event(parsed);
          if (isTerminalEvent(api, ev.data, parsed)) terminal = true;
          // Usage-only chunk the gateway asked for on the client's behalf: keep it to ourselves.
          if (!clientWantsUsage && (parsed as any)?.usage && Array.isArray((parsed as any).choices) && (parsed as any).choices.length === 0) continue;
          if (transform) outgoing.push(...(await transform.onEvent(ev, parsed)));
          else {
            outgoing.push(ev);
            outParsed!.push(parsed);
          }
        }
        reask = transform?.reaskPending?.();
        if (reask && outgoing.length === 0) break;
        await write(outgoing, outParsed);
        if (reask) break;
        if (out.destroyed) break;
      }
      if (!reask) break;
      // Blocked before anything was released (onBlock: reask): stop the first call and, when
      // nothing reached the client, relay one re-asked call through fresh transforms instead.
      res.dump();
      await transform!.end();
      transform = undefined;
      const u = ctx.usage;
      carried = terminal && u ? u : { inputTokens: u?.inputTokens || inputEstimate(ctx, upstreamBody), outputTokens: Math.max(u?.outputTokens ?? 0, Math.ceil(reask.outputChars / 4)), cachedInputTokens: u?.cachedInputTokens ?? 0 };
      const next = !wrote && !ctx.aborted && deps.steps.reaskStream ? await deps.steps.reaskStream(ctx, upstreamBody, ac) : undefined;
      if (!next) {
        await write(reask.events);
        terminal = true;
        break;
      }
      res = next;
      secondCall = true;
      ctx.usage = undefined;
      terminal = false;
      pending = [];
      parser.reset({ consume: false });
      transform = deps.steps.streamGuards?.(ctx);
    }
    if (terminal) ctx.outputComplete = true;
    if (!terminal && !ctx.aborted) throw new GatewayError('PCL_UPSTREAM_BAD_RESPONSE', { message: 'The upstream stream ended early.', internal: 'truncated stream' });
    if (transform) await write(await transform.end());
  } catch (e) {
    // An exception of the gateway's own code on what the upstream sent (a field of the wrong type)
    // is a malformed response, not an unreachable upstream.
    failure = e instanceof GatewayError ? e : isDataError(e) ? new GatewayError('PCL_UPSTREAM_BAD_RESPONSE', { internal: { error: String((e as Error).stack ?? e) } }) : mapTransportError(e, ctx.provider?.name ?? 'upstream');
    if (ctx.aborted) {
      ctx.errorCode = 'client_aborted';
    } else {
      ctx.errorCode = failure.publicCode;
      deps.log.warn({ reqId: ctx.requestId, code: failure.code, detail: failure.internal }, 'stream failed');
      if (!out.destroyed) out.write(formatSse(streamErrorEvent(api, failure, ctx.requestId)));
    }
    res.dump();
  } finally {
    clearTimeout(total);
    if (carried) {
      // `carried` holds the first call's usage (reported or estimated). Without a second call that is
      // all; with one, its reported usage is added — or, when it reported none, its input estimate,
      // and its output is left to the meter (both calls' output counted): the settlement estimates.
      const u = secondCall ? ctx.usage : undefined;
      if (u) ctx.usage = addUsage(carried, u);
      else if (secondCall) {
        ctx.usage = { inputTokens: carried.inputTokens + inputEstimate(ctx, upstreamBody), outputTokens: carried.outputTokens, cachedInputTokens: carried.cachedInputTokens ?? 0 };
        ctx.outputComplete = undefined;
      } else ctx.usage = carried;
    }
    ctx.upstreamMs = performance.now() - t0;
    if (!out.destroyed) out.end();
    if (!ac.aborted && failure) ac.abort();
  }
  return reply;
}

/** Deepest nesting accepted in an upstream JSON body (API answers nest a few levels; tool arguments are strings). */
const UPSTREAM_MAX_JSON_DEPTH = 512;

/** Errors JavaScript raises on data of an unexpected shape (not transport failures). */
function isDataError(e: unknown): boolean {
  return e instanceof TypeError || e instanceof RangeError || e instanceof SyntaxError;
}
