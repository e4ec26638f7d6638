/**
 * The `response-guards` gateway module: request side (offered tools against the allow-list,
 * tool poisoning, taint sources, the system-prompt canary), response side (whole bodies and
 * streams through the output checker and the tool-call checks), approvals (tickets, the
 * `x-portcullis-approval` retry header, admin routes) and the verdict records in `ctx.state`.
 */
import { randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { GatewayError } from '../../errors.js';
import { newCanary } from '../../detect/leakage/random.js';
import { toolAllowed } from '../../detect/tools/index.js';
import type { PolicyModule } from '../../policy/module.js';
import { guardScope, type GuardsModule } from '../../server/guard-api.js';
import type { RequestContext } from '../../server/context.js';
import type { GatewayModule, ModuleContext } from '../../server/modules.js';
import { readBounded } from '../../server/upstream-errors.js';
import { addUsage, inputEstimate, OutputMeter, usageFromBody } from '../../server/usage.js';
import { inspect, writeBack } from '../inspect.js';
import type { GuardsConfig, PolicyScope } from '../config.js';
import type { GuardRecord } from '../types.js';
import type { UpstreamResponse, UpstreamSignal } from '../../providers/types.js';
import { registerApprovalRoutes } from '../approvals/routes.js';
import { callHash, consumeTicket, countPending, createTicket, getTicket, requestHash } from '../approvals/store.js';
import { detectToolPoisoning, offeredTools, taintSources, type OfferedToolInfo } from '../tools/index.js';
import { guardBody } from './body.js';
import { createOutputChecker, urlsIn } from './scan.js';
import { ResponseSession, type ApprovalResolver } from './session.js';
import { createGuardTransform } from './stream.js';

/** Header carrying approved ticket ids on a retried request (comma-separated). */
export const APPROVAL_HEADER = 'x-portcullis-approval';
const TICKET_RE = /^apr_[0-9a-f]{24}$/;

/** What the module keeps per request in `ctx.state.responseGuards` (no texts except what the checks need). */
export interface ResponseGuardState {
  cfg: GuardsConfig;
  canary?: string;
  systemPrompt?: string;
  trustedUrls: string[];
  offered: OfferedToolInfo[];
  tainted: string[];
  /** Tools removed from the request (strip mode) and why. */
  stripped: Array<{ name: string; reason: 'not_allowed' | 'tool_poisoning' }>;
}

/** Estimated output tokens of a whole response body. */
function meterOf(body: unknown): number {
  const m = new OutputMeter();
  m.body(body);
  return m.tokens();
}

/** What the read-time check made of a stored output. */
export interface StoredScan {
  body: Record<string, unknown>;
  /** `block`: the body is in its blocked form; `transform`: rewritten; `allow`: unchanged. */
  action: 'allow' | 'transform' | 'block';
  /** The guard that blocked, or the first that rewrote. */
  guard?: string;
}

/** The response-guards module, as other modules see it. */
export interface ResponseGuardsModule extends GatewayModule {
  /** Checks a stored output read back through the gateway (see `scanStored` below). */
  scanStored(ctx: RequestContext, body: Record<string, unknown>, api?: string, state?: Record<string, unknown>): Promise<StoredScan>;
}

/** The audit summary of approvals in `ctx.state.approvals`. */
export interface ApprovalAudit {
  event: 'requested' | 'used' | 'denied';
  ticket: string;
  tool: string;
}

function scopeOf(ctx: RequestContext): PolicyScope {
  return guardScope(ctx.principal);
}

/** Removes tools by index from a request body (and a `tool_choice` that names one of them). */
function withoutTools(body: Record<string, unknown>, remove: ReadonlySet<number>, names: ReadonlySet<string>): Record<string, unknown> {
  if (remove.size === 0) return body;
  const out = { ...body };
  const tools = (body.tools as unknown[]).filter((_, i) => !remove.has(i));
  if (tools.length > 0) out.tools = tools;
  else {
    delete out.tools;
    delete out.tool_choice;
    delete out.parallel_tool_calls;
  }
  const tc = out.tool_choice as any;
  const chosen = tc && typeof tc === 'object' ? (tc.function?.name ?? tc.name) : undefined;
  if (typeof chosen === 'string' && names.has(chosen)) delete out.tool_choice;
  return out;
}

/** Adds the canary note to the system prompt in the API's own place. */
function addCanary(api: string, body: Record<string, unknown>, note: string): Record<string, unknown> | undefined {
  const b = structuredClone(body) as Record<string, any>;
  if (api === 'chat' && Array.isArray(b.messages)) {
    const sys = b.messages.find((m: any) => m && (m.role === 'system' || m.role === 'developer'));
    if (sys && typeof sys.content === 'string') sys.content = `${sys.content}\n\n${note}`;
    else if (sys && Array.isArray(sys.content)) sys.content = [...sys.content, { type: 'text', text: note }];
    else b.messages = [{ role: 'system', content: note }, ...b.messages];
    return b;
  }
  if (api === 'messages') {
    if (typeof b.system === 'string' && b.system) b.system = `${b.system}\n\n${note}`;
    else if (Array.isArray(b.system)) b.system = [...b.system, { type: 'text', text: note }];
    else b.system = note;
    return b;
  }
  if (api === 'responses') {
    b.instructions = typeof b.instructions === 'string' && b.instructions ? `${b.instructions}\n\n${note}` : note;
    return b;
  }
  return undefined;
}

/** Creates the response-guards module (needs the guards module; uses the policy module when present). */
export function createResponseGuardsModule(mctx: ModuleContext): ResponseGuardsModule {
  const guards = mctx.modules.get('guards') as GuardsModule | undefined;
  if (!guards) throw new Error('the response-guards module needs the guards module');
  const engine = guards.engine;
  const policy = mctx.modules.get('policy') as PolicyModule | undefined;
  const db = mctx.db.kysely;
  const hashKey = mctx.env[engine.config.hashKeyEnv] || randomBytes(32);
  const log = mctx.logger;

  // Strip mode for tools the policy scopes do not allow: must run before the policy's authorize step.
  if (policy?.steps?.authorize) {
    const authorize = policy.steps.authorize.bind(policy.steps);
    policy.steps.authorize = (ctx: RequestContext) => {
      ctx.state.clientBody = ctx.body;
      const cfg = engine.configFor(scopeOf(ctx));
      if (cfg.enabled && cfg.tools.enabled && cfg.tools.onDisallowed === 'strip' && ctx.principal && Array.isArray(ctx.body.tools)) {
        const remove = new Set<number>();
        const names = new Set<string>();
        for (const t of offeredTools(ctx.body)) {
          const d = policy.engine.authorize(ctx.principal, { operation: ctx.api, tools: [t.name] });
          if (!d.allow && d.reason === 'tool_not_allowed') {
            remove.add(t.index);
            names.add(t.name);
          }
        }
        if (remove.size > 0) {
          ctx.body = withoutTools(ctx.body, remove, names);
          ((ctx.state.toolsStripped ??= []) as Array<{ name: string; reason: string }>).push(...[...names].map((name) => ({ name, reason: 'not_allowed' })));
        }
      }
      return authorize(ctx);
    };
  }

  function requestSide(ctx: RequestContext): void {
    const cfg = engine.configFor(scopeOf(ctx));
    if (!cfg.enabled || (!cfg.response.enabled && !cfg.tools.enabled)) return;
    const st: ResponseGuardState = { cfg, trustedUrls: [], offered: [], tainted: [], stripped: [...(((ctx.state.toolsStripped as ResponseGuardState['stripped']) ?? []))] };
    const tc = cfg.tools;
    if (tc.enabled && Array.isArray(ctx.body.tools)) {
      let offered = offeredTools(ctx.body);
      const remove = new Set<number>();
      const names = new Set<string>();
      if (tc.allow) {
        const bad = offered.filter((t) => !toolAllowed(t.name, tc.allow!));
        if (bad.length > 0 && tc.mode === 'enforce') {
          if (tc.onDisallowed === 'reject') {
            ctx.state.policy = { ...((ctx.state.policy as object) ?? {}), toolDenied: bad.map((t) => t.name) };
            throw new GatewayError('PCL_FORBIDDEN', { internal: { reason: 'tool_not_allowed', tools: bad.map((t) => t.name) } });
          }
          for (const t of bad) remove.add(t.index), names.add(t.name), st.stripped.push({ name: t.name, reason: 'not_allowed' });
        }
      }
      if (tc.poisoning.enabled) {
        const t0 = performance.now();
        const poisoned = offered.filter((t) => !remove.has(t.index) && detectToolPoisoning(t).length > 0);
        const ms = performance.now() - t0;
        const rec = { guard: 'tools:poisoning', stage: 'request' as const, mode: tc.mode, action: poisoned.length === 0 ? 'allow' : tc.poisoning.action === 'flag' ? 'flag' : tc.poisoning.action === 'strip' ? 'transform' : 'block', categories: poisoned.length ? ['tool_poisoning'] : [], findings: poisoned.length, latencyMs: Math.round(ms * 1000) / 1000, applied: poisoned.length > 0 && tc.mode === 'enforce' && tc.poisoning.action !== 'flag' };
        ((ctx.state.guards ??= []) as unknown[]).push(rec);
        if (poisoned.length > 0 && tc.mode === 'enforce') {
          if (tc.poisoning.action === 'block') {
            throw new GatewayError('PCL_CONTENT_POLICY', { details: { categories: ['tool_poisoning'] }, headers: { 'x-portcullis-guard': 'tools:poisoning', 'x-portcullis-action': 'block' } });
          }
          if (tc.poisoning.action === 'strip') for (const t of poisoned) remove.add(t.index), names.add(t.name), st.stripped.push({ name: t.name, reason: 'tool_poisoning' });
        }
      }
      if (remove.size > 0) {
        ctx.body = withoutTools(ctx.body, remove, names);
        offered = offeredTools(ctx.body);
      }
      st.offered = offered;
    }
    const inspected = inspect(ctx.api, ctx.body);
    if (tc.enabled && tc.taint.enabled && st.offered.length > 0) st.tainted = taintSources(inspected.segments.filter((s) => s.role === 'tool' || s.role === 'retrieved').map((s) => s.text));
    if (cfg.response.enabled) {
      const system = inspected.segments.filter((s) => s.role === 'system' || s.role === 'developer').map((s) => s.text).join('\n');
      if (system) st.systemPrompt = system;
      for (const s of inspected.segments) if (s.role === 'system' || s.role === 'developer' || s.role === 'user') st.trustedUrls.push(...urlsIn(s.text));
      if (cfg.response.canary.enabled && cfg.response.mode === 'enforce') {
        const c = newCanary();
        const b = addCanary(ctx.api, ctx.body, c.note);
        if (b) {
          ctx.body = b;
          st.canary = c.token;
        }
      }
    }
    ctx.state.responseGuards = st;
  }

  function sessionFor(ctx: RequestContext, stage: 'response' | 'stream'): ResponseSession | undefined {
    const st = ctx.state.responseGuards as ResponseGuardState | undefined;
    if (!st) return undefined;
    const cfg = st.cfg;
    const checker = createOutputChecker(cfg, { ...(st.canary ? { canary: st.canary } : {}), ...(st.systemPrompt ? { systemPrompt: st.systemPrompt } : {}), trustedUrls: st.trustedUrls }, hashKey);
    const judge = cfg.response.unsafe.judge ? engine.judges.get('llama-guard') : undefined;
    const tickets = ((ctx.state.approvalTickets as string[] | undefined) ?? []).filter((t) => TICKET_RE.test(t));
    const audits = ((ctx.state.approvals ??= []) as ApprovalAudit[]);
    const approvals: ApprovalResolver = {
      async resolve(call, reason, categories) {
        const p = ctx.principal!;
        const rh = requestHash(ctx.api, (ctx.state.clientBody as Record<string, unknown>) ?? ctx.body);
        const ah = callHash(call.name, call.arguments);
        for (const t of tickets) {
          const r = await consumeTicket(db, t, { tenantId: p.tenantId, ...(p.keyId ? { keyId: p.keyId } : {}), requestHash: rh, tool: call.name, argumentsHash: ah, requestId: ctx.requestId });
          if (r === 'used') {
            audits.push({ event: 'used', ticket: t, tool: call.name });
            return { approved: true };
          }
          if (r === 'pending') {
            // The same call, still waiting for a reviewer: answer with the same ticket.
            const row = await getTicket(db, t);
            if (row) return { approved: false, ticket: row.id, expiresAt: Number(row.expires_at) };
          }
          if (r === 'denied') {
            audits.push({ event: 'denied', ticket: t, tool: call.name });
            throw new GatewayError('PCL_APPROVAL_DENIED', { headers: { 'x-portcullis-guard': 'response:tools', 'x-portcullis-action': 'block' } });
          }
        }
        const ac = cfg.approvals;
        if ((await countPending(db, p.tenantId)) >= ac.maxPendingPerTenant) throw new GatewayError('PCL_RATE_LIMITED', { message: 'Too many tool calls are waiting for approval.', headers: { 'retry-after': '60' } });
        const row = await createTicket(db, {
          tenantId: p.tenantId,
          ...(p.keyId ? { keyId: p.keyId } : {}),
          subject: p.subject,
          requestId: ctx.requestId,
          requestHash: rh,
          api: ctx.api,
          ...(ctx.model ? { model: ctx.model } : {}),
          tool: call.name,
          argumentsHash: ah,
          arguments: call.arguments,
          reason,
          categories,
          ttlMs: ac.ttlSeconds * 1000,
          maxStoredArgumentChars: ac.maxStoredArgumentChars,
        });
        audits.push({ event: 'requested', ticket: row.id, tool: call.name });
        log.info({ reqId: ctx.requestId, ticket: row.id, tool: call.name, reason }, 'tool call held for approval');
        return { approved: false, ticket: row.id, expiresAt: Number(row.expires_at) };
      },
    };
    const s = new ResponseSession({
      cfg,
      checker,
      ...(judge ? { judge } : {}),
      ...(cfg.tools.enabled ? { tools: { cfg: cfg.tools, offered: st.offered.map((t) => t.raw), ...(cfg.tools.allow ? { allowed: cfg.tools.allow } : {}), tainted: st.tainted, allowHosts: cfg.response.exfil.allowHosts } } : {}),
      ...(ctx.principal ? { approvals } : {}),
      state: ctx.state,
      stage,
    });
    ctx.state.responseSession = s;
    // The output is checked in enforce mode: a stored response that passes is marked so (objects module).
    if (!s.shadow && cfg.response.enabled) ctx.state.outputGuarded = true;
    return s;
  }

  /**
   * Read-time check of a stored output the gateway did not see whole (`GET /v1/responses/{id}` of
   * a background or cut-short response, the lines of a batch's output file): the output checks of
   * the caller's policy, without the creating request's context (no canary, no system prompt to
   * compare, no offered tools, no approvals). Returns the body to send: unchanged, rewritten, or in
   * its blocked form (`onBlock: fallback` gives the fallback message, any other the emptied form).
   * Its guard records go to `state` (the request's by default; a caller scanning many outputs in
   * one request passes its own and merges them).
   */
  async function scanStored(ctx: RequestContext, body: Record<string, unknown>, api = 'responses', state: Record<string, unknown> = ctx.state): Promise<StoredScan> {
    const cfg = engine.configFor(scopeOf(ctx));
    if (!cfg.enabled || !cfg.response.enabled) return { body, action: 'allow' };
    const checker = createOutputChecker(cfg, { trustedUrls: [] }, hashKey);
    const judge = cfg.response.unsafe.judge ? engine.judges.get('llama-guard') : undefined;
    const s = new ResponseSession({ cfg, checker, ...(judge ? { judge } : {}), state, stage: 'response' });
    let out;
    let recs: GuardRecord[] = [];
    try {
      out = await guardBody(s, api, body, { allowReask: false });
    } finally {
      recs = s.finish();
    }
    if (out.block && !s.shadow) return { body: out.body, action: 'block', guard: out.block.guard };
    if (out.changed) return { body: out.body, action: 'transform', guard: recs.find((r) => r.action === 'transform' && r.applied)?.guard ?? 'response' };
    return { body: out.body, action: 'allow' };
  }

  async function reask(ctx: RequestContext, note: string): Promise<Record<string, unknown> | undefined> {
    if (!ctx.provider || !ctx.upstreamModel) return undefined;
    const base: Record<string, unknown> = { ...ctx.body, model: ctx.upstreamModel, stream: false };
    delete base.stream_options;
    const body = writeBack(inspect(ctx.api, base), base, [], new Set(), [note]);
    // Its own timeout, and the request's abort: a client that leaves stops the re-ask too (it used
    // to run on upstream after the client's settlement had freed its concurrency slot).
    const c = new AbortController();
    const timer = setTimeout(() => c.abort(new GatewayError('PCL_UPSTREAM_TIMEOUT', { internal: 're-ask total timeout' })), mctx.config.upstream.totalTimeoutMs);
    const req = ctx.upstreamAbort;
    const onAbort = () => c.abort(req?.reason);
    if (req?.aborted) onAbort();
    else req?.once('abort', onAbort);
    let buf: Buffer;
    let res: UpstreamResponse;
    try {
      res = await ctx.provider.send({ api: ctx.api, body, stream: false, signal: c.signal, requestId: ctx.requestId });
      if (res.status >= 400) {
        res.dump();
        return undefined;
      }
      buf = await readBounded(res.body, mctx.config.upstream.maxResponseBytes);
    } finally {
      clearTimeout(timer);
      req?.removeListener('abort', onAbort);
    }
    const parsed = JSON.parse(buf.toString('utf8')) as Record<string, any>;
    // Both calls are charged. A call that reported no usage counts on an estimate: the admission's
    // input estimate (the re-ask sends the input again) and its output, counted.
    const reported = usageFromBody(ctx.api, parsed);
    const input = inputEstimate(ctx, body);
    const second = reported ?? { inputTokens: input, outputTokens: meterOf(parsed) };
    const first = ctx.usage ?? { inputTokens: input, outputTokens: ctx.outputMeter?.tokens() ?? 0 };
    if (!reported || !ctx.usage) ctx.usageEstimated = true;
    ctx.usage = addUsage(first, second);
    ctx.state.reasked = true;
    return parsed && typeof parsed === 'object' ? parsed : undefined;
  }

  /**
   * The re-ask of a stream blocked before anything was released: the same upstream body plus the
   * corrective note, streamed. Its tokens are added to the first call's by the relay.
   */
  async function reaskStream(ctx: RequestContext, first: Record<string, unknown>, signal: UpstreamSignal): Promise<UpstreamResponse | undefined> {
    const st = ctx.state.responseGuards as ResponseGuardState | undefined;
    if (!st || !ctx.provider || ctx.state.reasked) return undefined;
    const blocked = (ctx.state.responseSession as ResponseSession | undefined)?.blocked;
    const base: Record<string, unknown> = { ...first, stream: true };
    const body = writeBack(inspect(ctx.api, base), base, [], new Set(), [st.cfg.response.reaskNote]);
    const t0 = performance.now();
    let res: UpstreamResponse;
    try {
      res = await ctx.provider.send({ api: ctx.api, body, stream: true, signal, requestId: ctx.requestId });
    } catch (e) {
      if (signal.aborted) throw e;
      log.warn({ reqId: ctx.requestId, err: (e as Error)?.message }, 'stream re-ask failed');
      return undefined;
    }
    if (res.status >= 400 || !String(res.headers['content-type'] ?? '').includes('text/event-stream')) {
      await readBounded(res.body, 65_536).catch(() => res.dump()); // read, not dropped: an unread body errors on destroy
      log.warn({ reqId: ctx.requestId, status: res.status }, 'stream re-ask failed');
      return undefined;
    }
    ctx.state.reasked = true;
    ctx.state.outputWithheld = false; // what the client gets now is the re-asked stream, checked afresh
    // In the guard records (audit event, guard verdict log): the stream was re-asked after this block.
    ((ctx.state.guards ??= []) as GuardRecord[]).push({ guard: 'response:reask', stage: 'stream', mode: 'enforce', action: 'transform', categories: blocked?.categories ?? [], findings: 0, latencyMs: Math.round((performance.now() - t0) * 1000) / 1000, applied: true });
    return res;
  }

  const mod: ResponseGuardsModule = {
    name: 'response-guards',
    scanStored,
    steps: {
      requestGuards(ctx) {
        requestSide(ctx);
      },
      async responseGuards(ctx, body) {
        const s = sessionFor(ctx, 'response');
        if (!s) return body;
        if (!s.cfg.response.enabled && !s.cfg.tools.enabled) return body;
        let out;
        let recs: ReturnType<ResponseSession['finish']> = [];
        try {
          out = await guardBody(s, ctx.api, body, { reask: () => reask(ctx, s.cfg.response.reaskNote) });
        } finally {
          // Records go to ctx.state.guards before the guards module's done step reads them.
          recs = s.finish();
        }
        // Whether the body sent differs from the response the upstream stored under its id (a
        // re-asked answer that passed unchanged is stored as sent).
        ctx.state.outputWithheld = out.reaskPassed ? false : out.block ? !s.shadow : out.changed;
        if (out.block && !s.shadow) {
          ctx.responseHeaders['x-portcullis-guard'] = out.block.guard;
          ctx.responseHeaders['x-portcullis-action'] = ctx.state.reasked ? 'reask' : s.cfg.response.onBlock === 'fallback' ? 'fallback' : 'block';
        } else if (out.changed && !ctx.responseHeaders['x-portcullis-action']) {
          ctx.responseHeaders['x-portcullis-guard'] = recs.find((r) => r.action === 'transform' && r.applied)?.guard ?? 'response';
          ctx.responseHeaders['x-portcullis-action'] = 'transform';
        }
        return out.body;
      },
      streamGuards(ctx) {
        const s = sessionFor(ctx, 'stream');
        if (!s) return undefined;
        return createGuardTransform(s, ctx.api, { reask: ctx.state.reasked !== true });
      },
      reaskStream(ctx, body, signal) {
        return reaskStream(ctx, body, signal);
      },
      done(ctx) {
        (ctx.state.responseSession as ResponseSession | undefined)?.finish();
      },
    },
    routes(app: FastifyInstance) {
      app.addHook('onRequest', (req, _reply, done) => {
        const h = req.headers[APPROVAL_HEADER];
        if (typeof h === 'string' && h.length <= 1000 && req.pcl) req.pcl.state.approvalTickets = h.split(',').map((x) => x.trim()).filter(Boolean).slice(0, 16);
        done();
      });
      registerApprovalRoutes(app, { db, identity: mctx.identity, enabled: mctx.config.admin.enabled });
    },
  };
  return mod;
}

/** The module factory listed in the composition root (after the guards module). */
export function responseGuardsModule(mctx: ModuleContext): GatewayModule {
  return createResponseGuardsModule(mctx);
}
