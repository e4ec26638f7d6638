/** The analytics action book's refresh query is served by the (action, id) index: it never walks other admin events. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDb } from '../../src/store/db.js';
import { actionEventsAfter } from '../../src/analytics/actions.js';

test('action events after an id: found through the (action, id) index among many other admin events, oldest first', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pcl-actions-q-'));
  const db = await openDb({ dataDir: dir });
  try {
    const sqlite = db.sqlite!;
    const ins = sqlite.prepare('INSERT INTO admin_events (ts, actor, action, target_id) VALUES (?, ?, ?, ?)');
    sqlite.transaction(() => {
      for (let i = 0; i < 20_000; i++) ins.run(i, 'admin', i % 500 === 0 ? (i % 1000 === 0 ? 'analytics.throttle' : 'analytics.clear') : 'admin.denied', `k${i % 50}`);
    })();
    const q = actionEventsAfter(db.kysely, 5_000).compile();
    const plan = (sqlite.prepare(`EXPLAIN QUERY PLAN ${q.sql}`).all(...(q.parameters as unknown[])) as Array<{ detail: string }>).map((r) => r.detail).join(' | ');
    assert.match(plan, /admin_events_action/, plan);
    const rows = await actionEventsAfter(db.kysely, 5_000).execute();
    assert.equal(rows.length, 30); // ids 5 001 … 20 000: the events at i = 5 000 … 19 500 in steps of 500
    assert.ok(rows.every((r, i) => Number(r.id) > 5_000 && (i === 0 || Number(r.id) > Number(rows[i - 1]!.id))));
    assert.ok(rows.every((r) => r.action.startsWith('analytics.')));
  } finally {
    await db.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
