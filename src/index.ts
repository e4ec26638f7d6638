/**
 * Portcullis: the composition root. `createGateway(config)` wires stores, identity, routing,
 * steps and the HTTP app; nothing else holds global state.
 */
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import pino, { type Logger } from 'pino';
import type { FastifyInstance } from 'fastify';
import type { Config } from './config/schema.js';
import nodeCluster from 'node:cluster';
import { openDb, type Db } from './store/db.js';
import { createCounterStoreFromConfig } from './limits/index.js';
import { bootstrap, loadPepper } from './identity/keys.js';
import { createIdentity, type Identity } from './identity/service.js';
import { createMtlsIdentity, tlsServerOptions } from './identity/mtls.js';
import { objectsModule } from './server/objects.js';
import { createRouter, type Router } from './providers/router.js';
import { buildApp, type RouteRegistrar } from './server/app.js';
import { createAfterResponse } from './server/after-response.js';
import { composeSteps, keyGate, type GatewayModule, type ModuleFactory } from './server/modules.js';
import { guardsModule } from './server/guard-api.js';
import { identityModule } from './identity/module.js';
import { limitsModule } from './limits/module.js';
import { policyModule } from './policy/module.js';
import { adminModule } from './server/admin/module.js';
import { responseGuardsModule } from './guards/response/factory.js';
import { metricsModule } from './metrics/module.js';
import { tracingModule } from './tracing/factory.js';
import { analyticsModule } from './analytics/module.js';
import { auditModule } from './audit/module.js';

/**
 * The modules of the gateway, in the order their steps run. Each concern adds one line here.
 */
const MODULES: ModuleFactory[] = [metricsModule, identityModule, policyModule, adminModule, guardsModule, responseGuardsModule, analyticsModule, limitsModule, objectsModule, auditModule, tracingModule];

export { GatewayError } from './errors.js';
export { check, type CheckOptions, type CheckResult, type CheckFinding, type CheckStage, type CheckMessage } from './guards/check.js';
export { loadConfig, validateConfig, ConfigError } from './config/load.js';
export type { Config } from './config/schema.js';

/** A running (or ready to listen) gateway. */
export interface Gateway {
  app: FastifyInstance;
  config: Config;
  /** The modules, by name. */
  modules: ReadonlyMap<string, GatewayModule>;
  db: Db;
  identity: Identity;
  router: Router;
  logger: Logger;
  /** The bootstrap key created on the very first start (null on later starts). */
  bootstrapKey: { id: string; key: string; tenant: string } | null;
  listen(): Promise<{ url: string; port: number; host: string }>;
  close(): Promise<void>;
}

/** Options that are not configuration (wiring for tests and embedding). */
export interface GatewayOptions {
  logger?: Logger;
  /** Skip creating the bootstrap key (e.g. in cluster workers where the primary did it). */
  skipBootstrap?: boolean;
  /** PostgreSQL schema (tests). */
  pgSchema?: string;
  env?: Record<string, string | undefined>;
  /** Replaces the identity service built from the config (benchmarks: authentication "off"). */
  identity?: Identity;
  /** Longest wait of post-response work when nothing else runs it (ms, default 1; tests set it high to see the other triggers). */
  afterResponseMaxDelayMs?: number;
}

/** How long a buffered log line may wait before it is written (ms). */
const LOG_FLUSH_MS = 200;
/** Buffered log destinations of this process (usually one), flushed together. */
const logDestinations = new Set<ReturnType<typeof pino.destination>>();

function flushLogs(): void {
  for (const d of logDestinations) {
    try {
      d.flushSync();
    } catch {
      /* stdout closed or a write in progress: the next flush retries */
    }
  }
}

/**
 * Creates a pino logger that never logs request bodies or credentials. Lines go to stdout through
 * a 4 KiB buffer (one write per ~10 request lines instead of one per line), flushed at least every
 * 200 ms and synchronously when the process exits.
 */
export function createLogger(level: string): Logger {
  const options = {
    level,
    base: { pid: process.pid },
    redact: { paths: ['req.headers.authorization', 'req.headers["x-api-key"]', '*.apiKey', '*.key', '*.pepper'], censor: '[redacted]' },
  };
  if (level === 'silent') return pino(options);
  const dest = pino.destination({ dest: 1, sync: true, minLength: 4096 });
  if (logDestinations.size === 0) {
    setInterval(flushLogs, LOG_FLUSH_MS).unref();
    process.once('exit', flushLogs);
  }
  logDestinations.add(dest);
  return pino(options, dest);
}

