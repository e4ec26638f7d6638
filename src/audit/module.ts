/**
 * The `audit` gateway module (listed after every module whose state it records; only `tracing`
 * comes after it, in src/index.ts, so its steps see what the others recorded): one
 * event per proxied request from `done`, admin actions bridged from `admin_events`, durable
 * batched writes with spill and replay, optional encrypted payload capture, export sinks, and
 * the audit/usage admin API.
 */
import { join } from 'node:path';
import type { FastifyRequest } from 'fastify';
import type { RequestContext } from '../server/context.js';
import type { GatewayModule, ModuleFactory } from '../server/modules.js';
import { loadHashKey, loadMasterKey, seal, TenantKeys } from './crypto.js';
import { adminEvent, OutputTap, requestEvent, utf8Head, type AuditEvent, type AuditRequestState, type QueuedEvent } from './event.js';
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
/** Rows per admin-bridge query, and queries of new rows per poll (the rest waits for the next poll). */
const BRIDGE_PAGE = 1000;
const BRIDGE_PAGES = 10;
/** How long a hole in the `admin_events` ids is watched for a row committed late. */
const GAP_WAIT_MS = 120_000;
/** Holes watched at most. */
const MAX_GAPS = 100;

type AdminEventRow = Parameters<typeof adminEvent>[0];

/** A range of `admin_events` ids not seen yet below the cursor, and when it was first seen. */
interface IdGap {
  lo: number;
  hi: number;
  since: number;
}

/** State of the admin-event bridge. */
interface BridgeState {
  /** Highest row id read (-1 before the saved cursor is loaded). */
  cursor: number;
  /** Holes below `cursor` still watched, by `lo`. */
  gaps: IdGap[];
  /** The cursor saved in `kv_meta`: every row up to it is in the trail. */
  saved: number;
  /** Events pushed to the writer that it has not confirmed as stored or spilled. */
  unconfirmed: AuditEvent[];
}

/** The holes without `id` (a late row arrived in one of them). */
function fillGap(gaps: readonly IdGap[], id: number): IdGap[] {
  const out: IdGap[] = [];
  for (const g of gaps) {
    if (id < g.lo || id > g.hi) out.push(g);
    else {
      if (g.lo < id) out.push({ lo: g.lo, hi: id - 1, since: g.since });
      if (id < g.hi) out.push({ lo: id + 1, hi: g.hi, since: g.since });
    }
  }
  return out;
}

