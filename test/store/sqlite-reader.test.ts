import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CompiledQuery } from 'kysely';
import { openDb } from '../../src/store/db.js';
import { SqliteReader } from '../../src/store/sqlite-reader.js';
import { AuditStore } from '../../src/audit/store.js';
import { newEventId, type QueuedEvent } from '../../src/audit/event.js';
import { whileLooping } from '../util/event-loop.js';

const events = (n: number): QueuedEvent[] =>
  Array.from({ length: n }, (_, i) => {
    const ts = Date.now() - (n - i) * 60_000;
    return {
      event: { id: newEventId(ts), ts, kind: 'request', tenantId: `ten_${i % 3}`, keyId: `key_${i % 7}`, requestId: `r${i}`, status: i % 10 === 0 ? 502 : 200, model: i % 2 ? 'm-a' : 'm-b', tokensIn: i, tokensOut: 2 * i, ...(i % 25 === 0 ? { categories: ['EMAIL'] } : {}) },
      ...(i % 50 === 0 ? { payload: { tenantId: `ten_${i % 3}`, expiresAt: ts + 864e5, request: `sealed-${i}`, response: null } } : {}),
    };
  });

test('audit reads on a SQLite file run on the reader thread: the same answers as on the main connection, and the event loop runs meanwhile', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pcl-reader-'));
  const db = await openDb({ dataDir: dir });
  const onThread = new AuditStore(db.kysely, 'UTC', db.sqlite);
  const onMain = new AuditStore(db.kysely, 'UTC', db.sqlite, { thread: false, reader: false });
  try {
    const rows = events(3000);
    for (let i = 0; i < rows.length; i += 500) await onThread.insert(rows.slice(i, i + 500));

    const { value: usage, loopTurned } = await whileLooping(onThread.usage({ groupBy: ['day', 'tenant', 'model'] }));
    assert.ok(loopTurned, 'the event loop turned while the query ran');
    assert.deepEqual(usage, await onMain.usage({ groupBy: ['day', 'tenant', 'model'] }));

    const queries = [
      (s: AuditStore) => s.search({ limit: 40 }),
      (s: AuditStore) => s.search({ limit: 25, tenantIds: ['ten_1'], status: 'error' }),
      (s: AuditStore) => s.search({ limit: 10, category: 'EMAIL', keyId: 'key_0' }),
      (s: AuditStore) => s.usage({ groupBy: ['key'], tenantIds: ['ten_2'], since: rows[100]!.event.ts }),
      (s: AuditStore) => s.get(rows[1234]!.event.id),
      (s: AuditStore) => s.get('aud_missing'),
      (s: AuditStore) => s.payload(rows[50]!.event.id),
      (s: AuditStore) => s.count(),
    ];
    for (const q of queries) assert.deepEqual(await q(onThread), await q(onMain));
    // Pagination: following the cursors gives every event once.
    let page = await onThread.search({ limit: 700 });
    const seen = new Set(page.data.map((e) => e.id));
    while (page.nextCursor) {
      page = await onThread.search({ limit: 700, cursor: page.nextCursor });
      for (const e of page.data) seen.add(e.id);
    }
    assert.equal(seen.size, 3000);
  } finally {
    await onThread.close();
    await db.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the reader thread only reads: a write statement is refused and the data stays', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pcl-reader-ro-'));
  const db = await openDb({ dataDir: dir });
  const reader = new SqliteReader(db.sqlite!.name);
  try {
    await db.kysely.insertInto('kv_meta').values({ k: 'x', v: '1' }).execute();
    assert.deepEqual(await reader.all(db.kysely.selectFrom('kv_meta').select('v').where('k', '=', 'x').compile()), [{ v: '1' }]);
    await assert.rejects(reader.all(db.kysely.deleteFrom('kv_meta').compile())!, /rows only|readonly/);
    await assert.rejects(reader.all({ sql: 'selec v from kv_meta', parameters: [] } as unknown as CompiledQuery<unknown>)!, /syntax error/);
    assert.equal(reader.threaded, true, 'a failed statement does not stop the thread');
    assert.equal((await db.kysely.selectFrom('kv_meta').select('v').where('k', '=', 'x').executeTakeFirst())?.v, '1');
    await reader.close();
    assert.equal(reader.all(db.kysely.selectFrom('kv_meta').select('v').compile()), undefined, 'after close the caller reads itself');
  } finally {
    await reader.close();
    await db.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