/** Wires a gateway from a validated config. */
export async function createGateway(config: Config, opts: GatewayOptions = {}): Promise<Gateway> {
  const logger = opts.logger ?? createLogger(config.log.level);
  const env = opts.env ?? process.env;
  const cluster = config.store.kind === 'cluster';
  if (cluster && !config.store.postgresUrl) throw new Error('store.kind is cluster but store.postgresUrl is not set');
  const db = await openDb(cluster ? { postgresUrl: config.store.postgresUrl!, ...(opts.pgSchema ? { pgSchema: opts.pgSchema } : {}) } : { dataDir: config.dataDir });
  const pepper = loadPepper(config.dataDir, env);
  if (config.auth.mtls && !config.server.tls?.requestClientCert) {
    await db.close();
    throw new Error('auth.mtls needs server.tls with requestClientCert: true');
  }
  // The verifier (and `jose` with it) is loaded only when JWT auth is configured.
  const jwt = config.auth.jwt ? (await import('./identity/jwt.js')).createJwtVerifier(config.auth.jwt, { db: db.kysely, env }) : undefined;
  const mtls = config.auth.mtls ? createMtlsIdentity(config.auth.mtls, { db: db.kysely, required: config.server.tls?.requireClientCert === true }) : undefined;
  // Failed-auth buckets are shared wherever the limits' counters are (Redis, or the primary over IPC).
  const failureStore = !opts.identity && config.identity.failedAuth.shared && (config.limits.store === 'redis' || nodeCluster.isWorker) ? createCounterStoreFromConfig(config.limits) : undefined;
  const identity = opts.identity ?? createIdentity({ db, pepper, config: config.identity, logger, ...(cluster ? { postgresUrl: config.store.postgresUrl! } : {}), ...(jwt ? { jwt } : {}), ...(mtls ? { mtls } : {}), ...(failureStore ? { failureStore } : {}) });
  const router = createRouter(config, env);
  const bootstrapKey = opts.skipBootstrap ? null : await bootstrap(db.kysely, pepper);

  // Post-response work (request log lines, audit, metrics, analytics): see server/after-response.ts.
  const afterResponse = createAfterResponse({ ...(opts.afterResponseMaxDelayMs !== undefined ? { maxDelayMs: opts.afterResponseMaxDelayMs } : {}), onError: (e) => logger.error({ err: (e as Error)?.message }, 'post-request step failed') });
  const mods: GatewayModule[] = [];
  const byName = new Map<string, GatewayModule>();
  try {
    for (const factory of MODULES) {
      const m = await factory({ config, db, logger, identity, router, env, modules: byName, afterResponse, ...(opts.pgSchema ? { pgSchema: opts.pgSchema } : {}) });
      mods.push(m);
      byName.set(m.name, m);
    }
  } catch (e) {
    for (const m of mods.reverse()) await m.close?.().catch(() => {});
    await router.close();
    await failureStore?.close().catch(() => {});
    await db.close();
    throw e;
  }
  const steps = composeSteps(mods, logger);
  const registrars: RouteRegistrar[] = mods.filter((m) => m.routes).map((m) => (app) => m.routes!(app));
  const app = await buildApp({
    config,
    identity,
    router,
    steps,
    logger,
    log: logger,
    registrars,
    afterResponse,
    keyGate: keyGate(byName),
    ready: async () => (await db.ping()) && (await Promise.all(mods.map((m) => (m.ready ? m.ready() : true)))).every(Boolean),
  });

  let closed = false;
  // TLS termination: an https server hands requests to the fastify router (app.ts stays protocol-agnostic).
  let tlsServer: HttpsServer | undefined;
  return {
    app,
    config,
    modules: byName,
    db,
    identity,
    router,
    logger,
    bootstrapKey,
    async listen() {
      if (config.server.tls) {
        await app.ready();
        const server = createHttpsServer(tlsServerOptions(config.server.tls), (req, res) => app.routing(req, res));
        server.requestTimeout = config.server.requestTimeoutMs;
        tlsServer = server;
        await new Promise<void>((resolve, reject) => {
          server.once('error', reject);
          server.listen(config.server.port, config.server.host, () => resolve());
        });
        const a = server.address() as { port: number; address: string };
        const h = a.address.includes(':') ? `[${a.address}]` : a.address;
        return { url: `https://${h}:${a.port}`, port: a.port, host: a.address };
      }
      await app.listen({ port: config.server.port, host: config.server.host });
      const addr = app.server.address() as { port: number; address: string };
      const host = addr.address.includes(':') ? `[${addr.address}]` : addr.address;
      return { url: `http://${host}:${addr.port}`, port: addr.port, host: addr.address };
    },
    async close() {
      if (closed) return;
      closed = true;
      if (tlsServer) {
        const s = tlsServer;
        s.closeAllConnections();
        await new Promise<void>((r) => s.close(() => r()));
      }
      await app.close();
      // Responses that closed with the server leave their log lines, audit events and metrics here.
      await afterResponse.settle();
      for (const m of [...mods].reverse()) await m.close?.().catch((e) => logger.error({ module: m.name, err: (e as Error)?.message }, 'module close failed'));
      await router.close();
      await failureStore?.close().catch(() => {});
      await db.close();
    },
  };
}
