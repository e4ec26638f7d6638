/** Shadow results in the store: counts aggregated in the database, retention purge in chunks; SQLite and PostgreSQL. */
import assert from 'node:assert/strict';
import type { Db } from '../../src/store/db.js';
import { purgeShadow, queryShadow } from '../../src/server/guard-api.js';
import { onBothStores } from '../audit/util.js';
import { whileLooping } from '../util/event-loop.js';

const CATS = [[], ['EMAIL'], ['EMAIL', 'PHONE'], ['instruction_override'], ['PHONE']];

async function check(db: Db): Promise<void> {
  const now = Date.now();
  const rows = Array.from({ length: 400 }, (_, i) => ({
    id: `gs_${String(i).padStart(6, '0')}`,
    tenant_id: i % 4 === 0 ? 'ten_b' : 'ten_a',
    request_id: `req_${i}`,
    guard: i % 3 === 0 ? 'injection' : 'pii',
    stage: 'request',
    action: i % 2 ? 'block' : 'flag',
    categories: JSON.stringify(CATS[i % CATS.length]),
    score: i % 7 === 0 ? null : (i % 10) / 10,
    created_at: now - (400 - i) * 60_000, // one a minute, the newest last
  }));
  for (let i = 0; i < rows.length; i += 100) await db.kysely.insertInto('guard_shadow').values(rows.slice(i, i + 100)).execute();

  const since = now - 300 * 60_000;
  const mine = rows.filter((r) => r.tenant_id === 'ten_a' && r.created_at >= since);
  const expected = new Map<string, number>();
  for (const r of mine) for (const c of (JSON.parse(r.categories) as string[]).length ? (JSON.parse(r.categories) as string[]) : ['(none)']) expected.set(`${r.guard}|${c}|${r.action}`, (expected.get(`${r.guard}|${c}|${r.action}`) ?? 0) + 1);
  const s = await queryShadow(db.kysely, 'ten_a', { since, limit: 15 });
  assert.deepEqual(new Map(s.counts.map((c) => [`${c.guard}|${c.category}|${c.action}`, c.count])), expected);
  for (let i = 1; i < s.counts.length; i++) assert.ok(s.counts[i - 1]!.count >= s.counts[i]!.count, 'sorted by count');
  const latest = [...mine].sort((a, b) => b.created_at - a.created_at).slice(0, 15);
  assert.deepEqual(s.samples, latest.map((r) => ({ requestId: r.request_id, guard: r.guard, action: r.action, categories: JSON.parse(r.categories), score: r.score, at: r.created_at })));
  assert.deepEqual((await queryShadow(db.kysely, 'ten_nobody')).counts, []);

  // Retention: everything older than 100 minutes goes (both tenants), in chunks of 7, and the event loop runs meanwhile.
  const before = now - 100 * 60_000;
  const { value: purged, loopTurned } = await whileLooping(purgeShadow(db.kysely, before, 7));
  assert.equal(purged, rows.filter((r) => r.created_at < before).length);
  assert.ok(loopTurned, 'the event loop turned between the delete statements');
  const left = await db.kysely.selectFrom('guard_shadow').select(['created_at']).execute();
  assert.equal(left.length, rows.filter((r) => r.created_at >= before).length);
  assert.ok(left.every((r) => Number(r.created_at) >= before));
  assert.equal(await purgeShadow(db.kysely, before, 7), 0);
}

onBothStores('shadow results: exact counts from the database, samples, chunked retention purge', 'shadow', check);
