/**
 * The `metrics` gateway module: records every finished request into the private registry and
 * serves the exposition at `metrics.path` — on the gateway port behind a bearer token, or on a
 * separate port (loopback by default; with the token when one is set, and a start-up warning when
 * it is bound elsewhere without one).
 */
import cluster from 'node:cluster';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { timingSafeEqual, createHash } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { GatewayModule, ModuleFactory } from '../server/modules.js';
import type { LimitsModule } from '../limits/module.js';
import type { AuditModule } from '../audit/module.js';
import { createMetrics, type GatewayMetrics } from './index.js';
import { joinMetricsCluster, type WorkerMetricsLink } from './cluster.js';
import type { MetricsConfig } from './config.js';

/** The metrics module; other modules find it as `modules.get('metrics')`. */
export interface MetricsModule extends GatewayModule {
  metrics: GatewayMetrics;
  /** Address of the separate metrics port, once listening. */
  address(): { port: number; host: string } | null;
}

const digest = (s: string) => createHash('sha256').update(s).digest();

/** Reads the scrape token from the file or env variable (undefined when none is set). */
export function metricsToken(cfg: MetricsConfig, env: Record<string, string | undefined>): string | undefined {
  if (cfg.tokenFile) return readFileSync(cfg.tokenFile, 'utf8').trim() || undefined;
  const t = env[cfg.tokenEnv];
  return t && t.trim() ? t.trim() : undefined;
}

/** Whether a bind address only accepts local connections (127.0.0.0/8, ::1, localhost). */
export function isLoopback(host: string): boolean {
  const h = host.trim().toLowerCase().replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h) || /^::ffff:127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

/** Whether an Authorization header carries the token (constant time). */
function tokenOk(header: string | undefined, token: string): boolean {
  const m = header ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
  return !!m && timingSafeEqual(digest(m[1]!), digest(token));
}

/** Module factory: must be listed before modules that register metrics of their own. */
export const metricsModule: ModuleFactory = ({ config, env, identity, router, modules, logger, afterResponse }) => {
  const cfg = (config as { metrics?: MetricsConfig }).metrics;
  const enabled = cfg?.enabled ?? false;
  /** Models the routes name without a glob (and the demo models): always their own `model` label. */
  const configuredModels: ReadonlySet<string> = new Set(router.listModels());
  const metrics = createMetrics(
    cfg ?? ({ enabled: false, maxLabelValues: 1, perKeyLabels: false, latencyBuckets: [1], processMetrics: false } as unknown as MetricsConfig),
    {
      authFailures: () => identity.failureCounts(),
      // The limits module comes later in the list: look it up at scrape time.
      limiter: () => (modules.get('limits') as LimitsModule | undefined)?.limiter.stats() ?? { fallbackAdmissions: 0, unavailableRefusals: 0, storeErrors: 0 },
      configuredModel: (m) => configuredModels.has(m),
      // The audit module comes later in the list too.
      auditSinks: () => (modules.get('audit') as AuditModule | undefined)?.sinks ?? [],
      auditWriter: () => (modules.get('audit') as AuditModule | undefined)?.writer.stats,
    },
  );
  const token = cfg ? metricsToken(cfg, env) : undefined;
  let server: Server | undefined;
  // In a `serve --workers N` worker, scrapes go through the primary, which aggregates all workers.
  let link: WorkerMetricsLink | undefined;
  // Responses already sent are counted before the scrape (their `done` steps may still be queued).
  const scrape = async () => {
    await afterResponse?.drain();
    return link ? link.scrape() : metrics.scrape();
  };
  const skip = new Set([cfg?.path ?? '/metrics', '/healthz', '/readyz']);

  const mod: MetricsModule = {
    name: 'metrics',
    metrics,
    address() {
      const a = server?.address();
      return a && typeof a === 'object' ? { port: a.port, host: a.address } : null;
    },
    steps: enabled
      ? {
          done(ctx) {
            if (skip.has(ctx.route)) return;
            metrics.observe(ctx);
          },
        }
      : {},
    async routes(app: FastifyInstance) {
      if (!enabled || !cfg) return;
      if (cluster.isWorker && process.send) link = joinMetricsCluster(metrics.registry);
      if (cfg.port !== undefined) {
        server = createServer((req, res) => {
          const path = (req.url ?? '').split('?')[0];
          if (req.method !== 'GET' || path !== cfg.path) {
            res.writeHead(404).end();
            return;
          }
          if (token && !tokenOk(req.headers.authorization, token)) {
            res.writeHead(401, { 'www-authenticate': 'Bearer' }).end();
            return;
          }
          scrape().then(
            (text) => res.writeHead(200, { 'content-type': metrics.contentType, 'cache-control': 'no-store' }).end(text),
            (e: Error) => {
              logger.error({ err: e.message }, 'metrics: scrape failed');
              res.writeHead(500).end();
            },
          );
        });
        await new Promise<void>((resolve, reject) => {
          server!.once('error', reject);
          server!.listen(cfg.port, cfg.host, () => resolve());
        });
        if (!token && !isLoopback(cfg.host)) {
          logger.warn(
            { host: cfg.host, port: mod.address()?.port, path: cfg.path },
            'metrics: the separate metrics port is bound to a non-loopback address without a scrape token (metrics.tokenEnv / tokenFile): anyone who can reach it reads the metrics (tenant names, models, traffic)',
          );
        }
        return;
      }
      if (!token && !cfg.public) {
        logger.warn({ path: cfg.path }, 'metrics: no scrape token set (metrics.tokenEnv / tokenFile) and metrics.public is false; /metrics is not served');
        return;
      }
      app.get(cfg.path, async (req, reply) => {
        if (token && !tokenOk(req.headers.authorization, token)) {
          reply.code(401).header('www-authenticate', 'Bearer').header('content-type', 'application/json; charset=utf-8');
          return JSON.stringify({ error: { message: 'Missing or invalid metrics token.', type: 'authentication_error', code: 'invalid_api_key' } });
        }
        try {
          const text = await scrape();
          reply.header('content-type', metrics.contentType).header('cache-control', 'no-store');
          return text;
        } catch (e) {
          logger.error({ err: (e as Error).message }, 'metrics: scrape failed');
          reply.code(500).header('content-type', 'application/json; charset=utf-8');
          return JSON.stringify({ error: { message: 'Metrics are unavailable.', type: 'server_error', code: 'metrics_unavailable' } });
        }
      });
    },
    async close() {
      link?.stop();
      if (server) await new Promise<void>((r) => server!.close(() => r()));
    },
  };
  return mod;
};
