/**
 * The `tracing` gateway module: one OpenTelemetry trace per sampled request — a server span with
 * children for identify, authorize, admit, request guards (one span per guard), the upstream call
 * and settle — built after the response from the timings the proxy recorded. When disabled the
 * proxy records nothing and no span objects are created.
 */
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, TraceFlags, trace, type Context, type Tracer } from '@opentelemetry/api';
import type { FastifyInstance } from 'fastify';
import type { RequestContext } from '../server/context.js';
import type { GatewayModule, ModuleFactory } from '../server/modules.js';
import type { TracingConfig } from './config.js';
import type { PhaseTiming } from './phases.js';
import { createTracerProvider, InMemorySpanExporter, OtlpHttpExporter, type SimpleTracerProvider, type SpanExporter } from './provider.js';

export { tracingConfigSchema, type TracingConfig } from './config.js';
export { InMemorySpanExporter, OtlpHttpExporter, createTracerProvider, otlpJson, type FinishedSpan, type SpanExporter } from './provider.js';
export { phase, type PhaseTiming } from './phases.js';

/** The tracing module; `provider` is set for the built-in exporter. */
export interface TracingModule extends GatewayModule {
  provider?: SimpleTracerProvider;
}

const TRACEPARENT_RE = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/** The parent context of an incoming W3C `traceparent` header, if valid. */
export function parentFromTraceparent(h: unknown): { ctx: Context; sampled: boolean } | undefined {
  if (typeof h !== 'string') return undefined;
  const m = TRACEPARENT_RE.exec(h.trim().toLowerCase());
  if (!m || /^0+$/.test(m[1]!) || /^0+$/.test(m[2]!)) return undefined;
  const flags = parseInt(m[3]!, 16);
  return { ctx: trace.setSpanContext(ROOT_CONTEXT, { traceId: m[1]!, spanId: m[2]!, traceFlags: flags & 1 ? TraceFlags.SAMPLED : TraceFlags.NONE, isRemote: true }), sampled: (flags & 1) === 1 };
}

const epochMs = (perfMs: number) => performance.timeOrigin + perfMs;

/** Emits the spans of one finished request. */
export function emitRequestSpans(tracer: Tracer, ctx: RequestContext, method: string, now = performance.now()): void {
  const timings = (ctx.state.timings as PhaseTiming[] | undefined) ?? [];
  const finishedAt = (ctx.state.finishedAt as number | undefined) ?? now;
  const parent = (ctx.state.traceParent as Context | undefined) ?? ROOT_CONTEXT;
  const status = (ctx.state.httpStatus as number | undefined) ?? ctx.status;
  // A URL no route matched is named by its method alone and has no `http.route` (OpenTelemetry's
  // HTTP conventions): span names from raw paths are unbounded, one per probed URL in a backend.
  const matched = ctx.state.unmatched !== true;
  const root = tracer.startSpan(
    matched ? `${method} ${ctx.route}` : method,
    {
      kind: SpanKind.SERVER,
      startTime: epochMs(ctx.startedAt),
      attributes: {
        'http.request.method': method,
        ...(matched ? { 'http.route': ctx.route } : { 'url.path': ctx.route }),
        'portcullis.request_id': ctx.requestId,
        ...(status !== undefined ? { 'http.response.status_code': status } : {}),
        ...(ctx.principal ? { 'portcullis.tenant': ctx.principal.tenantName, ...(ctx.principal.keyId ? { 'portcullis.key_id': ctx.principal.keyId } : {}) } : {}),
        ...(ctx.model ? { 'gen_ai.request.model': ctx.model } : {}),
        ...(ctx.provider ? { 'gen_ai.system': ctx.provider.name } : {}),
        ...(ctx.usage ? { 'gen_ai.usage.input_tokens': ctx.usage.inputTokens, 'gen_ai.usage.output_tokens': ctx.usage.outputTokens } : {}),
        ...(ctx.stream ? { 'portcullis.stream': true } : {}),
        ...(ctx.errorCode ? { 'error.type': ctx.errorCode } : {}),
      },
    },
    parent,
  );
  if (ctx.errorCode || (status ?? 0) >= 500) root.setStatus({ code: SpanStatusCode.ERROR, message: ctx.errorCode ?? String(status) });
  const rctx = trace.setSpan(parent, root);
  const guards = (ctx.state.guards as Array<{ guard: string; stage: string; action: string; mode: string; categories: string[]; latencyMs: number; error?: string }> | undefined) ?? [];
  let upstreamEnd: number | undefined;
  for (const t of timings) {
    let end = t.end;
    if (t.name === 'upstream' && ctx.upstreamMs !== undefined) end = Math.max(end, t.start + ctx.upstreamMs);
    if (t.name === 'upstream') upstreamEnd = end;
    const s = tracer.startSpan(t.name, { kind: t.name === 'upstream' ? SpanKind.CLIENT : SpanKind.INTERNAL, startTime: epochMs(t.start) }, rctx);
    if (t.name === 'upstream' && ctx.ttfbMs !== undefined) s.setAttribute('portcullis.ttfb_ms', Math.round(ctx.ttfbMs * 100) / 100);
    if (t.error) s.setStatus({ code: SpanStatusCode.ERROR, message: t.error });
    if (t.name === 'request_guards') {
      const sctx = trace.setSpan(rctx, s);
      let at = t.start;
      for (const g of guards.filter((g) => g.stage === 'request')) at = guardSpan(tracer, sctx, g, at);
    }
    s.end(epochMs(end));
  }
  let at = upstreamEnd ?? finishedAt;
  for (const g of guards.filter((g) => g.stage !== 'request')) at = guardSpan(tracer, rctx, g, at);
  const settle = tracer.startSpan('settle', { startTime: epochMs(finishedAt) }, rctx);
  settle.end(epochMs(Math.max(now, finishedAt)));
  root.end(epochMs(finishedAt));
}

