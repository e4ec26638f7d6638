/** last_used_at flushes in chunks (identity.lastUsedFlushChunk) with an event-loop turn between them. */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { adminApi, adminKey, chat, dropStore, newStore, startInstance } from './util.js';
import { whileLooping } from '../util/event-loop.js';

const store = newStore('sqlite', 'lastused');
after(() => dropStore(store));

test('last_used_at: every used key is written, a few keys per transaction, and the event loop runs between the transactions', async () => {
  const a = await startInstance(store, { identity: { lastUsedFlushMs: 100_000, lastUsedFlushChunk: 2 } });
  try {
    const owner = await adminKey(a.gw, 'owner');
    await a.gw.identity.flushLastUsed(); // the admin key's own use
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const c = await adminApi(a.url, owner, 'POST', '/admin/v1/keys', { tenant: 'acme', name: `svc-${i}` });
      assert.equal(c.status, 201, JSON.stringify(c.body));
      assert.equal((await chat(a.url, c.body.key)).status, 200);
      ids.push(c.body.id);
    }
    for (const id of ids) assert.equal((await adminApi(a.url, owner, 'GET', `/admin/v1/keys/${id}`)).body.lastUsedAt, null);
    const { loopTurned } = await whileLooping(a.gw.identity.flushLastUsed());
    assert.ok(loopTurned, 'the event loop turned between the flush transactions');
    for (const id of ids) assert.ok((await adminApi(a.url, owner, 'GET', `/admin/v1/keys/${id}`)).body.lastUsedAt > Date.now() - 60_000, id);
  } finally {
    await a.close();
  }
});
