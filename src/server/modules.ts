/**
 * Gateway modules: each concern (policy, limits, guards, audit, metrics…) contributes proxy
 * steps, routes and a close hook. The composition root lists them in order; steps run in
 * that order (authorize/admit/guards), `done` runs for every module even when one fails.
 */
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import type { Db } from '../store/db.js';
import type { Identity } from '../identity/service.js';
import type { Router } from '../providers/router.js';
import type { ProxySteps, RequestContext, SseEvent, StreamTransform } from './context.js';
import type { AfterResponse } from './after-response.js';

/** What a module factory receives. */
export interface ModuleContext {
  config: Config;
  db: Db;
  logger: Logger;
  identity: Identity;
  router: Router;
  env: Record<string, string | undefined>;
  /** Other modules created before this one, by name (e.g. metrics used by limits). */
  modules: ReadonlyMap<string, GatewayModule>;
  /** PostgreSQL schema in tests, when set. */
  pgSchema?: string;
  /**
   * The queue of post-response work (request log lines, `done` steps): a module that reads what
   * those steps record outside the app's routes (a metrics port, a flush) drains it first.
   */
  afterResponse?: Pick<AfterResponse, 'drain'>;
}

/** A module of the gateway. */
export interface GatewayModule {
  name: string;
  steps?: ProxySteps;
  /** Registers extra HTTP routes (admin API, guard check API, metrics…). */
  routes?(app: FastifyInstance): void | Promise<void>;
  /** Readiness (e.g. Redis reachable). */
  ready?(): Promise<boolean>;
  close?(): Promise<void>;
}

/** A module factory. */
export type ModuleFactory = (ctx: ModuleContext) => GatewayModule | Promise<GatewayModule>;

/**
 * The key gate of the routes outside the proxy (object routes, `/v1/models`, the guard API): the
 * analytics module's admission step, which refuses a suspended key (403) and counts a throttled
 * one's call against its rate (429 past it), as on the proxied routes. Looked up per call, so a
 * module created later is found; nothing when analytics is off.
 */
export function keyGate(modules: ReadonlyMap<string, GatewayModule>): (ctx: RequestContext) => void | Promise<void> {
  return (ctx) => modules.get('analytics')?.steps?.admit?.(ctx);
}

function chainTransforms(ts: StreamTransform[]): StreamTransform {
  return {
    async onEvent(ev, parsed) {
      let evs: Array<{ ev: SseEvent; parsed: unknown }> = [{ ev, parsed }];
      for (const t of ts) {
        const next: Array<{ ev: SseEvent; parsed: unknown }> = [];
        for (const x of evs) for (const y of await t.onEvent(x.ev, x.parsed)) next.push({ ev: y, parsed: y === x.ev ? x.parsed : safeParse(y.data) });
        evs = next;
      }
      return evs.map((x) => x.ev);
    },
    async end() {
      const out: SseEvent[] = [];
      for (const t of ts) out.push(...(await t.end()));
      return out;
    },
    reaskPending() {
      for (const t of ts) {
        const r = t.reaskPending?.();
        if (r) return r;
      }
      return undefined;
    },
  };
}

function safeParse(s: string): unknown {
  if (s === '[DONE]') return undefined;
  try {
    return JSON.parse(s);
  } catch {
    return undefined;
  }
}

/**
 * Runs request steps in order; a step that returns no promise costs no microtask hop (most are
 * synchronous), and the result is a promise only when some step was asynchronous.
 */
function sequence(fs: ReadonlyArray<(ctx: RequestContext) => void | Promise<void>>): (ctx: RequestContext) => void | Promise<void> {
  const from = async (ctx: RequestContext, i: number, pending: Promise<void>): Promise<void> => {
    await pending;
    for (let j = i; j < fs.length; j++) await fs[j]!(ctx);
  };
  return (ctx) => {
    for (let i = 0; i < fs.length; i++) {
      const r = fs[i]!(ctx);
      if (r && typeof (r as Promise<void>).then === 'function') return from(ctx, i + 1, r as Promise<void>);
    }
    return undefined;
  };
}

/** Composes the modules' steps into one ProxySteps, in module order. */
export function composeSteps(mods: readonly GatewayModule[], logger: Logger): ProxySteps {
  const withStep = <K extends keyof ProxySteps>(k: K) => mods.filter((m) => m.steps?.[k]).map((m) => m.steps![k]!) as NonNullable<ProxySteps[K]>[];
  const authorize = withStep('authorize');
  const admit = withStep('admit');
  const requestGuards = withStep('requestGuards');
  const responseGuards = withStep('responseGuards');
  const streamGuards = withStep('streamGuards');
  const reaskStream = withStep('reaskStream');
  const done = mods.filter((m) => m.steps?.done);
  const settle = mods.filter((m) => m.steps?.settle);
  const steps: ProxySteps = {};
  if (authorize.length) steps.authorize = sequence(authorize);
  if (admit.length) steps.admit = sequence(admit);
  if (requestGuards.length) steps.requestGuards = sequence(requestGuards);
  if (responseGuards.length) {
    // Like `sequence`: synchronous steps run back to back, a promise only once one step returns one.
    const from = async (ctx: RequestContext, i: number, pending: Promise<Record<string, unknown>>) => {
      let b = await pending;
      for (let j = i; j < responseGuards.length; j++) b = await responseGuards[j]!(ctx, b);
      return b;
    };
    steps.responseGuards = (ctx, body) => {
      let b = body;
      for (let i = 0; i < responseGuards.length; i++) {
        const r = responseGuards[i]!(ctx, b);
        if (r instanceof Promise) return from(ctx, i + 1, r);
        b = r;
      }
      return b;
    };
  }
  if (streamGuards.length) {
    steps.streamGuards = (ctx: RequestContext) => {
      const ts = streamGuards.map((f) => f(ctx)).filter((t): t is StreamTransform => t !== undefined);
      return ts.length === 0 ? undefined : ts.length === 1 ? ts[0] : chainTransforms(ts);
    };
  }
  if (reaskStream.length) steps.reaskStream = reaskStream[0]!;
  // Every module's step runs even when an earlier one fails (the failure is logged). Synchronous
  // steps run back to back without a microtask each; the chain waits only for a step that returns
  // a promise.
  const each = (list: GatewayModule[], k: 'settle' | 'done') => {
    const failed = (m: GatewayModule, ctx: RequestContext, e: unknown) => logger.error({ reqId: ctx.requestId, module: m.name, err: (e as Error)?.message }, `module ${k} step failed`);
    const run = (ctx: RequestContext, from: number): void | Promise<void> => {
      for (let i = from; i < list.length; i++) {
        const m = list[i]!;
        let r: void | Promise<void>;
        try {
          r = m.steps![k]!(ctx);
        } catch (e) {
          failed(m, ctx, e);
          continue;
        }
        if (r && typeof (r as Promise<void>).then === 'function') {
          return (r as Promise<void>).then(
            () => run(ctx, i + 1),
            (e: unknown) => {
              failed(m, ctx, e);
              return run(ctx, i + 1);
            },
          );
        }
      }
      return undefined;
    };
    return (ctx: RequestContext) => run(ctx, 0);
  };
  if (settle.length) steps.settle = each(settle, 'settle');
  if (done.length) steps.done = each(done, 'done');
  return steps;
}
