/** Test helper: a real listening gateway on port 0 with a temp data dir and a fresh key. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { applyEnv, validateConfig } from '../../src/config/load.js';
import { createGateway, createLogger, type Gateway, type GatewayOptions } from '../../src/index.js';
import { createKey, loadPepper } from '../../src/identity/keys.js';

/** A started test gateway. */
export interface TestGateway {
  gw: Gateway;
  /** Base URL without /v1, e.g. http://127.0.0.1:12345 */
  url: string;
  /** An API key of tenant `default` (the bootstrap key). */
  key: string;
  dataDir: string;
  /** Creates another key (another tenant by default). */
  newKey(tenant: string, name?: string): Promise<string>;
  close(): Promise<void>;
}

/** Starts a gateway with the given raw config (merged over test defaults). */
export async function startGateway(raw: Record<string, any> = {}, opts: { env?: Record<string, string | undefined>; pgSchema?: string; gateway?: Pick<GatewayOptions, 'afterResponseMaxDelayMs' | 'logger'> } = {}): Promise<TestGateway> {
  const dataDir = raw.dataDir ?? mkdtempSync(join(tmpdir(), 'pcl-test-'));
  const env = opts.env ?? {};
  const merged = applyEnv({ dataDir, ...raw, server: { host: '127.0.0.1', port: 0, ...(raw.server ?? {}) }, log: { level: process.env.PCL_TEST_LOG ?? 'silent', ...(raw.log ?? {}) } }, env);
  const config = validateConfig(merged);
  const gw = await createGateway(config, { logger: createLogger(config.log.level), env, ...(opts.pgSchema ? { pgSchema: opts.pgSchema } : {}), ...(opts.gateway ?? {}) });
  const { url } = await gw.listen();
  if (!gw.bootstrapKey && raw.dataDir === undefined) throw new Error('expected a bootstrap key on a fresh data dir');
  const pepper = loadPepper(dataDir, env);
  return {
    gw,
    url,
    key: gw.bootstrapKey?.key ?? '',
    dataDir,
    async newKey(tenant, name = 'test') {
      return (await createKey(gw.db.kysely, pepper, { tenant, name })).key;
    },
    async close() {
      await gw.close();
      if (raw.dataDir === undefined) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
