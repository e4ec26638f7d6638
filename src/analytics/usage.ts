/** Hourly per-tenant usage of the last 24 hours, in memory (the incident summary's fallback source). */

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
