/**
 * A client of the admin API for the CLI: over HTTP against a running gateway (`--url` with an
 * admin key), or offline against the data dir / database, running the very same route handlers
 * as the owner `cli` (every change is audited with source `cli:<os user>`).
 */
import { userInfo } from 'node:os';
import type { Config } from '../../config/schema.js';
import { loadPepper } from '../../identity/keys.js';
import { Lifecycle, type Actor } from '../../identity/lifecycle.js';
import { loadCedarFiles } from '../../policy/cedar.js';
import { createPolicyEngine } from '../../policy/engine.js';
import { openDb } from '../../store/db.js';
import { dispatchAdmin } from './routes.js';

/** Calls admin routes by method and path. */
export interface AdminClient {
  /** Calls `method path` (path under the server root, e.g. `/admin/v1/keys`); throws on errors. */
  call(method: 'GET' | 'POST' | 'PATCH', path: string, opts?: { query?: Record<string, string | number | undefined>; body?: unknown }): Promise<any>;
  /** Whether calls run offline against the store. */
  readonly offline: boolean;
  close(): Promise<void>;
}

/** Error answered by the admin API (status and message). */
export class AdminClientError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'AdminClientError';
  }
}

function queryString(q?: Record<string, string | number | undefined>): string {
  if (!q) return '';
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(q)) if (v !== undefined) p.set(k, String(v));
  const s = p.toString();
  return s ? `?${s}` : '';
}

/** An HTTP client of a running gateway's admin API. */
export function httpAdminClient(baseUrl: string, adminKey: string): AdminClient {
  const base = baseUrl.replace(/\/+$/, '');
  return {
    offline: false,
    async call(method, path, opts = {}) {
      const res = await fetch(base + path + queryString(opts.query), {
        method,
        headers: { authorization: `Bearer ${adminKey}`, ...(opts.body !== undefined ? { 'content-type': 'application/json' } : {}) },
        ...(opts.body !== undefined ? { body: JSON.stringify(opts.body) } : {}),
      });
      const text = await res.text();
      let body: any;
      try {
        body = text ? JSON.parse(text) : null;
      } catch {
        body = text;
      }
      if (!res.ok) throw new AdminClientError(res.status, `${res.status}: ${body?.error?.message ?? String(text).slice(0, 200)}`);
      return body;
    },
    async close() {},
  };
}

/** The admin an offline CLI command acts as: the owner of every tenant (whoever can read the data dir or database). */
export const CLI_ADMIN = { id: 'cli', name: 'cli', role: 'owner' as const, tenants: null };

/** The actor offline CLI commands are audited under: `cli:<OS user>`. */
export function cliActor(): Actor & { role: string; source: string } {
  let user = 'unknown';
  try {
    user = userInfo().username;
  } catch {
    /* no passwd entry */
  }
  return { id: 'cli', role: 'owner', source: `cli:${user}` };
}

/** An offline client over the configured store (SQLite data dir or PostgreSQL). */
export async function offlineAdminClient(config: Config, env: Record<string, string | undefined> = process.env): Promise<AdminClient> {
  const db = await openDb(config.store.kind === 'cluster' ? { postgresUrl: config.store.postgresUrl! } : { dataDir: config.dataDir });
  try {
    const cedar = config.policy.cedar ? loadCedarFiles(config.policy.cedar.policiesFile, config.policy.cedar.entitiesFile) : undefined;
    const deps = { lifecycle: new Lifecycle(db, loadPepper(config.dataDir, env)), engine: createPolicyEngine(config, cedar), config };
    const admin = CLI_ADMIN;
    const actor = cliActor();
    return {
      offline: true,
      async call(method, path, opts = {}) {
        try {
          const query = Object.fromEntries(Object.entries(opts.query ?? {}).filter(([, v]) => v !== undefined).map(([k, v]) => [k, String(v)]));
          return await dispatchAdmin(deps, admin, actor, method, path, { query, body: opts.body ?? {} });
        } catch (e) {
          const status = (e as { status?: number }).status;
          if (typeof status === 'number') throw new AdminClientError(status, `${status}: ${(e as Error).message}`);
          throw e;
        }
      },
      close: () => db.close(),
    };
  } catch (e) {
    await db.close();
    throw e;
  }
}
