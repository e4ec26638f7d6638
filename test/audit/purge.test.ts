import assert from 'node:assert/strict';
import type { Db } from '../../src/store/db.js';
import { AuditStore, PURGE_CHUNK } from '../../src/audit/store.js';
import { newEventId, type QueuedEvent } from '../../src/audit/event.js';
import { onBothStores } from './util.js';
import { whileLooping } from '../util/event-loop.js';

const DAY = 864e5;

/**
 * Retention purge: more old events than two chunks (some with payloads), recent events with an
 * expired and a live payload. Everything past the retention goes (payloads with their events), the
 * expired payload goes, the rest stays; and the purge lets the event loop run between chunks.
 */
async function checkPurge(db: Db): Promise<void> {
  const store = new AuditStore(db.kysely, 'UTC', db.sqlite, { thread: false });
  const now = Date.now();
  const old = 2 * PURGE_CHUNK + 123;
  const ev = (ts: number, i: number, payload?: { expiresAt: number }): QueuedEvent => ({
    event: { id: newEventId(ts), ts, kind: 'request', tenantId: 'ten_a', requestId: `r${i}` },
    ...(payload ? { payload: { tenantId: 'ten_a', expiresAt: payload.expiresAt, request: 'sealed', response: null } } : {}),
  });
  const rows: QueuedEvent[] = [];
  for (let i = 0; i < old; i++) rows.push(ev(now - 100 * DAY + i, i, i % 10 === 0 ? { expiresAt: now + 400 * DAY } : undefined));
  const expired = ev(now - DAY, old, { expiresAt: now - 1000 });
  const live = ev(now - DAY + 1, old + 1, { expiresAt: now + DAY });
  rows.push(expired, live, ...Array.from({ length: 50 }, (_, i) => ev(now - 3600_000 + i, old + 2 + i)));
  for (let i = 0; i < rows.length; i += 500) await store.insert(rows.slice(i, i + 500));
  assert.equal(await store.count(), old + 52);

  const { value: r, loopTurned } = await whileLooping(store.purge(now, now - 90 * DAY));
  assert.ok(loopTurned, 'the event loop ran while the purge was going on');
  assert.deepEqual(r, { payloads: 1, events: old });
  assert.equal(await store.count(), 52);
  assert.equal(await store.get(rows[0]!.event.id), undefined);
  assert.equal(await store.payload(rows[0]!.event.id), undefined, 'payloads go with their events');
  assert.equal(await store.payload(expired.event.id), undefined, 'an expired payload goes');
  assert.equal((await store.payload(live.event.id))?.request, 'sealed', 'a live payload of a kept event stays');
  assert.equal((await store.get(expired.event.id))?.requestId, `r${old}`, 'the event of an expired payload stays');
  assert.deepEqual(await store.purge(now, now - 90 * DAY), { payloads: 0, events: 0 });
  await store.close();
}

onBothStores('audit purge: chunked, payloads with their events, the event loop keeps running', 'purge', (db) => checkPurge(db));
