/**
 * The `audit` gateway module (listed last, so it sees what every other module recorded): one
 * event per proxied request from `done`, admin actions bridged from `admin_events`, durable
 * batched writes with spill and replay, optional encrypted payload capture, export sinks, and
 * the audit/usage admin API.
 */
import { join } from 'node:path';
import type { FastifyRequest } from 'fastify';
import type { RequestContext } from '../server/context.js';
import type { GatewayModule, ModuleFactory } from '../server/modules.js';
import { loadHashKey, loadMasterKey, seal, TenantKeys } from './crypto.js';
import { adminEvent, OutputTap, requestEvent, type AuditEvent, type AuditRequestState, type QueuedEvent } from './event.js';
import { AUDIT_ROUTES, runAuditRoute, type AuditApiDeps } from './routes.js';
import { createSinks, type EventSink } from './sinks.js';
import { AuditStore } from './store.js';
import { AuditWriter } from './writer.js';
import { authenticateAdminRequest } from '../server/admin/auth.js';

/** The audit module, exposing its parts to tests, the bench and other modules. */
export interface AuditModule extends GatewayModule {
  store: AuditStore;
  writer: AuditWriter;
  sinks: readonly EventSink[];
  /** Queues an event for the store and the sinks. */
  emit(q: QueuedEvent): void;
  /** Bridges new `admin_events` rows now (normally on a timer). */
  pollAdminEvents(): Promise<number>;
  /** Writes everything queued (tests). */
  flush(): Promise<void>;
}

const CURSOR_KEY = 'audit.admin_cursor';

