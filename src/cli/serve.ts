/** `portcullis serve`: runs the gateway, optionally as N worker processes (node:cluster). */
import cluster from 'node:cluster';
import type { Command } from 'commander';
import { createGateway, createLogger } from '../index.js';
import { openDb } from '../store/db.js';
import { bootstrap, loadPepper } from '../identity/keys.js';
import type { Config } from '../config/schema.js';
import { createMemoryCounterStore, startCounterHost } from '../limits/index.js';
import { startMetricsAggregator } from '../metrics/cluster.js';
import { applyHeapGrowth, startHeapTrimmer } from '../util/heap-trim.js';
import { configFromOptions, fail, type CommonOptions } from './common.js';

function printBootstrapKey(k: { key: string; tenant: string }): void {
  process.stdout.write(
    `\n  Bootstrap API key for tenant "${k.tenant}" (shown once; it is stored only as a keyed hash):\n\n    ${k.key}\n\n` +
      `  Try it:  curl -s http://HOST:PORT/v1/chat/completions -H "Authorization: Bearer ${k.key.slice(0, 8)}…" ...\n\n`,
  );
}

async function bootstrapOnce(config: Config): Promise<void> {
  const db = await openDb(config.store.kind === 'cluster' ? { postgresUrl: config.store.postgresUrl! } : { dataDir: config.dataDir });
  try {
    const k = await bootstrap(db.kysely, loadPepper(config.dataDir));
    if (k) printBootstrapKey(k);
  } finally {
    await db.close();
  }
}

/** Longest a graceful shutdown may take before the process exits anyway (ms). */
const SHUTDOWN_DEADLINE_MS = 15_000;

async function runWorker(config: Config, skipBootstrap: boolean): Promise<void> {
  const logger = createLogger(config.log.level);
  const growth = applyHeapGrowth(config.server.heapGrowthPercent);
  logger.debug({ heapGrowthPercent: config.server.heapGrowthPercent, from: growth }, 'old-generation growth');
  const gw = await createGateway(config, { logger, skipBootstrap });
  if (gw.bootstrapKey) printBootstrapKey(gw.bootstrapKey);
  const { url } = await gw.listen();
  logger.info({ url, workers: config.server.workers }, 'portcullis listening');
  const ht = config.server.heapTrim;
  const trimmer = ht.enabled ? startHeapTrimmer(ht, logger) : undefined;
  if (!cluster.isWorker) process.stdout.write(`  Portcullis listening on ${url}  (demo models: demo, demo-vulnerable)\n`);
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    trimmer?.stop();
    // Every part of close() has its own deadline (audit writer and sinks spill or drop and count
    // what the store or a collector did not take); this one only guards against a part without.
    setTimeout(() => {
      logger.error({ afterMs: SHUTDOWN_DEADLINE_MS }, 'shutdown did not finish: exiting anyway');
      process.exit(1);
    }, SHUTDOWN_DEADLINE_MS).unref();
    await gw.close().catch(() => {});
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

/** Starts the gateway in this process or as a cluster of workers. */
export async function serve(config: Config): Promise<void> {
  if (config.server.workers <= 1) return runWorker(config, false);
  if (cluster.isPrimary) {
    await bootstrapOnce(config);
    // With in-memory counters the primary holds them and workers ask over IPC: limits stay exact, never N×.
    if (config.limits.store === 'memory') startCounterHost(createMemoryCounterStore());
    // A scrape of any worker returns every worker's metrics, aggregated here.
    if (config.metrics.enabled) startMetricsAggregator();
    // The primary relays counters and metrics for every worker: its heap grows with their bursts too.
    applyHeapGrowth(config.server.heapGrowthPercent);
    if (config.server.heapTrim.enabled) startHeapTrimmer(config.server.heapTrim, { debug() {}, warn: (o, msg) => process.stderr.write(`portcullis: ${msg} ${JSON.stringify(o)}\n`) });
    for (let i = 0; i < config.server.workers; i++) cluster.fork();
    let stopping = false;
    cluster.on('exit', (w, code, signal) => {
      if (stopping) return;
      process.stderr.write(`portcullis: worker ${w.process.pid} exited (${signal ?? code}); restarting\n`);
      cluster.fork();
    });
    const stop = () => {
      if (stopping) return;
      stopping = true;
      const workers = Object.values(cluster.workers ?? {}).filter((w) => w !== undefined);
      // Wait for the workers' own shutdown (they flush the audit trail and sinks, each within its
      // deadline), not a fixed 2 s that cut the longer ones short; past the deadline, exit anyway.
      // The primary's exit status is the worst of its workers' (1 when one hit its deadline).
      let left = workers.length;
      let status = 0;
      if (left === 0) process.exit(0);
      for (const w of workers) {
        w.once('exit', (code) => {
          if (typeof code === 'number' && code > status) status = code;
          if (--left === 0) process.exit(status);
        });
        w.process.kill('SIGTERM');
      }
      setTimeout(() => process.exit(1), SHUTDOWN_DEADLINE_MS + 1000).unref();
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
    process.stdout.write(`  Portcullis primary ${process.pid} started ${config.server.workers} workers on ${config.server.tls ? 'https' : 'http'}://${config.server.host}:${config.server.port}\n`);
    return;
  }
  return runWorker(config, true);
}

/** Registers `serve`. */
export function registerServeCommand(program: Command): void {
  program
    .command('serve')
    .description('run the gateway (embedded default: SQLite under ./data, in-memory counters, demo upstream)')
    .option('-c, --config <file>', 'YAML config file (or PORTCULLIS_CONFIG)')
    .option('-p, --port <port>', 'port to listen on (or PORTCULLIS_PORT; default 8080)')
    .option('--host <host>', 'address to bind (default 127.0.0.1)')
    .option('--data-dir <dir>', 'data directory (or PORTCULLIS_DATA_DIR; default ./data)')
    .option('-w, --workers <n>', 'worker processes (node:cluster; default 1)')
    .action(async (o: CommonOptions) => {
      try {
        await serve(configFromOptions(o));
      } catch (e) {
        fail(e);
      }
    });
}
