/**
 * Gateway metrics on a private prom-client Registry (never the global one): requests, latency
 * (total, gateway overhead, upstream, TTFB), tokens and cost, prompt sizes, guard verdicts and
 * latency, limiter rejections and fail-open fallbacks, upstream errors, auth failures.
 * Label values that come from clients or tenants are capped (overflow → `other`).
 */
import { Counter, Gauge, Registry, collectDefaultMetrics, type Aggregator } from 'prom-client';
import { FastCounter, FastHistogram } from './fast.js';
import type { RequestContext } from '../server/context.js';
import type { MetricsConfig } from './config.js';
import { heapTrimStats } from '../util/heap-trim.js';

export { metricsConfigSchema, type MetricsConfig } from './config.js';

/** Label value used once a label has seen `maxLabelValues` distinct values. */
export const OVERFLOW_LABEL = 'other';
/**
 * `model` label of a request whose model did not resolve to a configured route (unknown model,
 * refused before routing, object routes), or that a glob route matched but the upstream did not
 * accept: such names come from clients and never take a label slot.
 */
export const UNKNOWN_MODEL_LABEL = 'unknown';
/** `route` label of a request whose URL no route matches (the raw path is the client's choice). */
export const UNMATCHED_ROUTE_LABEL = 'unmatched';

/** The distinct values of one label, up to a cap. */
export class LabelValues {
  private readonly seen = new Set<string>();
  constructor(private readonly max: number) {}
  /** The value to use (the value itself while under the cap, else `other`; empty → `none`). */
  value(v: string | undefined | null): string {
    if (v === undefined || v === null || v === '') return 'none';
    const s = v.length > 120 ? v.slice(0, 120) : v;
    if (this.seen.has(s)) return s;
    if (this.seen.size >= this.max) return OVERFLOW_LABEL;
    this.seen.add(s);
    return s;
  }
  /** The value when it already holds a slot, else undefined (never takes a slot). */
  known(v: string): string | undefined {
    const s = v.length > 120 ? v.slice(0, 120) : v;
    return this.seen.has(s) ? s : undefined;
  }
}

/** Caps the distinct values of each label name; values past the cap map to `other`. */
export class LabelCap {
  private readonly caps = new Map<string, LabelValues>();
  constructor(private readonly max: number) {}
  /** The cap of one label name (hold on to it on hot paths). */
  of(label: string): LabelValues {
    let c = this.caps.get(label);
    if (!c) this.caps.set(label, (c = new LabelValues(this.max)));
    return c;
  }
  /** The value to use for `label` (the value itself while under the cap, else `other`). */
  value(label: string, v: string | undefined | null): string {
    return this.of(label).value(v);
  }
}

/** Live counters the metrics read at scrape time from other modules. */
export interface MetricSources {
  /** Failed authentications by reason (monotonic). */
  authFailures?(): { byReason: Record<string, number> };
  /** Limiter store counters (monotonic). */
  limiter?(): { fallbackAdmissions: number; unavailableRefusals: number; storeErrors: number };
  /**
   * Whether a model is one the configuration names (a route without a glob, or a demo model):
   * such a model always gets its own `model` label; one only a glob route matched gets it once the
   * upstream accepted it. Unset: every routed model counts as configured.
   */
  configuredModel?(model: string): boolean;
  /** Counters of the audit export sinks (all monotonic but `queued`). */
  auditSinks?(): ReadonlyArray<{ name: string; stats(): { delivered: number; dropped: number; truncated: number; queued: number } }>;
  /** Counters of the audit writer (all monotonic but `queued` and `storeDown`). */
  auditWriter?(): AuditWriterCounts | undefined;
}

/** The audit writer's counters as the metrics read them. */
export interface AuditWriterCounts {
  written: number;
  spilled: number;
  replayed: number;
  deadLettered: number;
  dropped: number;
  timeouts: number;
  queued: number;
  storeDown: boolean;
}

/** Guard evaluation as the metrics read it from `ctx.state.guards`. */
interface GuardRec {
  guard: string;
  stage: string;
  mode: string;
  action: string;
  categories: string[];
  latencyMs: number;
  error?: string;
}

/** The gateway's metrics. */
export interface GatewayMetrics {
  /** The private registry (serve `registry.metrics()`). */
  readonly registry: Registry;
  /** Caps label values. */
  readonly labels: LabelCap;
  /** Records one finished proxied request from its context. */
  observe(ctx: RequestContext): void;
  /** Registers a counter on the same registry (for analytics and other modules). */
  counter<L extends string>(name: string, help: string, labelNames: readonly L[]): Counter<L>;
  /**
   * Registers a gauge on the same registry. `aggregator`: how `--workers` combines the workers'
   * values (`sum` for per-process quantities, `max`/`first` for a value every worker shares).
   */
  gauge<L extends string>(name: string, help: string, labelNames: readonly L[], aggregator?: Aggregator): Gauge<L>;
  /** The Prometheus text exposition. */
  scrape(): Promise<string>;
  /** The content type of the exposition. */
  readonly contentType: string;
}