/** Creates the audit module from `config.audit`. */
export const auditModule: ModuleFactory = async ({ config, db, logger, identity, env, afterResponse }) => {
  const c = config.audit;
  const hashKey = loadHashKey({ dataDir: config.dataDir, env, envName: c.hashKeyEnv, ...(c.hashKeyFile ? { file: c.hashKeyFile } : {}) });
  const master = loadMasterKey({ env, envName: c.payloads.masterKeyEnv, ...(c.payloads.masterKeyFile ? { file: c.payloads.masterKeyFile } : {}) });
  if (c.enabled && c.payloads.enabled && !master) {
    throw new Error(`audit.payloads.enabled needs a master key: set ${c.payloads.masterKeyEnv} (32 bytes as 64 hex characters or base64) or audit.payloads.masterKeyFile`);
  }
  const keys = master ? new TenantKeys(db.kysely, master) : undefined;
  const store = new AuditStore(db.kysely, config.limits.timeZone, db.sqlite);
  const writer = new AuditWriter({
    store,
    spillDir: c.spillDir ?? join(config.dataDir, 'audit-spill'),
    queueSize: c.queueSize,
    batchSize: c.batchSize,
    flushIntervalMs: c.flushIntervalMs,
    retryIntervalMs: c.retryIntervalMs,
    log: logger,
  });
  const sinks = c.enabled ? createSinks(c.sinks, env, logger) : [];
  const captureAll = c.payloads.tenants.includes('*');
  const captureSet = new Set(c.payloads.tenants);
  const captures = (ctx: RequestContext) => c.payloads.enabled && !!ctx.principal && (captureAll || captureSet.has(ctx.principal.tenantId) || captureSet.has(ctx.principal.tenantName));

  function emit(q: QueuedEvent): void {
    writer.push(q);
    for (const s of sinks) s.push(q.event);
  }

  // Admin actions: every writer of `admin_events` (lifecycle, approvals, this module) is bridged
  // into the trail with id `adm_<row id>`, so a row bridged twice is stored once.
  let cursor: number | undefined;
  let polling: Promise<number> | undefined;
  async function pollOnce(): Promise<number> {
    if (cursor === undefined) {
      const r = await db.kysely.selectFrom('kv_meta').select('v').where('k', '=', CURSOR_KEY).executeTakeFirst();
      cursor = r ? Number(r.v) : 0;
    }
    let n = 0;
    for (;;) {
      const rows = await db.kysely.selectFrom('admin_events').selectAll().where('id', '>', cursor).orderBy('id').limit(1000).execute();
      if (rows.length === 0) break;
      for (const r of rows) emit({ event: adminEvent(r as any) });
      cursor = Number(rows[rows.length - 1]!.id);
      n += rows.length;
      await db.kysely.insertInto('kv_meta').values({ k: CURSOR_KEY, v: String(cursor) }).onConflict((oc) => oc.column('k').doUpdateSet({ v: String(cursor) })).execute();
      if (rows.length < 1000) break;
    }
    return n;
  }
  const pollAdminEvents = () => (polling ??= pollOnce().finally(() => (polling = undefined)));
  const timers: NodeJS.Timeout[] = [];
  if (c.enabled) {
    timers.push(setInterval(() => void pollAdminEvents().catch((e) => logger.warn({ err: (e as Error)?.message }, 'audit: admin event bridge failed')), c.adminPollMs));
    const purge = () => {
      const now = Date.now();
      store.purge(now, c.retentionDays > 0 ? now - c.retentionDays * 864e5 : undefined).catch((e) => logger.warn({ err: (e as Error)?.message }, 'audit purge failed'));
    };
    timers.push(setInterval(purge, 3_600_000));
    setImmediate(purge);
    for (const t of timers) t.unref();
  }

  /** Synchronous unless the tenant's payloads are captured (no promise per request otherwise). */
  function done(ctx: RequestContext): void | Promise<void> {
    // API traffic only: health, readiness and metrics probes are not audit events; admin actions
    // arrive through the admin_events bridge.
    if (!ctx.route.startsWith('/v1/')) return;
    const ev: AuditEvent = requestEvent(ctx, hashKey);
    const st = ctx.state.audit as AuditRequestState | undefined;
    if (st?.capture && ctx.principal && keys) return doneWithPayload(ctx, ctx.principal.tenantId, ev, st, keys);
    emit({ event: ev });
  }

  async function doneWithPayload(ctx: RequestContext, tenantId: string, ev: AuditEvent, st: AuditRequestState, keys: TenantKeys): Promise<void> {
    let payload: QueuedEvent['payload'];
    try {
      const k = await keys.keyFor(tenantId);
      const reqText = JSON.stringify(st.clientBody ?? ctx.body);
      const cut = reqText.length > c.payloads.maxBytes ? reqText.slice(0, c.payloads.maxBytes) + '\n[truncated]' : reqText;
      const res = st.tap?.captured() ?? null;
      payload = {
        tenantId,
        expiresAt: ev.ts + c.payloads.retentionDays * 864e5,
        request: seal(k, cut, `${ev.id}:request`),
        response: res ? seal(k, res, `${ev.id}:response`) : null,
      };
      ev.payload = true;
    } catch (e) {
      logger.warn({ reqId: ctx.requestId, err: (e as Error)?.message }, 'audit: payload capture failed (event kept without payload)');
    }
    emit(payload ? { event: ev, payload } : { event: ev });
  }

  const apiDeps: AuditApiDeps = { store, db: db.kysely, ...(keys ? { keys } : {}), maxPageSize: config.admin.maxPageSize, retentionDays: c.retentionDays };

  const authenticate = (req: FastifyRequest) => authenticateAdminRequest(identity, req);

  const mod: AuditModule = {
    name: 'audit',
    store,
    writer,
    sinks,
    emit,
    pollAdminEvents,
    flush: async () => {
      await afterResponse?.drain(); // events of responses already sent
      return writer.flush();
    },
    ...(c.enabled
      ? {
          steps: {
            authorize(ctx: RequestContext) {
              const capture = captures(ctx);
              const st: AuditRequestState = { clientBody: ctx.body, tap: new OutputTap(capture ? c.payloads.maxBytes : 0), capture };
              ctx.state.audit = st;
            },
            done,
          },
        }
      : {}),
    routes(app) {
      if (!config.admin.enabled) return;
      for (const route of AUDIT_ROUTES) {
        app.route({
          method: route.method,
          url: route.path,
          handler: async (req, reply) => {
            const admin = await authenticate(req);
            const out = await runAuditRoute(route, apiDeps, admin, { id: admin.id, role: admin.role, source: req.ip, requestId: String(req.id) }, (req.params ?? {}) as Record<string, string>, (req.query ?? {}) as Record<string, unknown>);
            reply.code(200).header('cache-control', 'no-store');
            return out;
          },
        });
      }
    },
    async close() {
      for (const t of timers) clearInterval(t);
      if (c.enabled) await pollAdminEvents().catch(() => 0);
      await writer.close();
      await store.close();
      await Promise.all(sinks.map((s) => s.close()));
    },
  };
  return mod;
};
