/** The fastify application: body parsing, request context, routes, error mapping, request logs. */
import { randomUUID } from 'node:crypto';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { GatewayError } from '../errors.js';
import type { Api } from '../providers/types.js';
import { checkJsonEncoding, parseJsonBody } from './body.js';
import type { RequestContext } from './context.js';
import { errorEnvelope, toGatewayError } from './errors.js';
import { handleProxy, identify, type ProxyDeps } from './proxy.js';
import type { AfterResponse } from './after-response.js';

declare module 'fastify' {
  interface FastifyRequest {
    pcl: RequestContext;
  }
}

/** Extra route registrations contributed by modules (admin API, guard check API, …). */
export type RouteRegistrar = (app: FastifyInstance, deps: AppDeps) => void | Promise<void>;

/** What the app needs. */
export interface AppDeps extends ProxyDeps {
  logger: Logger;
  /** Readiness check of the stores. */
  ready(): Promise<boolean>;
  /** Additional routes. */
  registrars?: RouteRegistrar[];
  /** Where the request log line and the post-response steps wait (see after-response.ts). */
  afterResponse: AfterResponse;
  /**
   * Refuses a suspended key and counts a throttled one's call (the analytics module's admission
   * step), for the key-authenticated routes that are not proxied (`/v1/models`).
   */
  keyGate?(ctx: RequestContext): void | Promise<void>;
}

const REQUEST_ID_RE = /^[A-Za-z0-9._:-]{1,128}$/;

/** Proxied endpoints: path → API. */
export const PROXY_ROUTES: ReadonlyArray<[string, Api]> = [
  ['/v1/chat/completions', 'chat'],
  ['/v1/completions', 'completions'],
  ['/v1/embeddings', 'embeddings'],
  ['/v1/responses', 'responses'],
  ['/v1/messages', 'messages'],
];

/** Builds the fastify app (not listening). */
export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const { config } = deps;
  const app = Fastify({
    loggerInstance: deps.logger as unknown as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: config.server.bodyLimit,
    trustProxy: config.server.trustProxy,
    requestTimeout: config.server.requestTimeoutMs,
    return503OnClosing: true,
    forceCloseConnections: true,
    routerOptions: { maxParamLength: 200 },
    // Routes validate with zod and send JSON they serialise themselves: no fastify route schemas,
    // so no Ajv or fast-json-stringify (loading them kept ~1.5 MB of heap in every gateway). A
    // route that declared a schema would fail at start, not go unchecked.
    schemaController: { compilersFactory: { buildValidator: noRouteSchemas, buildSerializer: noRouteSchemas } },
    // A malformed %-escape or an over-long path parameter fails in the router, before any hook:
    // answered here in the error envelope with a request id (frameworkError below).
    frameworkErrors: (err, req, reply) => frameworkError(deps, err, req, reply),
    genReqId(req) {
      const h = req.headers['x-request-id'];
      return typeof h === 'string' && REQUEST_ID_RE.test(h) ? h : 'req_' + randomUUID().replace(/-/g, '');
    },
  });

  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'buffer', bodyLimit: config.server.bodyLimit }, (req, body, done) => {
    try {
      checkJsonEncoding(req.headers);
      done(null, parseJsonBody(body as Buffer, config.server.maxJsonDepth));
    } catch (e) {
      done(e as Error, undefined);
    }
  });
  app.addContentTypeParser('*', (_req, _payload, done) => done(new GatewayError('PCL_BAD_CONTENT_TYPE'), undefined));

  app.decorateRequest('pcl', null as unknown as RequestContext);
  const proxyPaths = new Set(PROXY_ROUTES.map(([p]) => p));
  app.addHook('onRequest', (req, reply, done) => {
    const matched = req.routeOptions.url;
    const route = matched ?? req.url.split('?')[0]!.slice(0, 200);
    // Metrics, audit queries, admin calls: what earlier responses left to record is recorded first.
    // Not health probes: they must answer even while a store is down.
    const recorded = proxyPaths.has(route) || route === '/healthz' || route === '/readyz' ? undefined : deps.afterResponse.drain(100);
    const ctx: RequestContext = {
      requestId: String(req.id),
      api: 'chat',
      route,
      startedAt: performance.now(),
      clientIp: req.ip,
      stream: false,
      body: {},
      responseHeaders: {},
      state: {},
    };
    // No route matched (a 404): `route` is then the raw path, which anyone can choose, so the
    // metrics label such requests `unmatched` instead (metrics/index.ts) and spend no label slot.
    if (matched === undefined) ctx.state.unmatched = true;
    req.pcl = ctx;
    reply.header('x-request-id', ctx.requestId);
    reply.raw.once('close', () => {
      // The status actually sent (`ctx.state.httpStatus`), for error responses whose status the
      // context does not carry; none when the client left before the headers went out.
      if (reply.raw.headersSent) ctx.state.httpStatus = reply.raw.statusCode;
      finish(deps, req.method, ctx, reply.raw.statusCode, !reply.raw.writableFinished);
    });
    if (recorded) recorded.then(() => done());
    else done();
  });

  app.setErrorHandler((err, req, reply) => {
    const ge = toGatewayError(err);
    const ctx = req.pcl;
    if (ctx) {
      ctx.errorCode = ge.publicCode;
      ctx.state.error = { code: ge.code, internal: ge.internal ?? (ge.code === 'PCL_INTERNAL' ? String((err as Error)?.stack ?? err) : undefined) };
    }
    if (ge.status >= 500) req.log.error({ reqId: req.id, code: ge.code, detail: ge.internal ?? (err as Error)?.message }, 'request failed');
    if (reply.sent || reply.raw.headersSent) return;
    sendError(reply, ge, String(req.id), { ...(ctx?.responseHeaders ?? {}), ...ge.headers });
  });

  app.setNotFoundHandler((req, reply) => {
    const ge = new GatewayError('PCL_ROUTE_NOT_FOUND', { message: `Unknown request URL: ${req.method} ${req.url.split('?')[0]!.slice(0, 100)}.` });
    sendError(reply, ge, String(req.id));
  });

  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_req, reply) => {
    const ok = await deps.ready();
    reply.code(ok ? 200 : 503);
    return { status: ok ? 'ready' : 'unavailable' };
  });

  app.get('/v1/models', async (req) => {
    req.pcl.principal = await identify(deps, req);
    await deps.keyGate?.(req.pcl);
    const created = 1_700_000_000;
    return {
      object: 'list',
      data: deps.router.listModels().map((id) => ({ id, object: 'model', created, owned_by: deps.router.resolve(id)?.provider.name ?? 'portcullis' })),
    };
  });

  for (const [path, api] of PROXY_ROUTES) {
    app.post(path, (req, reply) => handleProxy(deps, api, req, reply));
  }

  for (const r of deps.registrars ?? []) await r(app, deps);
  return app as unknown as FastifyInstance;
}