/** Creates the audit module from `config.audit`. */
export const auditModule: ModuleFactory = async ({ config, db, logger, identity, env, afterResponse }) => {
  const c = config.audit;
  const hashKey = loadHashKey({ dataDir: config.dataDir, env, envName: c.hashKeyEnv, ...(c.hashKeyFile ? { file: c.hashKeyFile } : {}) });
  const master = loadMasterKey({ env, envName: c.payloads.masterKeyEnv, ...(c.payloads.masterKeyFile ? { file: c.payloads.masterKeyFile } : {}) });
  if (c.enabled && c.payloads.enabled && !master) {
    throw new Error(`audit.payloads.enabled needs a master key: set ${c.payloads.masterKeyEnv} (32 bytes as 64 hex characters or base64) or audit.payloads.masterKeyFile`);
  }
  const keys = master ? new TenantKeys(db.kysely, master) : undefined;
  const store = new AuditStore(db.kysely, config.limits.timeZone, db.sqlite, { writeTimeoutMs: c.writeTimeoutMs });
  const writer = new AuditWriter({
    store,
    spillDir: c.spillDir ?? join(config.dataDir, 'audit-spill'),
    queueSize: c.queueSize,
    batchSize: c.batchSize,
    flushIntervalMs: c.flushIntervalMs,
    retryIntervalMs: c.retryIntervalMs,
    writeTimeoutMs: c.writeTimeoutMs,
    closeTimeoutMs: c.closeTimeoutMs,
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
  // into the trail with id `adm_<row id>`, so a row bridged twice is stored once (the store inserts
  // with ON CONFLICT (id) DO NOTHING).
  //
  // The ids come from a sequence (PostgreSQL `serial`) handed out before commit: two concurrent
  // admin writes can commit out of id order, so a row with a lower id can appear after a higher
  // one was bridged. Every hole in the ids seen is watched for GAP_WAIT_MS (a late row in it is
  // bridged then; a hole left by a rolled-back insert is given up), and the cursor saved in
  // `kv_meta` stays below the oldest hole still watched. The saved cursor only moves once the
  // writer has stored or spilled the bridged events, so a crash re-reads them instead of losing them.
  const bridge: BridgeState = { cursor: -1, gaps: [], saved: -1, unconfirmed: [] };
  let polling: Promise<number> | undefined;
  async function pollOnce(): Promise<number> {
    if (bridge.cursor < 0) {
      const r = await db.kysely.selectFrom('kv_meta').select('v').where('k', '=', CURSOR_KEY).executeTakeFirst();
      bridge.cursor = bridge.saved = r ? Number(r.v) : 0;
    }
    const now = Date.now();
    bridge.gaps = bridge.gaps.filter((g) => now - g.since < GAP_WAIT_MS);
    const fresh: AuditEvent[] = [];
    // Events the writer has not confirmed yet hold the cursor back; new rows wait while there are many.
    if (bridge.unconfirmed.length < BRIDGE_PAGE * BRIDGE_PAGES) {
      // The cursor and the holes move on local copies, taken over only once every query of this
      // poll has answered: a query failing half-way leaves the bridge where it was, so the rows read
      // before it are read again next time instead of being skipped.
      let cursor = bridge.cursor;
      let gaps = bridge.gaps;
      if (gaps.length > 0) {
        const watched = gaps;
        const late = await db.kysely
          .selectFrom('admin_events')
          .selectAll()
          .where((eb) => eb.or(watched.map((g) => eb.between('id', g.lo, g.hi))))
          .orderBy('id')
          .limit(BRIDGE_PAGE)
          .execute();
        for (const r of late) {
          gaps = fillGap(gaps, Number(r.id));
          fresh.push(adminEvent(r as AdminEventRow));
        }
      }
      for (let page = 0; page < BRIDGE_PAGES; page++) {
        const rows = await db.kysely.selectFrom('admin_events').selectAll().where('id', '>', cursor).orderBy('id').limit(BRIDGE_PAGE).execute();
        for (const r of rows) {
          const id = Number(r.id);
          if (id > cursor + 1) gaps = [...gaps, { lo: cursor + 1, hi: id - 1, since: now }];
          cursor = id;
          fresh.push(adminEvent(r as AdminEventRow));
        }
        if (rows.length < BRIDGE_PAGE) break;
      }
      // Watch the newest holes when there are too many (the oldest ones have waited longest).
      if (gaps.length > MAX_GAPS) gaps = gaps.slice(gaps.length - MAX_GAPS);
      bridge.cursor = cursor;
      bridge.gaps = gaps;
    }
    for (const ev of fresh) for (const s of sinks) s.push(ev);
    // Events not confirmed last time go to the writer again (they may have been dropped; ids are idempotent).
    const pending = bridge.unconfirmed.concat(fresh);
    const safe = bridge.gaps.length > 0 ? Math.min(bridge.cursor, bridge.gaps[0]!.lo - 1) : bridge.cursor;
    if (pending.length === 0 && safe === bridge.saved) return 0;
    const dropped = writer.stats.dropped;
    for (const ev of pending) writer.push({ event: ev });
    await writer.flush();
    // Stored or spilled unless the writer still holds events in memory (neither the store nor the
    // spill file took them) or dropped some: then the cursor stays and they are pushed again next time.
    if (writer.stats.queued > 0 || writer.stats.dropped !== dropped) {
      bridge.unconfirmed = pending;
      return fresh.length;
    }
    bridge.unconfirmed = [];
    if (safe !== bridge.saved) {
      await db.kysely.insertInto('kv_meta').values({ k: CURSOR_KEY, v: String(safe) }).onConflict((oc) => oc.column('k').doUpdateSet({ v: String(safe) })).execute();
      bridge.saved = safe;
    }
    return fresh.length;
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
      // maxBytes counts UTF-8 bytes, cut between characters.
      const head = utf8Head(reqText, c.payloads.maxBytes);
      const cut = head.length < reqText.length ? head + '\n[truncated]' : reqText;
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

  const apiDeps: AuditApiDeps = { store, db: db.kysely, ...(keys ? { keys } : {}), maxPageSize: config.admin.maxPageSize, retentionDays: c.retentionDays, recordReads: c.recordReads };

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
              // The body as the client sent it: recorded before the policy step (response-guards
              // module), which may strip tools, and before other authorize steps rewrite it.
              const clientBody = (ctx.state.clientBody as Record<string, unknown> | undefined) ?? ctx.body;
              const st: AuditRequestState = { clientBody, tap: new OutputTap(capture ? c.payloads.maxBytes : 0), capture };
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
      // A last bridge of admin events, for at most closeTimeoutMs: a poll stuck on a stalled store
      // (or its flush) must not hold the shutdown. What it did not bridge, it bridges at the next
      // start (the saved cursor only moves past stored or spilled events).
      if (c.enabled) {
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([pollAdminEvents().catch(() => 0), new Promise<void>((r) => (timer = setTimeout(r, c.closeTimeoutMs)))]);
        clearTimeout(timer);
      }
      // The writer (then its store) and the sinks close side by side, each within its own deadline.
      await Promise.all([writer.close().then(() => store.close()), ...sinks.map((s) => s.close())]);
    },
  };
  return mod;
};
