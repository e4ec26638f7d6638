/**
 * The `policy` gateway module: the `authorize` proxy step (operation, model, tools, output cap,
 * data boundary, optional Cedar) and the filtering of `/v1/models` to what the caller may use.
 * Denials answer 403 with a generic message; the reason is kept in `ctx.state.policy` for audit.
 */
import { GatewayError } from '../errors.js';
import type { RequestContext } from '../server/context.js';
import type { Principal } from '../identity/types.js';
import type { GatewayModule, ModuleFactory } from '../server/modules.js';
import { loadCedarFiles } from './cedar.js';
import { createPolicyEngine, maxOutputOf, operationOf, toolsOf, type Decision, type PolicyEngine } from './engine.js';

/** What the policy module leaves in `ctx.state.policy`. */
export interface PolicyState {
  operation: string;
  decision: 'allow' | 'deny';
  reason?: string;
  layer?: string;
  detail?: string;
  /** Output-token cap in force (smallest over the layers). */
  maxOutputTokens?: number;
  /** The model's data-boundary label. */
  dataBoundary?: string;
}

/** The policy module, exposing its engine to later modules (admin API, object routes). */
export interface PolicyModule extends GatewayModule {
  engine: PolicyEngine;
  /** Authorizes `operation` for the request's principal or throws 403 (records ctx.state.policy). */
  enforce(ctx: RequestContext, operation: string, model?: string): void;
}

/** The decision on a request body of `api` (operation, model, tools, output cap), as the `authorize` step takes it. */
export function requestDecision(engine: PolicyEngine, principal: Principal, api: string, body: Record<string, unknown>, model: string | undefined, stream: boolean): Decision {
  const tools = toolsOf(api, body);
  const maxOut = maxOutputOf(api, body);
  return engine.authorize(principal, {
    operation: operationOf(api),
    ...(model !== undefined ? { model } : {}),
    ...(tools ? { tools } : {}),
    ...(maxOut !== undefined ? { maxOutputTokens: maxOut } : {}),
    context: { stream },
  });
}

/** The 403 of a denial (its reason kept for the log and audit, never sent). */
export function denialError(d: Extract<Decision, { allow: false }>): GatewayError {
  return new GatewayError('PCL_FORBIDDEN', { internal: { reason: d.reason, layer: d.layer, detail: d.detail } });
}

/** Records a decision in the context and throws 403 on deny. */
function apply(ctx: RequestContext, operation: string, d: Decision): void {
  const st: PolicyState = d.allow
    ? { operation, decision: 'allow', ...(d.maxOutputTokens !== undefined ? { maxOutputTokens: d.maxOutputTokens } : {}), ...(d.dataBoundary !== undefined ? { dataBoundary: d.dataBoundary } : {}) }
    : { operation, decision: 'deny', reason: d.reason, layer: d.layer, detail: d.detail };
  ctx.state.policy = st;
  if (!d.allow) throw denialError(d);
}

/** Creates the policy module. */
export const policyModule: ModuleFactory = ({ config }) => {
  const cedar = config.policy.cedar ? loadCedarFiles(config.policy.cedar.policiesFile, config.policy.cedar.entitiesFile) : undefined;
  const engine = createPolicyEngine(config, cedar);
  const mod: PolicyModule = {
    name: 'policy',
    engine,
    enforce(ctx, operation, model) {
      if (!ctx.principal) throw new GatewayError('PCL_UNAUTHENTICATED');
      apply(ctx, operation, engine.authorize(ctx.principal, { operation, ...(model !== undefined ? { model } : {}) }));
    },
    steps: {
      authorize(ctx) {
        if (!ctx.principal) throw new GatewayError('PCL_UNAUTHENTICATED');
        apply(ctx, operationOf(ctx.api), requestDecision(engine, ctx.principal, ctx.api, ctx.body, ctx.model, ctx.stream));
      },
    },
    routes(app) {
      // /v1/models is served by the core app; narrow its list to the caller's models here.
      app.addHook('preSerialization', async (req, _reply, payload) => {
        if (req.routeOptions.url !== '/v1/models' || req.method !== 'GET') return payload;
        const p = req.pcl?.principal;
        const body = payload as { data?: Array<{ id: string }> } | null;
        if (!p || !body || !Array.isArray(body.data)) return payload;
        apply(req.pcl, 'models:list', engine.authorize(p, { operation: 'models:list' }));
        return { ...body, data: body.data.filter((m) => engine.modelVisible(p, m.id)) };
      });
    },
  };
  return mod;
};
