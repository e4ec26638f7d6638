/**
 * The guards in the gateway: the request-stage step (block → 400 content_policy_violation,
 * transforms written into the forwarded body, pseudonyms restored in the response and the
 * stream), shadow results stored per tenant, and the routes `POST /v1/guard/check` and
 * `GET /v1/guard/shadow` (authenticated like every proxied route, scoped to the caller's tenant).
 */
import { randomBytes } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Kysely } from 'kysely';
import { GatewayError } from '../errors.js';
import { check, CheckInputError, type CheckMessage, type CheckStage } from '../guards/check.js';
import { createDisabledGuardEngine, GuardInputError, GuardLimitError, type GuardEngine } from '../guards/engine-core.js';
import { blockError } from '../guards/pipeline.js';
import { createRestoreTransform, restoreBody } from '../guards/restore.js';
import type { GuardRecord, PipelineOutcome } from '../guards/types.js';
import type { Database } from '../store/schema.js';
import type { RequestContext } from './context.js';
import { keyGate, type GatewayModule, type ModuleContext } from './modules.js';
import { identify } from './proxy.js';
import type { Principal } from '../identity/types.js';
import type { PolicyScope } from '../guards/config.js';
import { deleteInChunks } from '../store/chunked.js';
import { tokenCodecFor } from '../limits/tokens.js';

/** Header clients send to keep pseudonyms consistent across the turns of a conversation. */
export const CONVERSATION_HEADER = 'x-portcullis-conversation-id';
const CONVERSATION_RE = /^[A-Za-z0-9._:-]{1,128}$/;

/** What the guards module keeps per request in `ctx.state.guardRun`. */
export interface GuardRunState {
  outcome: PipelineOutcome;
  pseudonyms: ReadonlyMap<string, string>;
}

/** Per-tenant shadow results: counts by guard/category/action and sample request ids. */
export interface ShadowSummary {
  tenantId: string;
  since: number;
  counts: Array<{ guard: string; category: string; action: string; count: number }>;
  samples: Array<{ requestId: string; guard: string; action: string; categories: string[]; score: number | null; at: number }>;
}

/** Stores the shadow records of one request (only those that would have acted). */
export async function recordShadow(db: Kysely<Database>, tenantId: string, requestId: string, records: readonly GuardRecord[], now = Date.now()): Promise<number> {
  const rows = records
    .filter((r) => r.mode === 'shadow' && (r.action !== 'allow' || r.error))
    .map((r) => ({
      id: 'gs_' + randomBytes(12).toString('hex'),
      tenant_id: tenantId,
      request_id: requestId.slice(0, 128),
      guard: r.guard.slice(0, 100),
      stage: r.stage,
      action: r.action,
      categories: JSON.stringify(r.categories.slice(0, 50)),
      score: r.score ?? null,
      created_at: now,
    }));
  if (rows.length === 0) return 0;
  await db.insertInto('guard_shadow').values(rows).execute();
  return rows.length;
}

/**
 * Shadow results of one tenant since `since` (epoch ms): counts per guard/category/action and the
 * latest samples. Counted in the database (grouped by guard, action and category list), so the
 * work on this thread is bounded by the number of distinct groups, not by the rows in the window.
 */
export async function queryShadow(db: Kysely<Database>, tenantId: string, opts: { since?: number; limit?: number } = {}): Promise<ShadowSummary> {
  const since = opts.since ?? 0;
  const limit = Math.min(Math.max(opts.limit ?? 20, 1), 500);
  const base = () => db.selectFrom('guard_shadow').where('tenant_id', '=', tenantId).where('created_at', '>=', since);
  const groups = await base()
    .select((eb) => ['guard', 'action', 'categories', eb.fn.countAll<number>().as('n')])
    .groupBy(['guard', 'action', 'categories'])
    .limit(SHADOW_MAX_GROUPS)
    .execute();
  const counts = new Map<string, { guard: string; category: string; action: string; count: number }>();
  for (const g of groups) {
    const cats = safeJson(g.categories);
    for (const c of cats.length ? cats : ['(none)']) {
      const k = `${g.guard}\0${c}\0${g.action}`;
      const e = counts.get(k) ?? { guard: g.guard, category: c, action: g.action, count: 0 };
      e.count += Number(g.n);
      counts.set(k, e);
    }
  }
  const samples = await base().select(['request_id', 'guard', 'action', 'categories', 'score', 'created_at']).orderBy('created_at', 'desc').limit(limit).execute();
  return {
    tenantId,
    since,
    counts: [...counts.values()].sort((a, b) => b.count - a.count || a.guard.localeCompare(b.guard) || a.category.localeCompare(b.category) || a.action.localeCompare(b.action)),
    samples: samples.map((r) => ({ requestId: r.request_id, guard: r.guard, action: r.action, categories: safeJson(r.categories), score: r.score, at: Number(r.created_at) })),
  };
}