const PROMPT_BUCKETS = [16, 64, 256, 1024, 4096, 16384, 65536, 262144];

/** Adds the delta of a monotonic source value to a counter (scrape-time sync). */
function syncCounter(c: Counter<string>, last: Map<string, number>, labels: Record<string, string>, now: number): void {
  const k = JSON.stringify(labels);
  const prev = last.get(k) ?? 0;
  if (now > prev) c.inc(labels, now - prev);
  last.set(k, Math.max(prev, now));
}

/** Status codes as label strings (no String() per request). */
const STATUS = new Map<number, string>();
function statusLabel(n: number): string {
  let s = STATUS.get(n);
  if (s === undefined) {
    s = String(n);
    if (STATUS.size < 1000) STATUS.set(n, s);
  }
  return s;
}

/** Creates the metrics on a fresh registry. */
export function createMetrics(config: MetricsConfig, sources: MetricSources = {}): GatewayMetrics {
  const registry = new Registry();
  const labels = new LabelCap(config.maxLabelValues);
  const perKey = config.perKeyLabels;
  const buckets = config.latencyBuckets;
  const maxSeries = config.maxSeriesPerMetric ?? 10_000;
  if (config.processMetrics) collectDefaultMetrics({ register: registry, prefix: 'portcullis_' });

  // Per-request metrics: hot-path counters/histograms (see fast.ts), registered like prom-client's.
  const counter = (name: string, help: string, labelNames: readonly string[]) => new FastCounter(name, help, labelNames, maxSeries).register(registry);
  const histogram = (name: string, help: string, labelNames: readonly string[], b: readonly number[]) => new FastHistogram(name, help, labelNames, b, maxSeries).register(registry);
  const requests = counter('portcullis_requests_total', 'Proxied requests by route, status, model and tenant', perKey ? ['route', 'status', 'model', 'tenant', 'key'] : ['route', 'status', 'model', 'tenant']);
  const duration = histogram('portcullis_request_duration_seconds', 'Total request latency as the client sees it', ['route', 'model'], buckets);
  const overhead = histogram('portcullis_gateway_overhead_seconds', 'Time spent in the gateway (total minus upstream)', ['route'], buckets);
  const upstream = histogram('portcullis_upstream_duration_seconds', 'Time waiting on the upstream (whole body, whole stream, or until its error, timeout or abort)', ['provider', 'model', 'stream'], buckets);
  const ttfb = histogram('portcullis_upstream_ttfb_seconds', 'Time from the upstream call to the response headers (non-stream) or to the first SSE event sent to the client (streams)', ['provider', 'model', 'stream'], buckets);
  const tokens = counter('portcullis_tokens_total', 'Tokens reported by the provider, by direction (input/output)', perKey ? ['tenant', 'model', 'direction', 'key'] : ['tenant', 'model', 'direction']);
  const cost = counter('portcullis_cost_usd_total', 'Cost in US dollars by tenant and model', ['tenant', 'model']);
  const prompt = histogram('portcullis_prompt_tokens', 'Input tokens per request (provider usage, else the admission estimate)', ['model'], PROMPT_BUCKETS);
  const verdicts = counter('portcullis_guard_verdicts_total', 'Guard verdicts by guard, stage, category, action and mode', ['guard', 'stage', 'category', 'action', 'mode']);
  const guardLatency = histogram('portcullis_guard_duration_seconds', 'Guard evaluation latency', ['guard', 'stage'], buckets);
  const guardErrors = counter('portcullis_guard_errors_total', 'Guards that threw or timed out', ['guard', 'error']);
  const limitRejections = counter('portcullis_limit_rejections_total', 'Requests refused by limits, by reason code', ['reason', 'tenant']);
  const policyDenials = counter('portcullis_policy_denials_total', 'Requests refused by the authorization policy, by layer', ['layer']);
  const upstreamErrors = counter('portcullis_upstream_errors_total', 'Upstream failures by provider and type', ['provider', 'type']);

  const authLast = new Map<string, number>();
  new Counter({
    name: 'portcullis_auth_failures_total',
    help: 'Failed authentications by reason',
    labelNames: ['reason'],
    registers: [registry],
    collect() {
      const c = sources.authFailures?.();
      if (c) for (const [reason, n] of Object.entries(c.byReason)) syncCounter(this as Counter<string>, authLast, { reason }, n);
    },
  });
  const limLast = new Map<string, number>();
  new Counter({
    name: 'portcullis_limiter_store_events_total',
    help: 'Limiter store trouble: fallback (fail-open admissions), unavailable (fail-closed refusals), error',
    labelNames: ['event'],
    registers: [registry],
    collect() {
      const s = sources.limiter?.();
      if (!s) return;
      syncCounter(this as Counter<string>, limLast, { event: 'fallback' }, s.fallbackAdmissions);
      syncCounter(this as Counter<string>, limLast, { event: 'unavailable' }, s.unavailableRefusals);
      syncCounter(this as Counter<string>, limLast, { event: 'error' }, s.storeErrors);
    },
  });

  // Audit export sinks and writer, read at scrape time (no work on the request path). Sinks that
  // share a name (two webhooks on one host) are summed.
  const sinkLast = new Map<string, number>();
  new Counter({
    name: 'portcullis_audit_sink_events_total',
    help: 'Audit events by export sink and outcome: delivered, dropped (queue overflow, failed delivery, left at shutdown), truncated (sent as a stub over maxMessageBytes)',
    labelNames: ['sink', 'outcome'],
    registers: [registry],
    collect() {
      const sum = new Map<string, { delivered: number; dropped: number; truncated: number }>();
      for (const s of sources.auditSinks?.() ?? []) {
        const st = s.stats();
        const a = sum.get(s.name) ?? { delivered: 0, dropped: 0, truncated: 0 };
        a.delivered += st.delivered;
        a.dropped += st.dropped;
        a.truncated += st.truncated;
        sum.set(s.name, a);
      }
      for (const [sink, a] of sum) for (const outcome of ['delivered', 'dropped', 'truncated'] as const) syncCounter(this as Counter<string>, sinkLast, { sink, outcome }, a[outcome]);
    },
  });
  new Gauge({
    name: 'portcullis_audit_sink_queued',
    help: 'Audit events waiting in each export sink queue',
    labelNames: ['sink'],
    registers: [registry],
    aggregator: 'sum',
    collect() {
      this.reset();
      for (const s of sources.auditSinks?.() ?? []) this.inc({ sink: s.name }, s.stats().queued);
    },
  });
  const writerCounters: Array<[keyof AuditWriterCounts, string, string]> = [
    ['written', 'portcullis_audit_writer_written_total', 'Audit events written to the store'],
    ['spilled', 'portcullis_audit_writer_spilled_total', 'Audit events spilled to the local file while the store was down or slow'],
    ['replayed', 'portcullis_audit_writer_replayed_total', 'Spilled audit events replayed into the store'],
    ['deadLettered', 'portcullis_audit_writer_dead_lettered_total', 'Audit events the store refused for their data, moved to the dead-letter file'],
    ['dropped', 'portcullis_audit_writer_dropped_total', 'Audit events lost: neither the store nor the spill file took them and the queue was full'],
    ['timeouts', 'portcullis_audit_writer_timeouts_total', 'Audit batch writes that outlasted writeTimeoutMs'],
  ];
  for (const [field, name, help] of writerCounters) {
    const last = new Map<string, number>();
    new Counter({
      name,
      help,
      registers: [registry],
      collect() {
        const w = sources.auditWriter?.();
        if (w) syncCounter(this as Counter<string>, last, {}, w[field] as number);
      },
    });
  }
  new Gauge({
    name: 'portcullis_audit_writer_queued',
    help: 'Audit events held in memory by the writer',
    registers: [registry],
    aggregator: 'sum',
    collect() {
      this.set(sources.auditWriter?.()?.queued ?? 0);
    },
  });
  new Gauge({
    name: 'portcullis_audit_writer_store_down',
    help: '1 while the audit store is taken as down (events spill to the local file)',
    registers: [registry],
    aggregator: 'max',
    collect() {
      this.set(sources.auditWriter?.()?.storeDown ? 1 : 0);
    },
  });

  // The heap trimmer of `portcullis serve` (src/util/heap-trim.ts); zero where it does not run.
  const trimLast = new Map<string, number>();
  new Counter({
    name: 'portcullis_heap_trims_total',
    help: 'Compacting GCs run by the heap trimmer when the process went idle after a burst',
    registers: [registry],
    collect() {
      syncCounter(this as Counter<string>, trimLast, {}, heapTrimStats().trims);
    },
  });
  const trimPauseLast = new Map<string, number>();
  new Counter({
    name: 'portcullis_heap_trim_pause_seconds_total',
    help: 'Time the heap trimmer paused the event loop',
    registers: [registry],
    collect() {
      syncCounter(this as Counter<string>, trimPauseLast, {}, heapTrimStats().pauseMs / 1000);
    },
  });

  const modelCap = labels.of('model');
  const tenantCap = labels.of('tenant');
  const keyCap = labels.of('key');
  const guardCap = labels.of('guard');
  const categoryCap = labels.of('category');

  const configured = sources.configuredModel ?? (() => true);

  /** The `model` label: a slot only for models routed to a configured route (see UNKNOWN_MODEL_LABEL). */
  function modelLabel(ctx: RequestContext): string {
    const m = ctx.model;
    if (m === undefined || m === '') return 'none';
    if (ctx.upstreamModel === undefined) return UNKNOWN_MODEL_LABEL; // never routed
    if (configured(m)) return modelCap.value(m);
    // Matched by a glob only: any name does, so a slot only once the upstream accepted it.
    if (ctx.status !== undefined && ctx.status < 400) return modelCap.value(m);
    return modelCap.known(m) ?? UNKNOWN_MODEL_LABEL;
  }

  function observe(ctx: RequestContext): void {
    // Route labels are route templates (`/v1/files/:id`) or `unmatched` for URLs no route matches
    // (server/app.ts): a fixed, small set, so they take no capped slots and a flood of junk URLs
    // cannot push real routes out.
    const route = ctx.state.unmatched === true ? UNMATCHED_ROUTE_LABEL : ctx.route;
    const status = statusLabel((ctx.state.httpStatus as number | undefined) ?? ctx.status ?? (ctx.aborted ? 499 : 0));
    const model = modelLabel(ctx);
    const tenant = tenantCap.value(ctx.principal?.tenantName);
    const key = perKey ? keyCap.value(ctx.principal?.keyId) : undefined;
    requests.inc(1, route, status, model, tenant, key);
    const totalS = (performance.now() - ctx.startedAt) / 1000;
    duration.observe(totalS, route, model);
    const upS = (ctx.upstreamMs ?? 0) / 1000;
    overhead.observe(totalS > upS ? totalS - upS : 0, route);
    const provider = ctx.provider?.name ?? 'none';
    const stream = ctx.stream ? 'true' : 'false';
    if (ctx.upstreamMs !== undefined) upstream.observe(upS, provider, model, stream);
    // A relayed stream's TTFB is its first event to the client; none when no event went out.
    if (ctx.ttfbMs !== undefined && ctx.state.streamTtfb !== 'pending') ttfb.observe(ctx.ttfbMs / 1000, provider, model, stream);
    const u = ctx.usage;
    if (u) {
      if (u.inputTokens > 0) tokens.inc(u.inputTokens, tenant, model, 'input', key);
      if (u.outputTokens > 0) tokens.inc(u.outputTokens, tenant, model, 'output', key);
    }
    const lim = ctx.state.limits as { estimatedInputTokens?: number; decision?: string; costUsd?: number } | undefined;
    const inTok = u?.inputTokens ?? lim?.estimatedInputTokens;
    if (inTok !== undefined && ctx.model) prompt.observe(inTok, model);
    if (lim?.costUsd) cost.inc(lim.costUsd, tenant, model);
    if (lim?.decision && lim.decision !== 'admitted') limitRejections.inc(1, lim.decision, tenant);
    const pol = ctx.state.policy as { decision?: string; layer?: string } | undefined;
    if (pol?.decision === 'deny') policyDenials.inc(1, pol.layer ?? 'unknown');
    const recs = ctx.state.guards as GuardRec[] | undefined;
    if (recs) {
      for (let i = 0; i < recs.length; i++) {
        const r = recs[i]!;
        const guard = guardCap.value(r.guard);
        const cats = r.categories;
        if (cats.length === 0) verdicts.inc(1, guard, r.stage, 'none', r.action, r.mode);
        else for (let j = 0; j < cats.length; j++) verdicts.inc(1, guard, r.stage, categoryCap.value(cats[j]), r.action, r.mode);
        guardLatency.observe(r.latencyMs / 1000, guard, r.stage);
        if (r.error) guardErrors.inc(1, guard, r.error);
      }
    }
    const err = ctx.state.error as { code?: string; internal?: { upstreamStatus?: number } } | undefined;
    const up = err?.internal?.upstreamStatus;
    if (err?.code && (up !== undefined || err.code.startsWith('PCL_UPSTREAM'))) {
      upstreamErrors.inc(1, provider, up !== undefined ? `status_${up}` : err.code.slice(4).toLowerCase());
    } else if (ctx.errorCode && ctx.errorCode.startsWith('upstream')) {
      upstreamErrors.inc(1, provider, ctx.errorCode);
    }
  }

  return {
    registry,
    labels,
    observe,
    counter: (name, help, labelNames) => new Counter({ name, help, labelNames: labelNames as readonly string[], registers: [registry] }) as never,
    gauge: (name, help, labelNames, aggregator = 'sum') => new Gauge({ name, help, labelNames: labelNames as readonly string[], registers: [registry], aggregator }) as never,
    scrape: () => registry.metrics(),
    contentType: registry.contentType,
  };
}