function guardSpan(tracer: Tracer, parent: Context, g: { guard: string; stage: string; action: string; mode: string; categories: string[]; latencyMs: number; error?: string }, at: number): number {
  const s = tracer.startSpan(`guard ${g.guard}`, {
    startTime: epochMs(at),
    attributes: { 'portcullis.guard': g.guard, 'portcullis.guard.stage': g.stage, 'portcullis.guard.action': g.action, 'portcullis.guard.mode': g.mode, 'portcullis.guard.categories': g.categories.slice(0, 20) },
  }, parent);
  if (g.error) s.setStatus({ code: SpanStatusCode.ERROR, message: g.error });
  s.end(epochMs(at + g.latencyMs));
  return at + g.latencyMs;
}

/** Creates the tracing module; `exporter` overrides the configured one (tests). */
export function createTracingModule(cfg: TracingConfig | undefined, opts: { exporter?: SpanExporter; onError?(e: unknown): void } = {}): TracingModule {
  if (!cfg?.enabled) return { name: 'tracing' };
  let provider: SimpleTracerProvider | undefined;
  let tracer: Tracer;
  if (cfg.exporter === 'global' && !opts.exporter) {
    tracer = trace.getTracer('portcullis');
  } else {
    provider = createTracerProvider({
      exporter: opts.exporter ?? new OtlpHttpExporter({ endpoint: cfg.endpoint, headers: cfg.headers, serviceName: cfg.serviceName, timeoutMs: cfg.exportTimeoutMs }),
      flushIntervalMs: cfg.flushIntervalMs,
      maxBatch: cfg.maxBatch,
      maxQueue: cfg.maxQueue,
      ...(opts.onError ? { onError: opts.onError } : {}),
    });
    tracer = provider.tracer;
  }
  const methods = new WeakMap<RequestContext, string>();
  return {
    name: 'tracing',
    ...(provider ? { provider } : {}),
    routes(app: FastifyInstance) {
      // Callback-style hooks: no promise per request.
      app.addHook('onRequest', (req, reply, done) => {
        const ctx = req.pcl;
        const p = ctx ? parentFromTraceparent(req.headers.traceparent) : undefined;
        // Parent-based sampling: a caller's decision (the traceparent's sampled flag) is followed
        // either way, so a trace is never half recorded; only root requests are sampled by ratio.
        if (ctx && (p ? p.sampled : Math.random() < cfg.sampleRatio)) {
          if (p) ctx.state.traceParent = p.ctx;
          ctx.state.timings = [];
          methods.set(ctx, req.method);
          reply.raw.once('close', () => {
            ctx.state.finishedAt = performance.now();
          });
        }
        done();
      });
    },
    steps: {
      done(ctx) {
        if (!ctx.state.timings) return;
        emitRequestSpans(tracer, ctx, methods.get(ctx) ?? 'POST');
      },
    },
    async close() {
      await provider?.shutdown();
    },
  };
}

/** Module factory; list it last so its `settle` span covers the other modules' settlement. */
export const tracingModule: ModuleFactory = ({ config, logger }) =>
  createTracingModule((config as { tracing?: TracingConfig }).tracing, { onError: (e) => logger.warn({ err: (e as Error)?.message }, 'tracing export failed') });

/** For tests: a module exporting into memory. */
export function memoryTracing(cfg: TracingConfig): { module: TracingModule; exporter: InMemorySpanExporter } {
  const exporter = new InMemorySpanExporter();
  return { module: createTracingModule(cfg, { exporter }), exporter };
}
