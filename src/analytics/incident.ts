/** Credential-leak response: revoke every key of a tenant, reissue replacements, summarise recent use. */
import type { Actor, Lifecycle } from '../identity/lifecycle.js';
import type { UsageSummary } from './usage.js';

/** The result of `revokeTenant`. */
export interface IncidentResult {
  tenant: { id: string; name: string };
  revoked: string[];
  /** Replacement keys: the full key is shown here once. */
  reissued: Array<{ oldKeyId: string; id: string; name: string; key: string }>;
  /** Admin events of the tenant in the last 24 h, by action. */
  adminEvents: Record<string, number>;
  usage: UsageSummary | null;
  /** Why the audit-trail summary could not be read (then `usage` is the fallback, or null). */
  usageError?: string;
}

/**
 * Revokes all non-revoked keys of a tenant and (unless `reissue` is false) creates one
 * replacement per active key with the same name, owner, scopes, tier and expiry; `usage`
 * supplies the 24-hour summary (the audit trail) and `fallbackUsage` the one used when it has no
 * events or fails (in-memory analytics). A failing summary never loses the new keys: its error is
 * returned in `usageError`.
 */
export async function revokeTenant(
  lifecycle: Lifecycle,
  actor: Actor,
  tenantRef: string,
  opts: { reason?: string; reissue?: boolean; usage?: (tenantId: string) => UsageSummary | null | Promise<UsageSummary | null>; fallbackUsage?: (tenantId: string) => UsageSummary | null } = {},
): Promise<IncidentResult> {
  const t = await lifecycle.mustTenant(tenantRef);
  // Every key of the tenant, page by page (a tenant may have any number of keys).
  const before: Awaited<ReturnType<Lifecycle['listKeys']>>['data'] = [];
  for (let cursor: string | undefined; ; ) {
    const page = await lifecycle.listKeys({ tenantId: t.id, limit: 1000, ...(cursor ? { cursor } : {}) });
    before.push(...page.data);
    if (!page.nextCursor) break;
    cursor = page.nextCursor;
  }
  const reissuable = before.filter((k) => k.status === 'active' || k.status === 'grace');
  const r = await lifecycle.revokeTenantKeys(actor, t.id, opts.reason ?? 'incident: credential leak');
  const reissued: IncidentResult['reissued'] = [];
  if (opts.reissue !== false) {
    for (const k of reissuable) {
      const n = await lifecycle.createKey(actor, {
        tenant: t.id,
        name: k.name,
        ...(k.owner ? { owner: k.owner } : {}),
        ...(k.scopes != null ? { scopes: k.scopes } : {}),
        ...(k.tier ? { tier: k.tier } : {}),
        ...(k.expiresAt && k.expiresAt > Date.now() ? { expiresAt: k.expiresAt } : {}),
      }, false);
      reissued.push({ oldKeyId: k.id, id: n.view.id, name: k.name, key: n.key });
    }
  }
  await lifecycle.record(actor, 'incident.revoke_tenant', { type: 'tenant', id: t.id, tenantId: t.id }, { revoked: r.keyIds.length, reissued: reissued.map((x) => x.id), reason: opts.reason ?? null });
  const since = Date.now() - 24 * 3_600_000;
  const adminEvents: Record<string, number> = {};
  let cursor: string | undefined;
  for (let i = 0; i < 20; i++) {
    const page = await lifecycle.events({ tenantId: t.id, limit: 500, ...(cursor ? { cursor } : {}) });
    let old = false;
    for (const e of page.data) {
      if (e.ts < since) {
        old = true;
        break;
      }
      adminEvents[e.action] = (adminEvents[e.action] ?? 0) + 1;
    }
    if (old || !page.nextCursor) break;
    cursor = page.nextCursor;
  }
  let usage: UsageSummary | null = null;
  let usageError: string | undefined;
  try {
    usage = (await opts.usage?.(t.id)) ?? null;
  } catch (e) {
    usageError = `the audit trail could not be read: ${(e as Error)?.message ?? String(e)}`;
  }
  usage ??= opts.fallbackUsage?.(t.id) ?? null;
  return { tenant: { id: t.id, name: t.name }, revoked: r.keyIds, reissued, adminEvents, usage, ...(usageError ? { usageError } : {}) };
}