/** Most (guard, action, category list) groups counted by queryShadow. */
const SHADOW_MAX_GROUPS = 10_000;

/**
 * Deletes shadow results older than `before` (epoch ms), `chunk` rows per statement with a turn
 * of the event loop between statements (on SQLite each statement runs on the event loop).
 * Returns the number deleted.
 */
export function purgeShadow(db: Kysely<Database>, before: number, chunk = 1_000): Promise<number> {
  return deleteInChunks(
    chunk,
    async (limit) => (await db.selectFrom('guard_shadow').select('id').where('created_at', '<', before).limit(limit).execute()).map((r) => r.id),
    async (ids) => Number((await db.deleteFrom('guard_shadow').where('id', 'in', ids).executeTakeFirst()).numDeletedRows),
  );
}

function safeJson(s: string): string[] {
  try {
    const v = JSON.parse(s);
    return Array.isArray(v) ? v : [];
  } catch {
    return [];
  }
}

function decisionHeaders(ctx: RequestContext, outcome: PipelineOutcome): void {
  if (outcome.action === 'allow' || !outcome.decidedBy) return;
  ctx.responseHeaders['x-portcullis-guard'] = outcome.decidedBy;
  ctx.responseHeaders['x-portcullis-action'] = outcome.action;
}

/** Parses the JSON body of `/v1/guard/check`. */
function parseCheckBody(body: unknown): { input: string | CheckMessage[]; stage: CheckStage; detectors?: string[] } {
  const b = body as Record<string, unknown> | undefined;
  if (!b || typeof b !== 'object') throw new GatewayError('PCL_INVALID_REQUEST', { message: 'The request body must be a JSON object.' });
  const input = b.input;
  if (typeof input !== 'string' && !(Array.isArray(input) && input.every((m) => m && typeof m === 'object' && typeof (m as any).role === 'string'))) {
    throw new GatewayError('PCL_INVALID_REQUEST', { message: "'input' must be a string or an array of messages with a role.", param: 'input' });
  }
  const stage = (b.stage ?? 'request') as CheckStage;
  if (!['request', 'untrusted', 'response'].includes(stage)) throw new GatewayError('PCL_INVALID_REQUEST', { message: "'stage' must be request, untrusted or response.", param: 'stage' });
  let detectors: string[] | undefined;
  if (b.detectors !== undefined) {
    if (!Array.isArray(b.detectors) || !b.detectors.every((d) => typeof d === 'string')) throw new GatewayError('PCL_INVALID_REQUEST', { message: "'detectors' must be an array of strings.", param: 'detectors' });
    detectors = b.detectors as string[];
  }
  return { input: input as string | CheckMessage[], stage, ...(detectors ? { detectors } : {}) };
}

function limitError(e: GuardLimitError): GatewayError {
  const what = e.limit === 'segments' ? `over ${e.max} text parts` : `${e.limit === 'segment' ? 'one text part' : 'total text'} over ${e.max} characters`;
  return new GatewayError('PCL_BODY_TOO_LARGE', { message: `The input is larger than the guards accept (${what}).` });
}

/** The guard policy scope of a caller: its tenant name, tier and key id. */
export function guardScope(p: Principal | undefined): PolicyScope {
  return { ...(p?.tenantName !== undefined ? { tenantName: p.tenantName } : {}), ...(p?.tier !== undefined ? { tier: p.tier } : {}), ...(p?.keyId !== undefined ? { keyId: p.keyId } : {}) };
}

