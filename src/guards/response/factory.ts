/**
 * The factory of the `response-guards` module listed in the composition root. The module itself
 * (./module.ts: output checker, stream sessions, tool checks — confusables tables, marked,
 * sanitize-html, ajv…) is imported only when guards are enabled, at start. With
 * `guards.enabled: false` (which no tenant, tier or key override can switch back on) no response
 * guard runs for anyone, so the module keeps only what does not depend on them: the approval
 * routes and the client body recorded before the policy step.
 */
import type { FastifyInstance } from 'fastify';
import type { PolicyModule } from '../../policy/module.js';
import type { RequestContext } from '../../server/context.js';
import type { GatewayModule, ModuleContext } from '../../server/modules.js';
import { registerApprovalRoutes } from '../approvals/routes.js';

/** The module factory (after the guards module). */
export async function responseGuardsModule(mctx: ModuleContext): Promise<GatewayModule> {
  if (mctx.config.guards.enabled) return (await import('./module.js')).createResponseGuardsModule(mctx);
  const policy = mctx.modules.get('policy') as PolicyModule | undefined;
  if (policy?.steps?.authorize) {
    // As the full module does: later modules (analytics, audit) read the body the client sent.
    const authorize = policy.steps.authorize.bind(policy.steps);
    policy.steps.authorize = (ctx: RequestContext) => {
      ctx.state.clientBody = ctx.body;
      return authorize(ctx);
    };
  }
  return {
    name: 'response-guards',
    routes(app: FastifyInstance) {
      registerApprovalRoutes(app, { db: mctx.db.kysely, identity: mctx.identity, enabled: mctx.config.admin.enabled });
    },
  };
}
