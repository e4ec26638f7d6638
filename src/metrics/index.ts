/**
 * Gateway metrics on a private prom-client Registry (never the global one): requests, latency
 * (total, gateway overhead, upstream, TTFB), tokens and cost, prompt sizes, guard verdicts and
 * latency, limiter rejections and fail-open fallbacks, upstream errors, auth failures.
 * Label values that come from clients or tenants are capped (overflow → `other`).
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { RequestContext } from '../server/context.js';
import type { MetricsConfig } from './config.js';

export { metricsConfigSchema, type MetricsConfig } from './config.js';

/** Label value used once a label has seen `maxLabelValues` distinct values. */
export const OVERFLOW_LABEL = 'other';

/** Caps the distinct values of each label name; values past the cap map to `other`. */
export class LabelCap {
  private readonly seen = new Map<string, Set<string>>();
  constructor(private readonly max: number) {}
  /** The value to use for `label` (the value itself while under the cap, else `other`). */
  value(label: string, v: string | undefined | null): string {
    if (v === undefined || v === null || v === '') return 'none';
    const s = v.length > 120 ? v.slice(0, 120) : v;
    let set = this.seen.get(label);
    if (!set) this.seen.set(label, (set = new Set()));
    if (set.has(s)) return s;
    if (set.size >= this.max) return OVERFLOW_LABEL;
    set.add(s);
    return s;
  }
}

