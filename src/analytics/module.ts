/**
 * The `analytics` gateway module: per-key and per-tenant behaviour baselines with anomaly
 * alerts, per-key model-extraction scoring, logprobs perturbation, automated response
 * (alert / throttle / suspend, audited as admin events, reversible) and the incident API.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { ConfigError } from '../config/load.js';
import { GatewayError } from '../errors.js';
import { loadPepper } from '../identity/keys.js';
import { Lifecycle, type Actor } from '../identity/lifecycle.js';
import type { AdminPrincipal, AdminRole } from '../identity/types.js';
import { isTokenArray } from '../guards/inspect.js';
import { tokenCodecFor } from '../limits/tokens.js';
import type { MetricsModule } from '../metrics/module.js';
import type { PolicyModule } from '../policy/module.js';
import { runAdminRoute, type AdminDeps, type AdminRoute } from '../server/admin/routes.js';
import type { RequestContext, SseEvent } from '../server/context.js';
import type { GatewayModule, ModuleContext, ModuleFactory } from '../server/modules.js';
import { ActionBook, SYSTEM_ACTOR, ThrottleGate, type KeyAction } from './actions.js';
import { Alerter, type Alert } from './alerts.js';
import { BaselineDetector, type AnomalyAlert } from './baseline.js';
import type { AnalyticsConfig } from './config.js';
import { ExtractionDetector, type ExtractionScore } from './extraction.js';
import { revokeTenant } from './incident.js';
import { logprobDemand, perturbRequest, roundLogprobs } from './perturb.js';
import { auditUsageSummary, UsageRollup, type ReadRows } from './usage.js';
import { authenticateAdminRequest } from '../server/admin/auth.js';
import type { AuditModule } from '../audit/module.js';

export { analyticsConfigSchema, type AnalyticsConfig } from './config.js';

/** The analytics module (detectors exposed for tests and the admin API). */
export interface AnalyticsModule extends GatewayModule {
  baselines: BaselineDetector;
  extraction: ExtractionDetector;
  actions: ActionBook;
  alerter: Alerter;
  usage: UsageRollup;
  /** Observes the responses already sent and waits for pending response work (actions, webhooks) — tests. */
  settle(): Promise<void>;
}

function partsText(c: unknown): string {
  if (typeof c === 'string') return c;
  if (Array.isArray(c)) return c.map((p) => (typeof p === 'string' ? p : p && typeof p === 'object' && typeof (p as { text?: unknown }).text === 'string' ? (p as { text: string }).text : '')).join(' ');
  return '';
}

/**
 * Token ids (completions `prompt`, embeddings `input` as integer arrays) as text for similarity,
 * e.g. "9906 1917": prompts filled into one template stay near-duplicates as token ids, so they
 * are compared without knowing the model's tokenizer. Undefined when `v` is not token ids.
 */
function idsText(v: unknown, decode?: (ids: number[]) => string | undefined): string | undefined {
  if (!isTokenArray(v)) return undefined;
  return decode?.(v) ?? v.join(' ');
}

/**
 * The variable part of a prompt: the last user turn (system prompts repeat by design). Token ids
 * are decoded with `decode` when it knows the model's tokenizer (a template's fillers then differ
 * by words, as in text), else compared as ids (see idsText).
 */
export function lastUserText(body: Record<string, unknown>, decode?: (ids: number[]) => string | undefined): string {
  for (const k of ['input', 'prompt'] as const) {
    const ids = idsText(body[k], decode);
    if (ids !== undefined) return ids.slice(0, 4000);
  }
  const msgs = Array.isArray(body.messages) ? body.messages : Array.isArray(body.input) ? body.input : Array.isArray(body.prompt) ? body.prompt : undefined;
  if (msgs) {
    for (let i = msgs.length - 1; i >= 0; i--) {
      const m = msgs[i] as Record<string, unknown> | string | unknown[];
      if (typeof m === 'string') return m.slice(0, 4000);
      if (Array.isArray(m)) {
        const ids = idsText(m, decode);
        if (ids !== undefined) return ids.slice(0, 4000);
        continue;
      }
      if (m && typeof m === 'object' && (m.role === 'user' || m.role === undefined)) return partsText(m.content).slice(0, 4000);
    }
  }
  if (typeof body.input === 'string') return body.input.slice(0, 4000);
  if (typeof body.prompt === 'string') return body.prompt.slice(0, 4000);
  return '';
}