/** The client's refusal for a request-stage run that failed (`engine.runRequest` threw). */
export function requestRunError(e: unknown): GatewayError {
  if (e instanceof GuardLimitError) return limitError(e);
  if (e instanceof GuardInputError) {
    return new GatewayError('PCL_INVALID_REQUEST', {
      message: `Token-id input cannot be inspected by this gateway's guards${e.model ? ` for model '${e.model}'` : ''}: send the text instead of token ids.`,
      param: e.path.join('.'),
    });
  }
  // Anything else (e.g. the shared vault unreachable) fails closed: nothing is forwarded unchecked.
  return e instanceof GatewayError ? e : new GatewayError('PCL_GUARD_FAILED', { internal: (e as Error)?.message ?? String(e) });
}

/** The client's refusal for a request-stage run that blocked, naming the deciding guard in its headers. */
export function requestBlockError(outcome: PipelineOutcome): GatewayError {
  const err = blockError(outcome);
  return new GatewayError(err.code, { ...(err.details ? { details: err.details } : {}), headers: { 'x-portcullis-guard': outcome.decidedBy ?? 'guards', 'x-portcullis-action': 'block' }, internal: err.internal });
}

/** The guards module; later modules (response guards, admin API) reach the engine through it. */
export interface GuardsModule extends GatewayModule {
  engine: GuardEngine;
}

/**
 * The engine of the gateway config (`config.guards`). The built-in guards (src/guards/engine.ts:
 * every detector, the injection model, libphonenumber's metadata…) are imported only when guards
 * are enabled, here at start so the first request does not wait for them; with `enabled: false`
 * the engine has no guard and none of them is loaded.
 */
export async function createGatewayGuardEngine(mctx: ModuleContext): Promise<GuardEngine> {
  const limits = mctx.config.limits;
  const opts = { env: mctx.env, ...(mctx.config.store.redisUrl ? { redisUrl: mctx.config.store.redisUrl } : {}), tokenCodec: (model: string) => tokenCodecFor(model, limits) };
  if (!mctx.config.guards.enabled) return createDisabledGuardEngine(mctx.config.guards, opts);
  const { createGuardEngine } = await import('../guards/engine.js');
  return createGuardEngine(mctx.config.guards, opts);
}

