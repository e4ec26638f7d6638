/**
 * The `admin` gateway module: serves the admin API under /admin/v1 with admin-key
 * authentication (`pcla_…`, roles owner/operator/auditor) and the OpenAPI document.
 */
import type { FastifyRequest } from 'fastify';
import { loadPepper } from '../../identity/keys.js';
import { Lifecycle } from '../../identity/lifecycle.js';
import type { PolicyModule } from '../../policy/module.js';
import type { GatewayModule, ModuleFactory } from '../modules.js';
import { buildOpenApi } from './openapi.js';
import { ADMIN_ROUTES, runAdminRoute, type AdminDeps } from './routes.js';
import { authenticateAdminRequest } from './auth.js';

/** The admin module, exposing the lifecycle service (for other modules and tests). */
export interface AdminModule extends GatewayModule {
  lifecycle: Lifecycle;
}

/** Creates the admin module; needs the policy module before it. */
export const adminModule: ModuleFactory = ({ config, db, identity, env, modules }) => {
  const policy = modules.get('policy') as PolicyModule | undefined;
  if (!policy) throw new Error('the admin module needs the policy module');
  const lifecycle = new Lifecycle(db, loadPepper(config.dataDir, env), (ids) => ids.forEach((id) => identity.invalidate(id)));
  const deps: AdminDeps = { lifecycle, engine: policy.engine, config };
  const openapi = buildOpenApi(ADMIN_ROUTES);

  const authenticate = (req: FastifyRequest) => authenticateAdminRequest(identity, req);

  const mod: AdminModule = {
    name: 'admin',
    lifecycle,
    routes(app) {
      if (!config.admin.enabled) return;
      app.get('/admin/v1/openapi.json', async () => openapi);
      for (const route of ADMIN_ROUTES) {
        app.route({
          method: route.method,
          url: route.path,
          handler: async (req, reply) => {
            const admin = await authenticate(req);
            const actor = { id: admin.id, role: admin.role, source: req.ip, requestId: String(req.id) };
            const out = await runAdminRoute(route, deps, admin, actor, {
              params: req.params as Record<string, string>,
              query: req.query,
              body: req.body ?? {},
            });
            reply.code(route.status ?? 200).header('cache-control', 'no-store');
            return out;
          },
        });
      }
    },
  };
  return mod;
};