/** Live counters the metrics read at scrape time from other modules. */
export interface MetricSources {
  /** Failed authentications by reason (monotonic). */
  authFailures?(): { byReason: Record<string, number> };
  /** Limiter store counters (monotonic). */
  limiter?(): { fallbackAdmissions: number; unavailableRefusals: number; storeErrors: number };
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
  /** Registers a gauge on the same registry. */
  gauge<L extends string>(name: string, help: string, labelNames: readonly L[]): Gauge<L>;
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

/** Creates the metrics on a fresh registry. */
export function createMetrics(config: MetricsConfig, sources: MetricSources = {}): GatewayMetrics {
  const registry = new Registry();
  const labels = new LabelCap(config.maxLabelValues);
  const perKey = config.perKeyLabels;
  const buckets = config.latencyBuckets;
  if (config.processMetrics) collectDefaultMetrics({ register: registry, prefix: 'portcullis_' });

  const reqLabels = perKey ? (['route', 'status', 'model', 'tenant', 'key'] as const) : (['route', 'status', 'model', 'tenant'] as const);
  const requests = new Counter({ name: 'portcullis_requests_total', help: 'Proxied requests by route, status, model and tenant', labelNames: reqLabels as readonly string[], registers: [registry] });
  const duration = new Histogram({ name: 'portcullis_request_duration_seconds', help: 'Total request latency as the client sees it', labelNames: ['route', 'model'], buckets, registers: [registry] });
  const overhead = new Histogram({ name: 'portcullis_gateway_overhead_seconds', help: 'Time spent in the gateway (total minus upstream)', labelNames: ['route'], buckets, registers: [registry] });
  const upstream = new Histogram({ name: 'portcullis_upstream_duration_seconds', help: 'Time waiting on the upstream (whole body, or whole stream)', labelNames: ['provider', 'model', 'stream'], buckets, registers: [registry] });
  const ttfb = new Histogram({ name: 'portcullis_upstream_ttfb_seconds', help: 'Time to the upstream response headers (first byte of streams)', labelNames: ['provider', 'model', 'stream'], buckets, registers: [registry] });
  const tokLabels = perKey ? ['tenant', 'model', 'direction', 'key'] : ['tenant', 'model', 'direction'];
  const tokens = new Counter({ name: 'portcullis_tokens_total', help: 'Tokens reported by the provider, by direction (input/output)', labelNames: tokLabels, registers: [registry] });
  const cost = new Counter({ name: 'portcullis_cost_usd_total', help: 'Cost in US dollars by tenant and model', labelNames: ['tenant', 'model'], registers: [registry] });
  const prompt = new Histogram({ name: 'portcullis_prompt_tokens', help: 'Input tokens per request (provider usage, else the admission estimate)', labelNames: ['model'], buckets: PROMPT_BUCKETS, registers: [registry] });
  const verdicts = new Counter({ name: 'portcullis_guard_verdicts_total', help: 'Guard verdicts by guard, stage, category, action and mode', labelNames: ['guard', 'stage', 'category', 'action', 'mode'], registers: [registry] });
  const guardLatency = new Histogram({ name: 'portcullis_guard_duration_seconds', help: 'Guard evaluation latency', labelNames: ['guard', 'stage'], buckets, registers: [registry] });
  const guardErrors = new Counter({ name: 'portcullis_guard_errors_total', help: 'Guards that threw or timed out', labelNames: ['guard', 'error'], registers: [registry] });
  const limitRejections = new Counter({ name: 'portcullis_limit_rejections_total', help: 'Requests refused by limits, by reason code', labelNames: ['reason', 'tenant'], registers: [registry] });
  const policyDenials = new Counter({ name: 'portcullis_policy_denials_total', help: 'Requests refused by the authorization policy, by layer', labelNames: ['layer'], registers: [registry] });
  const upstreamErrors = new Counter({ name: 'portcullis_upstream_errors_total', help: 'Upstream failures by provider and type', labelNames: ['provider', 'type'], registers: [registry] });

  const authLast = new Map<string, number>();
  const authFailures = new Counter({
    name: 'portcullis_auth_failures_total',
    help: 'Failed authentications by reason',
    labelNames: ['reason'],
    registers: [registry],
    collect() {
      const c = sources.authFailures?.();
      if (c) for (const [reason, n] of Object.entries(c.byReason)) syncCounter(this as Counter<string>, authLast, { reason }, n);
    },
  });
  void authFailures;
  const limLast = new Map<string, number>();
  const limiterEvents = new Counter({
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
  void limiterEvents;

  function observe(ctx: RequestContext): void {
    const route = labels.value('route', ctx.route);
    const status = String((ctx.state.httpStatus as number | undefined) ?? ctx.status ?? (ctx.aborted ? 499 : 0));
    const model = labels.value('model', ctx.model);
    const tenant = labels.value('tenant', ctx.principal?.tenantName);
    const key = perKey ? labels.value('key', ctx.principal?.keyId) : undefined;
    requests.inc(perKey ? { route, status, model, tenant, key: key! } : { route, status, model, tenant });
    const totalS = (performance.now() - ctx.startedAt) / 1000;
    duration.observe({ route, model }, totalS);
    const upS = (ctx.upstreamMs ?? 0) / 1000;
    overhead.observe({ route }, Math.max(0, totalS - upS));
    const provider = ctx.provider?.name ?? 'none';
    const stream = ctx.stream ? 'true' : 'false';
    if (ctx.upstreamMs !== undefined) upstream.observe({ provider, model, stream }, upS);
    if (ctx.ttfbMs !== undefined) ttfb.observe({ provider, model, stream }, ctx.ttfbMs / 1000);
    const u = ctx.usage;
    if (u) {
      const base = perKey ? { tenant, model, key: key! } : { tenant, model };
      if (u.inputTokens > 0) tokens.inc({ ...base, direction: 'input' }, u.inputTokens);
      if (u.outputTokens > 0) tokens.inc({ ...base, direction: 'output' }, u.outputTokens);
    }
    const lim = ctx.state.limits as { estimatedInputTokens?: number; decision?: string; costUsd?: number } | undefined;
    const inTok = u?.inputTokens ?? lim?.estimatedInputTokens;
    if (inTok !== undefined && ctx.model) prompt.observe({ model }, inTok);
    if (lim?.costUsd) cost.inc({ tenant, model }, lim.costUsd);
    if (lim?.decision && lim.decision !== 'admitted') limitRejections.inc({ reason: lim.decision, tenant });
    const pol = ctx.state.policy as { decision?: string; layer?: string } | undefined;
    if (pol?.decision === 'deny') policyDenials.inc({ layer: pol.layer ?? 'unknown' });
    const recs = ctx.state.guards as GuardRec[] | undefined;
    if (recs) {
      for (const r of recs) {
        const guard = labels.value('guard', r.guard);
        const cats = r.categories.length ? r.categories : ['none'];
        for (const c of cats) verdicts.inc({ guard, stage: r.stage, category: labels.value('category', c), action: r.action, mode: r.mode });
        guardLatency.observe({ guard, stage: r.stage }, r.latencyMs / 1000);
        if (r.error) guardErrors.inc({ guard, error: r.error });
      }
    }
    const err = ctx.state.error as { code?: string; internal?: unknown } | undefined;
    if (err?.code && (err.code.startsWith('PCL_UPSTREAM') || (err.internal as { upstreamStatus?: number } | undefined)?.upstreamStatus !== undefined)) {
      const up = (err.internal as { upstreamStatus?: number } | undefined)?.upstreamStatus;
      const type = up !== undefined ? `status_${up}` : err.code.slice(4).toLowerCase();
      upstreamErrors.inc({ provider, type });
    } else if (ctx.errorCode && ctx.errorCode.startsWith('upstream')) {
      upstreamErrors.inc({ provider, type: ctx.errorCode });
    }
  }

  return {
    registry,
    labels,
    observe,
    counter: (name, help, labelNames) => new Counter({ name, help, labelNames: labelNames as readonly string[], registers: [registry] }) as never,
    gauge: (name, help, labelNames) => new Gauge({ name, help, labelNames: labelNames as readonly string[], registers: [registry] }) as never,
    scrape: () => registry.metrics(),
    contentType: registry.contentType,
  };
}