const ALL: readonly AdminRole[] = ['owner', 'operator', 'auditor'];
const WRITE: readonly AdminRole[] = ['owner', 'operator'];
const P = '/admin/v1';

/** Creates the analytics module. */
export async function createAnalyticsModule(mctx: ModuleContext): Promise<AnalyticsModule> {
  const cfg = (mctx.config as { analytics?: AnalyticsConfig }).analytics;
  const { db, logger, identity, env, modules } = mctx;
  // Receivers authenticate alerts by their signature: never send them unsigned.
  const webhookSecret = cfg?.alerts.webhookUrl ? env[cfg.alerts.webhookSecretEnv] : undefined;
  // (Only when analytics runs: a webhookUrl left in a config with analytics off sends nothing.)
  if (cfg?.enabled && cfg.alerts.webhookUrl && !webhookSecret) {
    throw new ConfigError(`analytics.alerts.webhookUrl is set but the environment variable ${cfg.alerts.webhookSecretEnv} (analytics.alerts.webhookSecretEnv), which holds the webhook's signing secret, is ${cfg.alerts.webhookSecretEnv in env ? 'empty' : 'not set'}: set it, or remove webhookUrl`);
  }
  const lifecycle = new Lifecycle(db, loadPepper(mctx.config.dataDir, env), (ids) => ids.forEach((id) => identity.invalidate(id)));
  const baselines = new BaselineDetector(cfg?.anomaly ?? {});
  const extraction = new ExtractionDetector(cfg?.extraction ?? {});
  const actions = new ActionBook(db.kysely, lifecycle);
  const gate = new ThrottleGate();
  const usage = new UsageRollup();
  /** Token ids as text for a model with a known BPE (limits.tokenizers); undefined otherwise or for ids outside it. */
  const decodeIds = (model: string, ids: number[]): string | undefined => tokenCodecFor(model, mctx.config.limits)?.decode(ids);
  const alerter = new Alerter({
    ...(cfg?.alerts.webhookUrl && webhookSecret ? { webhookUrl: cfg.alerts.webhookUrl, webhookSecret } : {}),
    timeoutMs: cfg?.alerts.timeoutMs ?? 5000,
    dedupMs: cfg?.alerts.dedupMs ?? 3_600_000,
    keep: cfg?.alerts.keep ?? 1000,
    log: logger,
  });
  const metrics = (modules.get('metrics') as MetricsModule | undefined)?.metrics;
  const alertCounter = metrics?.counter('portcullis_analytics_alerts_total', 'Analytics alerts by kind and signal', ['kind', 'signal']);
  const actionCounter = metrics?.counter('portcullis_analytics_actions_total', 'Automatic and manual key actions', ['action']);
  const refusals = metrics?.counter('portcullis_analytics_refusals_total', 'Requests refused because the key is throttled or suspended', ['action']);
  const enabled = cfg?.enabled ?? false;
  if (enabled) await actions.refresh();
  const refreshTimer = enabled ? setInterval(() => void actions.refresh().catch((e) => logger.warn({ err: (e as Error)?.message }, 'analytics: action refresh failed')), cfg!.response.refreshMs) : undefined;
  refreshTimer?.unref();
  const pending = new Set<Promise<unknown>>();
  const clearedAt = new Map<string, number>();
  /** Tenant of each key seen (for alerts raised by the bucket timer). */
  const keyTenant = new Map<string, string>();
  const track = (p: Promise<unknown>) => {
    const q = p.catch((e) => logger.error({ err: (e as Error)?.message }, 'analytics: action failed')).finally(() => pending.delete(q));
    pending.add(q);
  };

  /** Keys with an action being applied: concurrent alerts on one key apply one action, not several. */
  const applying = new Set<string>();
  const alertOnlyKeys = new Set(cfg?.response.alertOnly.keys ?? []);
  /** `response.alertOnly.tenants` as given (names or ids), and the ids of those seen in traffic. */
  const alertOnlyTenants = new Set(cfg?.response.alertOnly.tenants ?? []);
  const alertOnlyTenantIds = new Set<string>();

  /**
   * What an alert on `keyId` actually does under `policy`: the action, or `none` with the reason
   * it is skipped (an operator cleared the key within `cooldownMs`, an action already in force,
   * one being applied). Decided synchronously, so the alert reports it.
   */
  function decide(keyId: string | null, tenantId: string | null, policy: 'alert' | 'throttle' | 'suspend'): { action: Alert['action']; skipped?: NonNullable<Alert['skipped']> } {
    if (policy === 'alert' || !keyId || !cfg) return { action: 'alert' };
    if (alertOnlyKeys.has(keyId) || (tenantId !== null && alertOnlyTenantIds.has(tenantId))) return { action: 'none', skipped: 'alert_only' };
    if (applying.has(keyId)) return { action: 'none', skipped: 'in_progress' };
    const now = Date.now();
    const last = actions.latest(keyId);
    const cleared = Math.max(clearedAt.get(keyId) ?? 0, last?.kind === 'clear' ? last.at : 0);
    if (cleared && now - cleared < cfg.response.cooldownMs) return { action: 'none', skipped: 'cooldown' };
    const cur = actions.active(keyId, now);
    if (cur?.kind === 'suspend') return { action: 'none', skipped: 'already_suspended' };
    if (cur && policy === 'throttle') return { action: 'none', skipped: 'already_throttled' };
    return { action: policy };
  }

  /** Applies a decided throttle or suspension (at most one at a time per key). */
  function act(kind: 'anomaly' | 'extraction', keyId: string, tenantId: string | null, action: Alert['action'], reason: string, detail: Record<string, unknown>): void {
    if (!cfg || (action !== 'throttle' && action !== 'suspend')) return;
    const now = Date.now();
    const until = action === 'throttle' ? now + cfg.response.throttleMs : cfg.response.suspendMs !== undefined ? now + cfg.response.suspendMs : null;
    applying.add(keyId);
    track(
      actions
        .apply(SYSTEM_ACTOR, { keyId, tenantId, kind: action, until, ...(action === 'throttle' ? { rpm: cfg.response.throttleRpm } : {}), reason: `${kind}: ${reason}`.slice(0, 500), detail })
        .then(() => actionCounter?.inc({ action }))
        .finally(() => applying.delete(keyId)),
    );
  }

  function anomaly(a: AnomalyAlert, tenantId: string | null): void {
    const isKey = a.entity.startsWith('key:');
    const keyId = isKey ? a.entity.slice(4) : null;
    const d = decide(keyId, tenantId, isKey ? cfg!.response.onAnomaly : 'alert');
    const al = alerter.emit({ at: Date.now(), kind: 'anomaly', entity: a.entity, tenantId, keyId, signal: a.signal, value: a.value, score: Math.round(a.z * 100) / 100, reasons: [`${a.signal} ${round(a.value)} vs baseline ${round(a.mean)} ± ${round(a.std)} (z ${round(a.z)})`], action: d.action, ...(d.skipped ? { skipped: d.skipped } : {}) });
    if (!al) return;
    alertCounter?.inc({ kind: 'anomaly', signal: a.signal });
    track(recordAlert(al));
    if (keyId) act('anomaly', keyId, tenantId, d.action, al.reasons[0]!, { alertId: al.id });
  }

  async function recordAlert(al: Alert): Promise<void> {
    await lifecycle.record(SYSTEM_ACTOR, 'analytics.alert', { type: al.keyId ? 'api_key' : 'tenant', id: al.keyId ?? al.tenantId ?? al.entity, tenantId: al.tenantId }, { id: al.id, kind: al.kind, signal: al.signal, value: al.value, score: al.score, reasons: al.reasons, action: al.action, ...(al.skipped ? { skipped: al.skipped } : {}) });
  }

  function extractionFlag(s: ExtractionScore, keyId: string, tenantId: string): void {
    const d = decide(keyId, tenantId, cfg!.response.onExtraction);
    const al = alerter.emit({ at: Date.now(), kind: 'extraction', entity: `key:${keyId}`, tenantId, keyId, signal: 'score', value: s.requests, score: s.score, reasons: s.reasons, action: d.action, ...(d.skipped ? { skipped: d.skipped } : {}) });
    if (!al) return;
    alertCounter?.inc({ kind: 'extraction', signal: 'score' });
    track(recordAlert(al));
    act('extraction', keyId, tenantId, d.action, s.reasons.join('; ') || `score ${s.score}`, { alertId: al.id, score: s.score, signals: s.signals });
  }

  const tickTimer = enabled && cfg!.anomaly.enabled ? setInterval(() => {
    for (const a of baselines.tick(Date.now())) anomaly(a, a.entity.startsWith('tenant:') ? a.entity.slice(7) : (keyTenant.get(a.entity.slice(4)) ?? null));
  }, Math.max(1000, Math.floor(cfg!.anomaly.bucketMs / 2))) : undefined;
  tickTimer?.unref();

  const perturb = cfg?.perturb;

  /** The audit store's reads (its reader thread on SQLite); the audit module comes later in the list, so it is looked up per call. */
  const auditReader = (): ReadRows | undefined => {
    const store = (modules.get('audit') as AuditModule | undefined)?.store;
    return store ? (q) => store.read(q) : undefined;
  };

  const steps: GatewayModule['steps'] = enabled
    ? {
        admit(ctx: RequestContext) {
          const p = ctx.principal;
          if (!p) return;
          if (p.keyId) {
            const a = actions.active(p.keyId);
            if (a?.kind === 'suspend') {
              refusals?.inc({ action: 'suspend' });
              ctx.state.analytics = { refused: 'suspend' };
              throw new GatewayError('PCL_FORBIDDEN', { message: 'This key is suspended pending review. Contact the gateway operator.', internal: { analytics: 'suspended', reason: a.reason } });
            }
            if (a?.kind === 'throttle') {
              const r = gate.take(p.keyId, a.rpm ?? cfg!.response.throttleRpm);
              if (!r.ok) {
                refusals?.inc({ action: 'throttle' });
                ctx.state.analytics = { refused: 'throttle' };
                throw new GatewayError('PCL_RATE_LIMITED', { message: 'This key is temporarily throttled. Retry later.', headers: { 'retry-after': String(r.retryAfterS) }, internal: { analytics: 'throttled', reason: a.reason } });
              }
            }
          }
          const demand = logprobDemand(ctx.body);
          ctx.state.analytics = { logprobs: demand };
          if (perturb && demand > 0) ctx.body = perturbRequest(ctx.body, perturb);
        },
        ...(perturb?.roundDecimals !== undefined
          ? {
              responseGuards(_ctx: RequestContext, body: Record<string, unknown>) {
                return roundLogprobs(body, perturb.roundDecimals!);
              },
              streamGuards(ctx: RequestContext) {
                if (!((ctx.state.analytics as { logprobs?: number } | undefined)?.logprobs)) return undefined;
                return {
                  onEvent(ev: SseEvent, parsed: unknown): SseEvent[] {
                    if (!parsed || typeof parsed !== 'object') return [ev];
                    const r = roundLogprobs(parsed as Record<string, unknown>, perturb.roundDecimals!);
                    return r === parsed ? [ev] : [{ ...ev, data: JSON.stringify(r) }];
                  },
                  end: () => [],
                };
              },
            }
          : {}),
        done(ctx: RequestContext) {
          const p = ctx.principal;
          if (!p || !ctx.model) return;
          const st = ctx.state.analytics as { refused?: string; logprobs?: number } | undefined;
          if (st?.refused) return;
          const now = Date.now();
          const status = (ctx.state.httpStatus as number | undefined) ?? ctx.status ?? 0;
          const blocked = ctx.errorCode === 'content_policy_violation' || ((ctx.state.guards as Array<{ action: string; mode: string }> | undefined) ?? []).some((g) => g.action === 'block' && g.mode === 'enforce');
          const error = !blocked && (status >= 400 || !!ctx.errorCode);
          const lim = ctx.state.limits as { estimatedInputTokens?: number; costUsd?: number } | undefined;
          const inTok = ctx.usage?.inputTokens ?? lim?.estimatedInputTokens ?? 0;
          const outTok = ctx.usage?.outputTokens ?? 0;
          if (alertOnlyTenants.size && (alertOnlyTenants.has(p.tenantName) || alertOnlyTenants.has(p.tenantId))) alertOnlyTenantIds.add(p.tenantId);
          if (p.keyId && keyTenant.get(p.keyId) !== p.tenantId) {
            if (keyTenant.size > 200_000) keyTenant.clear();
            keyTenant.set(p.keyId, p.tenantId);
          }
          usage.add(p.tenantId, { at: now, ...(p.keyId ? { keyId: p.keyId } : {}), model: ctx.model, error, blocked, inputTokens: inTok, outputTokens: outTok, costUsd: lim?.costUsd ?? 0, client: ctx.clientIp });
          if (cfg!.anomaly.enabled) {
            const o = { at: now, tokens: inTok + outTok, promptTokens: inTok, error, blocked, model: ctx.model };
            const out = [...(p.keyId ? baselines.observe(`key:${p.keyId}`, o) : []), ...baselines.observe(`tenant:${p.tenantId}`, o)];
            for (const a of out) anomaly(a, p.tenantId);
          }
          if (cfg!.extraction.enabled && p.keyId) {
            const s = extraction.observe(p.keyId, { at: now, text: lastUserText((ctx.state.clientBody as Record<string, unknown> | undefined) ?? ctx.body, ctx.model ? (ids) => decodeIds(ctx.model!, ids) : undefined), logprobs: st?.logprobs ?? 0 });
            if (s.flagged) extractionFlag(s, p.keyId, p.tenantId);
          }
        },
      }
    : {};

  const authenticate = (req: FastifyRequest) => authenticateAdminRequest(identity, req);
  const visibleKey = async (admin: AdminPrincipal, id: string) => {
    const k = await lifecycle.key(id);
    if (!k || (admin.tenants !== null && !admin.tenants.includes(k.tenantId))) throw new GatewayError('PCL_NOT_FOUND', { message: `key ${JSON.stringify(id.slice(0, 100))} not found` });
    return k;
  };
  const actionBody = z.object({ reason: z.string().max(500).optional(), durationMs: z.number().int().positive().optional(), rpm: z.number().int().min(0).optional() }).strict();
  const manual = (kind: 'throttle' | 'suspend' | 'clear'): AdminRoute => ({
    id: `analytics.${kind}`,
    method: 'POST',
    path: `${P}/analytics/keys/:id/${kind}`,
    summary: `${kind === 'clear' ? 'Clear (reverse) the throttle or suspension of' : kind === 'throttle' ? 'Throttle' : 'Suspend'} a key`,
    roles: WRITE,
    body: actionBody,
    handler: async (c) => {
      const k = await visibleKey(c.admin, c.params.id!);
      const b = c.body as z.infer<typeof actionBody>;
      const until = kind === 'clear' ? null : b.durationMs ? Date.now() + b.durationMs : kind === 'throttle' ? Date.now() + (cfg?.response.throttleMs ?? 3_600_000) : null;
      const a = await actions.apply(c.actor, { keyId: k.id, tenantId: k.tenantId, kind, until, ...(kind === 'throttle' ? { rpm: b.rpm ?? cfg?.response.throttleRpm ?? 10 } : {}), reason: b.reason ?? `manual ${kind}` });
      if (kind === 'clear') {
        clearedAt.set(k.id, Date.now());
        gate.reset(k.id);
        extraction.reset(k.id);
      }
      actionCounter?.inc({ action: `manual_${kind}` });
      return a;
    },
  });
  const routes: AdminRoute[] = [
    {
      id: 'analytics.alerts',
      method: 'GET',
      path: `${P}/analytics/alerts`,
      summary: 'Recent analytics alerts (this instance)',
      roles: ALL,
      query: z.object({ since: z.coerce.number().optional() }).strict(),
      handler: async (c) => ({ object: 'list', data: alerter.list({ tenantIds: c.admin.tenants, ...(c.query.since !== undefined ? { since: c.query.since } : {}) }) }),
    },
    {
      id: 'analytics.actions',
      method: 'GET',
      path: `${P}/analytics/actions`,
      summary: 'Throttles and suspensions in force',
      roles: ALL,
      handler: async (c) => {
        await actions.refresh();
        return { object: 'list', data: actions.list().filter((a) => c.admin.tenants === null || (a.tenantId !== null && c.admin.tenants.includes(a.tenantId))) };
      },
    },
    {
      id: 'analytics.key',
      method: 'GET',
      path: `${P}/analytics/keys/:id`,
      summary: 'Behaviour of a key: baseline, extraction score, action in force',
      roles: ALL,
      handler: async (c) => {
        const k = await visibleKey(c.admin, c.params.id!);
        return { keyId: k.id, tenantId: k.tenantId, baseline: baselines.baseline(`key:${k.id}`) ?? null, extraction: extraction.score(k.id) ?? null, action: actions.active(k.id) ?? null };
      },
    },
    manual('throttle'),
    manual('suspend'),
    manual('clear'),
    {
      id: 'incident.revokeTenant',
      method: 'POST',
      path: `${P}/incident/revoke-tenant/:tenant`,
      summary: 'Revoke and reissue every key of a tenant, with a summary of its last 24 h',
      roles: WRITE,
      body: z.object({ reason: z.string().max(500).optional(), reissue: z.boolean().default(true) }).strict(),
      handler: async (c) => {
        const t = await lifecycle.tenant(c.params.tenant!);
        if (!t || (c.admin.tenants !== null && !c.admin.tenants.includes(t.id))) throw new GatewayError('PCL_NOT_FOUND', { message: `tenant ${JSON.stringify(c.params.tenant!.slice(0, 100))} not found` });
        return revokeTenant(lifecycle, c.actor, t.id, { reissue: c.body.reissue, ...(c.body.reason ? { reason: c.body.reason } : {}), usage: (id) => auditUsageSummary(db.kysely, id, Date.now(), auditReader()), fallbackUsage: (id) => usage.summary(id) });
      },
    },
  ];

  return {
    name: 'analytics',
    baselines,
    extraction,
    actions,
    alerter,
    usage,
    steps,
    async settle() {
      await mctx.afterResponse?.drain(); // the observations of responses already sent
      while (pending.size) await Promise.allSettled([...pending]);
      await alerter.flush();
    },
    routes(app: FastifyInstance) {
      if (!mctx.config.admin.enabled) return;
      const policy = modules.get('policy') as PolicyModule | undefined;
      const deps = { lifecycle, engine: policy?.engine, config: mctx.config } as unknown as AdminDeps;
      for (const route of routes) {
        app.route({
          method: route.method,
          url: route.path,
          handler: async (req, reply) => {
            const admin = await authenticate(req);
            const actor: Actor = { id: admin.id, role: admin.role, source: req.ip, requestId: String(req.id) };
            const out = await runAdminRoute(route, deps, admin, actor, { params: req.params as Record<string, string>, query: req.query, body: req.body ?? {} });
            reply.header('cache-control', 'no-store');
            return out;
          },
        });
      }
    },
    async close() {
      if (refreshTimer) clearInterval(refreshTimer);
      if (tickTimer) clearInterval(tickTimer);
      while (pending.size) await Promise.allSettled([...pending]);
      await alerter.flush();
    },
  };
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}

/** Module factory: list it before `limits` so throttled or suspended keys are refused before any limit is charged. */
export const analyticsModule: ModuleFactory = (mctx) => createAnalyticsModule(mctx);

export type { KeyAction };
