/** Alert delivery: the log, an HMAC-signed webhook, and an in-memory list; deduplicated. */
import { createHmac, randomBytes } from 'node:crypto';

/** One alert. */
export interface Alert {
  id: string;
  at: number;
  /** `anomaly` or `extraction`. */
  kind: 'anomaly' | 'extraction';
  /** `key:<id>` or `tenant:<id>`. */
  entity: string;
  tenantId: string | null;
  keyId: string | null;
  /** The signal (anomaly) or `score` (extraction). */
  signal: string;
  value: number;
  /** z-score (anomaly) or extraction score. */
  score: number;
  reasons: string[];
  /**
   * What the gateway did: `throttle` or `suspend` (applied to the key), `alert` (the policy is to
   * alert only, and tenant anomalies), `none` (the policy asked for an action that was skipped).
   */
  action: 'alert' | 'throttle' | 'suspend' | 'none';
  /** Why the action was skipped (with `action: none`). */
  skipped?: 'cooldown' | 'already_throttled' | 'already_suspended' | 'in_progress' | 'alert_only';
}

/** Options of the alerter. */
export interface AlerterOptions {
  /** Receives every alert, signed with `webhookSecret` (required with it). */
  webhookUrl?: string;
  webhookSecret?: string;
  timeoutMs: number;
  dedupMs: number;
  keep: number;
  log: { warn(o: object, m: string): void };
}

/** The signature header value for a webhook body: `sha256=<hex of HMAC(secret, "<timestamp>.<body>")>`. */
export function signWebhook(secret: string, timestamp: string, body: string): string {
  return 'sha256=' + createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex');
}

/** Delivers alerts once per dedup period. */
export class Alerter {
  private readonly recent: Alert[] = [];
  private readonly lastSent = new Map<string, number>();
  private readonly pending = new Set<Promise<void>>();
  /** Webhook deliveries that failed. */
  failures = 0;
  constructor(private readonly o: AlerterOptions) {
    if (o.webhookUrl && !o.webhookSecret) throw new Error('Alerter: a webhookUrl needs a webhookSecret (alerts are never sent unsigned)');
  }

  /** Emits an alert unless the same one was emitted within the dedup period; returns it or null. */
  emit(a: Omit<Alert, 'id'>): Alert | null {
    const dk = `${a.kind}|${a.entity}|${a.signal}`;
    const last = this.lastSent.get(dk);
    if (last !== undefined && a.at - last < this.o.dedupMs) return null;
    this.lastSent.set(dk, a.at);
    if (this.lastSent.size > 100_000) this.lastSent.clear();
    const alert: Alert = { id: 'al_' + randomBytes(8).toString('hex'), ...a };
    this.recent.push(alert);
    if (this.recent.length > this.o.keep) this.recent.splice(0, this.recent.length - this.o.keep);
    this.o.log.warn({ alert }, 'analytics alert');
    if (this.o.webhookUrl) {
      const p = this.deliver(alert).finally(() => this.pending.delete(p));
      this.pending.add(p);
    }
    return alert;
  }

  /** Alerts kept in memory, newest first. */
  list(filter: { tenantIds?: string[] | null; since?: number } = {}): Alert[] {
    return this.recent.filter((a) => (!filter.tenantIds || (a.tenantId !== null && filter.tenantIds.includes(a.tenantId))) && (filter.since === undefined || a.at >= filter.since)).reverse();
  }

  /** Waits for in-flight webhook deliveries. */
  async flush(): Promise<void> {
    await Promise.allSettled([...this.pending]);
  }

  private async deliver(alert: Alert): Promise<void> {
    const body = JSON.stringify({ type: 'portcullis.alert', alert });
    const ts = String(Math.floor(Date.now() / 1000));
    const headers: Record<string, string> = { 'content-type': 'application/json', 'x-portcullis-timestamp': ts, 'x-portcullis-signature': signWebhook(this.o.webhookSecret!, ts, body) };
    try {
      const res = await fetch(this.o.webhookUrl!, { method: 'POST', headers, body, signal: AbortSignal.timeout(this.o.timeoutMs), redirect: 'error' });
      await res.arrayBuffer().catch(() => undefined);
      if (!res.ok) throw new Error(`webhook answered ${res.status}`);
    } catch (e) {
      this.failures++;
      this.o.log.warn({ alertId: alert.id, err: (e as Error)?.message }, 'alert webhook failed');
    }
  }
}