/** Creates the guards module around an engine (see createGatewayGuardEngine). */
export function createGuardsModule(mctx: ModuleContext, engine: GuardEngine): GuardsModule {
  const db = mctx.db.kysely;
  const log = mctx.logger;
  // Shadow results past guards.shadowRetentionDays: deleted at start and hourly, in chunks.
  const retentionDays = mctx.config.guards.shadowRetentionDays;
  let purgeTimer: NodeJS.Timeout | undefined;
  if (retentionDays > 0) {
    const purge = () =>
      void purgeShadow(db, Date.now() - retentionDays * 86_400_000)
        .then((n) => (n > 0 ? log.info({ deleted: n, retentionDays }, 'guard shadow results purged') : undefined))
        .catch((e) => log.warn({ err: (e as Error)?.message }, 'guard shadow purge failed'));
    purgeTimer = setInterval(purge, 3_600_000);
    purgeTimer.unref();
    setImmediate(purge);
  }
  const mod: GuardsModule = {
    name: 'guards',
    engine,
    steps: {
      async requestGuards(ctx) {
        const scope = guardScope(ctx.principal);
        // Guards switched off for this caller (globally or by override): nothing to inspect or record.
        if (!engine.hasRequestGuards(scope)) return;
        const conversationId = ctx.state.conversationId as string | undefined;
        // The vault is scoped to tenant and key: another key guessing a conversation id gets nothing back.
        const vaultScope = ctx.principal ? `${ctx.principal.tenantId}/${ctx.principal.keyId ?? ctx.principal.subject}` : undefined;
        let run;
        try {
          run = await engine.runRequest(ctx.api, ctx.body, {
            ...scope,
            ...(vaultScope ? { tenant: vaultScope } : {}),
            ...(conversationId ? { conversationId } : {}),
            requestId: ctx.requestId,
            state: ctx.state,
          });
        } catch (e) {
          throw requestRunError(e);
        }
        const { outcome } = run;
        // In a conversation the model may refer to placeholders of earlier turns (e.g. Responses
        // `previous_response_id`): restore the whole conversation's table, which is scoped to tenant and key.
        const earlier = conversationId && vaultScope ? engine.vault.peek(vaultScope, conversationId) : undefined;
        const pseudonyms = earlier && earlier.size > 0 ? new Map([...earlier, ...outcome.run.pseudonyms]) : outcome.run.pseudonyms;
        ctx.state.guardRun = { outcome, pseudonyms } satisfies GuardRunState;
        decisionHeaders(ctx, outcome);
        if (outcome.action === 'block') {
          if (outcome.failed) log.warn({ reqId: ctx.requestId, guard: outcome.decidedBy, records: outcome.records.filter((r) => r.error) }, 'guard failed closed');
          throw requestBlockError(outcome);
        }
        ctx.body = run.body;
      },
      responseGuards(ctx, body) {
        const st = ctx.state.guardRun as GuardRunState | undefined;
        if (!st || st.pseudonyms.size === 0) return body;
        return restoreBody(body, st.pseudonyms);
      },
      streamGuards(ctx) {
        const st = ctx.state.guardRun as GuardRunState | undefined;
        if (!st || st.pseudonyms.size === 0) return undefined;
        return createRestoreTransform(ctx.api, st.pseudonyms);
      },
      async done(ctx) {
        const recs = ctx.state.guards as GuardRecord[] | undefined;
        if (!recs || !ctx.principal) return;
        // Verdicts that acted, failed or would have acted go to the log (categories only, never text).
        const notable = recs.filter((r) => r.action !== 'allow' || r.error);
        if (notable.length) log.info({ reqId: ctx.requestId, tenant: ctx.principal.tenantId, guards: notable.map((r) => ({ guard: r.guard, mode: r.mode, action: r.action, categories: r.categories, ms: r.latencyMs, ...(r.error ? { error: r.error } : {}), ...(r.uncertain ? { uncertain: true } : {}) })) }, 'guard verdicts');
        if (recs.some((r) => r.mode === 'shadow')) await recordShadow(db, ctx.principal.tenantId, ctx.requestId, recs);
      },
    },
    routes(app: FastifyInstance) {
      // A suspended key is refused here too, and a throttled one's calls count against its rate.
      const gate = keyGate(mctx.modules);
      app.addHook('onRequest', (req: FastifyRequest, _reply, done) => {
        const h = req.headers[CONVERSATION_HEADER];
        if (typeof h === 'string' && CONVERSATION_RE.test(h) && req.pcl) req.pcl.state.conversationId = h;
        done();
      });
      app.post('/v1/guard/check', async (req) => {
        const principal = await identify({ identity: mctx.identity }, req);
        req.pcl.principal = principal;
        // Scoped like a moderation call: keys whose scopes exclude `moderations` get 403.
        (mctx.modules.get('policy') as (GatewayModule & { enforce?(ctx: RequestContext, operation: string): void }) | undefined)?.enforce?.(req.pcl, 'moderations');
        await gate(req.pcl);
        const { input, stage, detectors } = parseCheckBody(req.body);
        try {
          return await check(input, { stage, engine, tenant: principal.tenantName, ...(principal.tier !== undefined ? { tier: principal.tier } : {}), ...(principal.keyId !== undefined ? { keyId: principal.keyId } : {}), ...(detectors ? { detectors } : {}) });
        } catch (e) {
          if (e instanceof GuardLimitError) throw limitError(e);
          if (e instanceof CheckInputError) throw new GatewayError('PCL_INVALID_REQUEST', { message: e.message, ...(e.param ? { param: e.param } : {}) });
          throw e;
        }
      });
      app.get('/v1/guard/shadow', async (req) => {
        const principal = await identify({ identity: mctx.identity }, req);
        req.pcl.principal = principal;
        await gate(req.pcl);
        const q = req.query as Record<string, string | undefined>;
        const since = q.since !== undefined ? Number(q.since) : Date.now() - 7 * 86_400_000;
        const limit = q.limit !== undefined ? Number(q.limit) : 20;
        if (!Number.isFinite(since) || !Number.isFinite(limit)) throw new GatewayError('PCL_INVALID_REQUEST', { message: "'since' and 'limit' must be numbers." });
        return queryShadow(db, principal.tenantId, { since, limit });
      });
    },
    close: () => {
      if (purgeTimer) clearInterval(purgeTimer);
      return engine.close();
    },
  };
  // Guards switched off in the config (no tenant, tier or key override can switch them back on):
  // no step of this module has anything to do on a proxied request, so none is on its path.
  if (!engine.config.enabled) mod.steps = {};
  return mod;
}

/** The module factory listed in the composition root. */
export async function guardsModule(mctx: ModuleContext): Promise<GuardsModule> {
  return createGuardsModule(mctx, await createGatewayGuardEngine(mctx));
}
