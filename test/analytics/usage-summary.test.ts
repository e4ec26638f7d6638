/** The incident summary from the audit trail: aggregated in the database, same answers on the reader thread, SQLite and PostgreSQL. */
import assert from 'node:assert/strict';
import type { Db } from '../../src/store/db.js';
import { AuditStore } from '../../src/audit/store.js';
import { newEventId, type QueuedEvent } from '../../src/audit/event.js';
import { auditUsageSummary } from '../../src/analytics/usage.js';
import { onBothStores } from '../audit/util.js';

const HOUR = 3_600_000;

async function check(db: Db, defer: (fn: () => unknown) => void): Promise<void> {
  const store = new AuditStore(db.kysely, 'UTC', db.sqlite);
  defer(() => store.close());
  const now = Math.floor(Date.now() / HOUR) * HOUR + 30 * 60_000;
  const rows: QueuedEvent[] = [];
  const expected = { requests: 0, errors: 0, blocked: 0, tokensIn: 0, keys: {} as Record<string, number>, hourly: new Map<number, number>() };
  for (let i = 0; i < 600; i++) {
    const ts = now - 26 * HOUR + i * 156_000; // 26 hours back up to now
    const tenantId = i % 5 === 0 ? 'ten_b' : 'ten_a';
    const blocked = i % 17 === 0;
    const status = blocked ? 400 : i % 11 === 0 ? 502 : 200;
    const keyId = `key_${i % 3}`;
    rows.push({ event: { id: newEventId(ts), ts, kind: 'request', tenantId, keyId, requestId: `r${i}`, status, model: i % 2 ? 'm-a' : 'm-b', tokensIn: i, tokensOut: 1, costUsd: 0.001, ...(blocked ? { guardAction: 'block' } : {}) } });
    if (tenantId !== 'ten_a' || ts < now - 24 * HOUR) continue;
    expected.requests++;
    if (status >= 400 && !blocked) expected.errors++;
    if (blocked) expected.blocked++;
    expected.tokensIn += i;
    expected.keys[keyId] = (expected.keys[keyId] ?? 0) + 1;
    const h = Math.floor(ts / HOUR) * HOUR;
    expected.hourly.set(h, (expected.hourly.get(h) ?? 0) + 1);
  }
  rows.push({ event: { id: newEventId(now), ts: now, kind: 'admin', tenantId: 'ten_a', action: 'key.create', actor: 'x' } });
  await store.insert(rows);

  const onConnection = await auditUsageSummary(db.kysely, 'ten_a', now);
  const viaStore = await auditUsageSummary(db.kysely, 'ten_a', now, (q) => store.read(q));
  assert.deepEqual(viaStore, onConnection);
  const s = onConnection!;
  assert.equal(s.source, 'audit trail (audit_events)');
  assert.equal(s.requests, expected.requests);
  assert.equal(s.errors, expected.errors);
  assert.equal(s.blocked, expected.blocked);
  assert.equal(s.inputTokens, expected.tokensIn);
  assert.deepEqual(s.keys, expected.keys);
  assert.deepEqual(s.models.sort(), ['m-a', 'm-b']);
  assert.deepEqual(s.hourly, [...expected.hourly].sort((a, b) => a[0] - b[0]).map(([hour, requests]) => ({ hour, requests })));
  assert.equal(await auditUsageSummary(db.kysely, 'ten_nobody', now), null);
}

onBothStores('incident usage summary from the audit trail (connection and reader thread agree)', 'usum', check);
