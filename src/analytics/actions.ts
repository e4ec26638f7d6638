/**
 * Automated and manual actions on keys (throttle, suspend, clear), recorded as admin events
 * (`analytics.throttle|suspend|clear`) so they are audited, visible to the audit trail, shared by
 * every instance (re-read periodically) and reversible by an operator from the API or the CLI.
 */
import type { Kysely } from 'kysely';
import type { Actor, Lifecycle } from '../identity/lifecycle.js';
import type { Database } from '../store/schema.js';

/** Admin-event actions written by analytics. */
export const ACTION_EVENTS = ['analytics.throttle', 'analytics.suspend', 'analytics.clear'] as const;

/**
 * The query of `ActionBook.refresh`: action events after `lastId`, oldest first, 10 000 at most
 * (served by the `(action, id)` index of migration 010).
 */
export function actionEventsAfter(db: Kysely<Database>, lastId: number) {
  return db
    .selectFrom('admin_events')
    .select(['id', 'ts', 'actor', 'action', 'target_id', 'tenant_id', 'detail'])
    .where('action', 'in', [...ACTION_EVENTS])
    .where('id', '>', lastId)
    .orderBy('id')
    .limit(10_000);
}

/** The state of one key's action. */
export interface KeyAction {
  keyId: string;
  tenantId: string | null;
  kind: 'throttle' | 'suspend' | 'clear';
  /** Epoch ms when it ends (null: until cleared). */
  until: number | null;
  /** Requests per minute kept while throttled. */
  rpm?: number;
  reason: string;
  by: string;
  at: number;
}

/** The actor automatic actions are recorded under. */
export const SYSTEM_ACTOR: Actor = { id: 'analytics', role: 'system', source: 'analytics' };

/** Keeps the latest action per key, mirrored from admin_events. */
export class ActionBook {
  private readonly byKey = new Map<string, KeyAction>();
  private lastId = 0;
  constructor(
    private readonly db: Kysely<Database>,
    private readonly lifecycle: Lifecycle,
  ) {}

  /** Reads action events newer than the last one seen. */
  async refresh(): Promise<void> {
    const rows = await actionEventsAfter(this.db, this.lastId).execute();
    for (const r of rows) {
      this.lastId = Math.max(this.lastId, Number(r.id));
      if (!r.target_id) continue;
      let d: Record<string, unknown> = {};
      try {
        d = r.detail ? JSON.parse(r.detail) : {};
      } catch {
        d = {};
      }
      this.byKey.set(r.target_id, {
        keyId: r.target_id,
        tenantId: r.tenant_id,
        kind: r.action.slice('analytics.'.length) as KeyAction['kind'],
        until: typeof d.until === 'number' ? d.until : null,
        ...(typeof d.rpm === 'number' ? { rpm: d.rpm } : {}),
        reason: typeof d.reason === 'string' ? d.reason : '',
        by: r.actor,
        at: Number(r.ts),
      });
    }
    if (rows.length === 10_000) await this.refresh();
  }

  /** The action in force for a key now (throttle or suspend), if any. */
  active(keyId: string, now = Date.now()): KeyAction | undefined {
    const a = this.byKey.get(keyId);
    if (!a || a.kind === 'clear') return undefined;
    if (a.until !== null && a.until <= now) return undefined;
    return a;
  }

  /** The latest action of a key, in force or not. */
  latest(keyId: string): KeyAction | undefined {
    return this.byKey.get(keyId);
  }

  /** Every action in force. */
  list(now = Date.now()): KeyAction[] {
    return [...this.byKey.values()].filter((a) => a.kind !== 'clear' && (a.until === null || a.until > now));
  }

  /** Records and applies an action. */
  async apply(actor: Actor, a: { keyId: string; tenantId: string | null; kind: KeyAction['kind']; until: number | null; rpm?: number; reason: string; detail?: Record<string, unknown> }): Promise<KeyAction> {
    await this.lifecycle.record(actor, `analytics.${a.kind}`, { type: 'api_key', id: a.keyId, tenantId: a.tenantId }, { reason: a.reason.slice(0, 500), until: a.until, ...(a.rpm !== undefined ? { rpm: a.rpm } : {}), ...(a.detail ?? {}) });
    await this.refresh();
    return this.byKey.get(a.keyId)!;
  }
}

/** A per-key GCRA limiter for throttled keys (requests per minute, in memory). */
export class ThrottleGate {
  private readonly tat = new Map<string, number>();
  /** Whether one more request of `keyId` fits in `rpm`; returns seconds to wait when not. */
  take(keyId: string, rpm: number, now = Date.now()): { ok: true } | { ok: false; retryAfterS: number } {
    if (rpm <= 0) return { ok: false, retryAfterS: 60 };
    const interval = 60_000 / rpm;
    const burst = 60_000; // a minute's worth may arrive at once
    const tat = Math.max(this.tat.get(keyId) ?? now, now);
    if (tat - now > burst - interval) return { ok: false, retryAfterS: Math.max(1, Math.ceil((tat - now - (burst - interval)) / 1000)) };
    this.tat.set(keyId, tat + interval);
    if (this.tat.size > 100_000) this.tat.clear();
    return { ok: true };
  }
  /** Forgets a key's state (after a clear). */
  reset(keyId: string): void {
    this.tat.delete(keyId);
  }
}
