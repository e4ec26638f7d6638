/** Hourly per-tenant usage of the last 24 hours, in memory (the incident summary's fallback source), and the audit-trail summary. */
import { sql, type Kysely } from 'kysely';
import type { ReadQuery } from '../store/sqlite-reader.js';
import type { Database } from '../store/schema.js';

/** One hour of a tenant's traffic. */
export interface HourUsage {
  hour: number;
  requests: number;
  errors: number;
  blocked: number;
  inputTokens: number;
  outputTokens: number;
  costUsd: number;
  models: Set<string>;
  keys: Map<string, number>;
  clients: Set<string>;
}

/** A 24-hour summary of a tenant's use. */
export interface UsageSummary {
  source: string;
  since: number;
  requests: number;
  errors: number;
  blocked: number;
  inputTokens: number;
  outputTokens: number;
  costUsd: number;
  models: string[];
  /** Requests per key id. */
  keys: Record<string, number>;
  /** Distinct client addresses (-1 when the source does not say). */
  distinctClientAddresses: number;
  /** Requests per hour, oldest first. */
  hourly: Array<{ hour: number; requests: number }>;
}

/** Keeps 24 hourly buckets per tenant. */
export class UsageRollup {
  private readonly tenants = new Map<string, HourUsage[]>();
  /** Adds one request. */
  add(tenantId: string, r: { at: number; keyId?: string; model?: string; error: boolean; blocked: boolean; inputTokens: number; outputTokens: number; costUsd: number; client?: string }): void {
    const hour = Math.floor(r.at / 3_600_000) * 3_600_000;
    let hs = this.tenants.get(tenantId);
    if (!hs) this.tenants.set(tenantId, (hs = []));
    let h = hs[hs.length - 1];
    if (!h || h.hour !== hour) {
      h = { hour, requests: 0, errors: 0, blocked: 0, inputTokens: 0, outputTokens: 0, costUsd: 0, models: new Set(), keys: new Map(), clients: new Set() };
      hs.push(h);
      while (hs.length && hs[0]!.hour <= hour - 24 * 3_600_000) hs.shift();
    }
    h.requests++;
    if (r.error) h.errors++;
    if (r.blocked) h.blocked++;
    h.inputTokens += r.inputTokens;
    h.outputTokens += r.outputTokens;
    h.costUsd += r.costUsd;
    if (r.model && h.models.size < 100) h.models.add(r.model);
    if (r.keyId) h.keys.set(r.keyId, (h.keys.get(r.keyId) ?? 0) + 1);
    if (r.client && h.clients.size < 10_000) h.clients.add(r.client);
  }

  /** The last 24 hours of a tenant. */
  summary(tenantId: string, now = Date.now()): UsageSummary {
    const since = now - 24 * 3_600_000;
    const hs = (this.tenants.get(tenantId) ?? []).filter((h) => h.hour + 3_600_000 > since);
    const keys: Record<string, number> = {};
    const models = new Set<string>();
    const clients = new Set<string>();
    const s: UsageSummary = { source: 'analytics (in memory, this instance)', since, requests: 0, errors: 0, blocked: 0, inputTokens: 0, outputTokens: 0, costUsd: 0, models: [], keys, distinctClientAddresses: 0, hourly: [] };
    for (const h of hs) {
      s.requests += h.requests;
      s.errors += h.errors;
      s.blocked += h.blocked;
      s.inputTokens += h.inputTokens;
      s.outputTokens += h.outputTokens;
      s.costUsd += h.costUsd;
      h.models.forEach((m) => models.add(m));
      h.clients.forEach((c) => clients.add(c));
      for (const [k, n] of h.keys) keys[k] = (keys[k] ?? 0) + n;
      s.hourly.push({ hour: h.hour, requests: h.requests });
    }
    s.models = [...models];
    s.distinctClientAddresses = clients.size;
    s.costUsd = Math.round(s.costUsd * 1e6) / 1e6;
    return s;
  }
}

/** Runs a read query and returns its rows (the audit store's reader thread, or the query's own connection). */
export type ReadRows = <R>(q: ReadQuery<R>) => Promise<R[]>;

const onConnection: ReadRows = (q) => q.execute();

/**
 * The last 24 hours of a tenant from the audit trail (`audit_events`), or null when it holds
 * nothing for the tenant (then the in-memory rollup is used); a database error is thrown, never
 * taken for "no events". Every query aggregates in the database; `read` runs them (the gateway
 * passes the audit store's reader, so a busy tenant's day of events is not scanned on the event
 * loop during an incident).
 */
export async function auditUsageSummary(db: Kysely<Database>, tenantId: string, now = Date.now(), read: ReadRows = onConnection): Promise<UsageSummary | null> {
  const since = now - 24 * 3_600_000;
  const base = () => db.selectFrom('audit_events').where('kind', '=', 'request').where('tenant_id', '=', tenantId).where('ts', '>=', since);
  const rows = await read(
    base()
      .select((eb) => ['key_id', 'model', eb.fn.countAll<number>().as('n'), eb.fn.sum<number>('tokens_in').as('tin'), eb.fn.sum<number>('tokens_out').as('tout'), eb.fn.sum<number>('cost_usd').as('cost')])
      .groupBy(['key_id', 'model']),
  );
  if (rows.length === 0) return null;
  const [errors] = await read(base().where('status', '>=', 400).where((eb) => eb.or([eb('action', 'is', null), eb('action', '!=', 'block')])).select((eb) => eb.fn.countAll<number>().as('n')));
  const [blocked] = await read(base().where('action', '=', 'block').select((eb) => eb.fn.countAll<number>().as('n')));
  // Integer division on both stores (ts is an integer column).
  const hourOf = sql<number>`ts / 3600000`;
  const hours = await read(base().select((eb) => [hourOf.as('h'), eb.fn.countAll<number>().as('n')]).groupBy(hourOf).orderBy(hourOf));
  const s: UsageSummary = { source: 'audit trail (audit_events)', since, requests: 0, errors: Number(errors?.n ?? 0), blocked: Number(blocked?.n ?? 0), inputTokens: 0, outputTokens: 0, costUsd: 0, models: [], keys: {}, distinctClientAddresses: -1, hourly: [] };
  const models = new Set<string>();
  for (const r of rows) {
    const n = Number(r.n);
    s.requests += n;
    s.inputTokens += Number(r.tin ?? 0);
    s.outputTokens += Number(r.tout ?? 0);
    s.costUsd += Number(r.cost ?? 0);
    if (r.model) models.add(r.model);
    if (r.key_id) s.keys[r.key_id] = (s.keys[r.key_id] ?? 0) + n;
  }
  s.models = [...models];
  s.costUsd = Math.round(s.costUsd * 1e6) / 1e6;
  s.hourly = hours.map((h) => ({ hour: Number(h.h) * 3_600_000, requests: Number(h.n) }));
  return s;
}