/**
 * The request line's logger: the same destination without the redaction pass. The line is built
 * below from fixed fields that are all primitives (no headers, bodies or keys), so the
 * credential paths never occur in it, and pino's redaction cost twice the rest of the line.
 */
const requestLoggers = new WeakMap<Logger, Logger>();
function requestLogger(logger: Logger): Logger {
  let l = requestLoggers.get(logger);
  if (!l) requestLoggers.set(logger, (l = logger.child({}, { redact: [] })));
  return l;
}

function finish(deps: AppDeps, method: string, ctx: RequestContext, status: number, aborted: boolean): void {
  if (aborted) ctx.aborted = true;
  const totalMs = performance.now() - ctx.startedAt;
  const upstreamMs = ctx.upstreamMs ?? 0;
  const line = {
    reqId: ctx.requestId,
    method,
    route: ctx.route,
    status,
    model: ctx.model,
    provider: ctx.provider?.name,
    tenant: ctx.principal?.tenantId,
    keyId: ctx.principal?.keyId,
    stream: ctx.stream || undefined,
    latencyMs: round(totalMs),
    gatewayMs: round(totalMs - upstreamMs),
    upstreamMs: ctx.upstreamMs === undefined ? undefined : round(upstreamMs),
    ttfbMs: ctx.ttfbMs === undefined ? undefined : round(ctx.ttfbMs),
    tokensIn: ctx.usage?.inputTokens,
    tokensOut: ctx.usage?.outputTokens,
    error: ctx.errorCode,
    aborted: ctx.aborted || undefined,
    reasked: ctx.state.reasked === true || undefined,
  };
  const { settle, done } = deps.steps;
  // Settlement right away (a client's next request must find its concurrency slot free) …
  const failed = (e: unknown) => deps.logger.error({ reqId: ctx.requestId, err: (e as Error)?.message }, 'post-request step failed');
  const settled = settle ? Promise.resolve().then(() => settle(ctx)).catch(failed) : undefined;
  // … the log line, audit, metrics and analytics when the loop has nothing more urgent to do
  // (after-response.ts), so they never delay a response or the next request.
  const log = requestLogger(deps.logger);
  deps.afterResponse.push(() => {
    log.info(line, 'request');
    if (!done) return settled;
    if (settled) return settled.then(() => done(ctx)).catch(failed);
    // No settle step: the done steps run right here (synchronous ones without a microtask).
    return done(ctx);
  });
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}

/**
 * The answer to a request the router refused before routing (fastify's `frameworkErrors`): the
 * gateway's error envelope and an x-request-id, not fastify's own body. No hook has run, so the
 * request context is made here, and the request goes to the request log, the audit trail and the
 * metrics like any other refused request (unauthenticated, its route the raw path, `unmatched`
 * in the metrics); a 5xx is logged here.
 */
function frameworkError(deps: AppDeps, err: FastifyError, req: FastifyRequest, reply: FastifyReply): void {
  const ge =
    err.code === 'FST_ERR_BAD_URL'
      ? new GatewayError('PCL_INVALID_REQUEST', { message: 'The request URL is malformed (an invalid %-escape).' })
      : err.code === 'FST_ERR_MAX_PARAM_LENGTH'
        ? new GatewayError('PCL_INVALID_REQUEST', { status: 414, message: 'A path segment of the request URL is too long.' })
        : toGatewayError(err);
  if (ge.status >= 500) req.log.error({ reqId: req.id, code: ge.code, detail: err.message }, 'request failed');
  const ctx: RequestContext = {
    requestId: String(req.id),
    api: 'chat',
    route: req.url.split('?')[0]!.slice(0, 200),
    startedAt: performance.now(),
    clientIp: req.ip,
    stream: false,
    body: {},
    responseHeaders: {},
    state: { unmatched: true, error: { code: ge.code } },
    status: ge.status,
    errorCode: ge.publicCode,
  };
  sendError(reply, ge, ctx.requestId, { 'x-request-id': ctx.requestId });
  finish(deps, req.method, ctx, ge.status, false);
}

/** Sends `ge` in the gateway's error envelope, with its status and the given headers. */
function sendError(reply: FastifyReply, ge: GatewayError, requestId: string, headers: Record<string, string | number | string[]> = {}): void {
  reply.code(ge.status).headers(headers).header('content-type', 'application/json; charset=utf-8').send(JSON.stringify(errorEnvelope(ge, requestId)));
}

/** Compiler factory of fastify route schemas, which Portcullis does not use (see createApp). */
function noRouteSchemas(): never {
  throw new Error('fastify route schemas are not used in Portcullis: validate with zod in the handler');
}
