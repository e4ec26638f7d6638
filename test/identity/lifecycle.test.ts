/** Key lifecycle through the admin API on SQLite and PostgreSQL: create, use, rotate, revoke, expire, bulk revoke, audit. */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { adminApi, adminKey, chat, dropStore, newStore, pgSkipReason, startInstance, type Instance, type StoreSpec } from './util.js';

for (const kind of ['sqlite', 'postgres'] as const) {
  describe(`key lifecycle (${kind})`, async () => {
    const skip = kind === 'postgres' ? await pgSkipReason() : null;
    let store: StoreSpec;
    let a: Instance;
    let owner: string;
    before(async () => {
      if (skip) return;
      store = newStore(kind, 'life');
      a = await startInstance(store, { identity: { lastUsedFlushMs: 100_000 } });
      owner = await adminKey(a.gw, 'owner');
    });
    after(async () => {
      if (skip) return;
      await a?.close();
      await dropStore(store);
    });

    test('create → use → show metadata (no secret, no hash), last_used_at batched', { skip: skip ?? false }, async () => {
      const c = await adminApi(a.url, owner, 'POST', '/admin/v1/keys', { tenant: 'acme', name: 'checkout', owner: 'team-payments', expiresInSeconds: 3600 });
      assert.equal(c.status, 201, JSON.stringify(c.body));
      assert.match(c.body.key, /^pcl_[A-Za-z0-9]{12}_[A-Za-z0-9_-]{43}$/);
      assert.equal(c.body.tenant, 'acme');
      assert.equal(c.body.owner, 'team-payments');
      assert.equal(c.body.createdBy, c.body.createdBy && c.body.createdBy.length === 12 ? c.body.createdBy : 'x');
      assert.ok(c.body.expiresAt > Date.now());
      assert.equal((await chat(a.url, c.body.key)).status, 200);
      const s = await adminApi(a.url, owner, 'GET', `/admin/v1/keys/${c.body.id}`);
      assert.equal(s.status, 200);
      assert.equal(s.body.status, 'active');
      assert.equal(s.body.key, undefined);
      assert.equal(s.body.hash, undefined);
      assert.equal(s.body.lastUsedAt, null, 'last_used_at is not written per request');
      await a.gw.identity.flushLastUsed();
      const s2 = await adminApi(a.url, owner, 'GET', `/admin/v1/keys/${c.body.id}`);
      assert.ok(s2.body.lastUsedAt > Date.now() - 60_000);
    });

    test('rotate: successor works, old key works during grace (flagged), fails after the deadline', { skip: skip ?? false }, async () => {
      const c = await adminApi(a.url, owner, 'POST', '/admin/v1/keys', { tenant: 'acme', name: 'svc-rot' });
      const r = await adminApi(a.url, owner, 'POST', `/admin/v1/keys/${c.body.id}/rotate`, { graceSeconds: 3 });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.notEqual(r.body.id, c.body.id);
      assert.equal(r.body.previous.status, 'grace');
      assert.equal(r.body.previous.successorId, r.body.id);
      assert.equal((await chat(a.url, r.body.key)).status, 200);
      const old = await chat(a.url, c.body.key);
      assert.equal(old.status, 200);
      assert.equal(old.headers.get('x-portcullis-key-rotated'), 'true');
      assert.equal((await adminApi(a.url, owner, 'POST', `/admin/v1/keys/${c.body.id}/rotate`, {})).status, 409, 'a rotated key cannot be rotated again');
      await new Promise((res) => setTimeout(res, Math.max(0, r.body.previous.graceUntil - Date.now() + 50)));
      assert.equal((await chat(a.url, c.body.key)).status, 401);
      assert.equal((await chat(a.url, r.body.key)).status, 200);
      assert.equal((await adminApi(a.url, owner, 'GET', `/admin/v1/keys/${c.body.id}`)).body.status, 'rotated');
    });

    test('revoke and expire take effect at once; generic 401', { skip: skip ?? false }, async () => {
      const k1 = (await adminApi(a.url, owner, 'POST', '/admin/v1/keys', { tenant: 'acme', name: 'svc-rev' })).body;
      const k2 = (await adminApi(a.url, owner, 'POST', '/admin/v1/keys', { tenant: 'acme', name: 'svc-exp' })).body;
      assert.equal((await chat(a.url, k1.key)).status, 200); // cached now
      assert.equal((await chat(a.url, k2.key)).status, 200);
      const rv = await adminApi(a.url, owner, 'POST', `/admin/v1/keys/${k1.id}/revoke`, { reason: 'leaked in a log' });
      assert.equal(rv.body.status, 'revoked');
      assert.equal(rv.body.revokedReason, 'leaked in a log');
      const denied = await chat(a.url, k1.key);
      assert.equal(denied.status, 401);
      assert.equal(denied.body.error.code, 'invalid_api_key');
      assert.doesNotMatch(JSON.stringify(denied.body), /revoked/i, 'the client is not told why');
      await adminApi(a.url, owner, 'POST', `/admin/v1/keys/${k2.id}/expire`, {});
      assert.equal((await chat(a.url, k2.key)).status, 401);
      const list = await adminApi(a.url, owner, 'GET', '/admin/v1/keys?tenant=acme&status=revoked');
      assert.deepEqual(list.body.data.map((k: any) => k.id), [k1.id]);
    });

    test('bulk revoke by tenant; suspended tenant refused; events record who/what/where', { skip: skip ?? false }, async () => {
      const ks = [];
      for (let i = 0; i < 3; i++) ks.push((await adminApi(a.url, owner, 'POST', '/admin/v1/keys', { tenant: 'incident', name: `svc${i}` })).body);
      const other = (await adminApi(a.url, owner, 'POST', '/admin/v1/keys', { tenant: 'bystander', name: 'svc' })).body;
      for (const k of ks) assert.equal((await chat(a.url, k.key)).status, 200);
      const r = await adminApi(a.url, owner, 'POST', '/admin/v1/tenants/incident/revoke-keys', { reason: 'incident 42' });
      assert.equal(r.body.revoked, 3);
      for (const k of ks) assert.equal((await chat(a.url, k.key)).status, 401);
      assert.equal((await chat(a.url, other.key)).status, 200);
      await adminApi(a.url, owner, 'PATCH', '/admin/v1/tenants/bystander', { status: 'suspended' });
      assert.equal((await chat(a.url, other.key)).status, 401);
      await adminApi(a.url, owner, 'PATCH', '/admin/v1/tenants/bystander', { status: 'active' });
      assert.equal((await chat(a.url, other.key)).status, 200);

      const ev = await adminApi(a.url, owner, 'GET', '/admin/v1/events?tenant=incident&limit=2');
      assert.equal(ev.status, 200);
      assert.equal(ev.body.data.length, 2);
      assert.equal(ev.body.data[0].action, 'tenant.revoke_keys');
      assert.equal(ev.body.data[0].source, '127.0.0.1');
      assert.ok(ev.body.data[0].requestId);
      assert.ok(ev.body.nextCursor);
      const ev2 = await adminApi(a.url, owner, 'GET', `/admin/v1/events?tenant=incident&limit=100&cursor=${ev.body.nextCursor}`);
      const actions = [...ev.body.data, ...ev2.body.data].map((e: any) => e.action);
      assert.equal(actions.filter((x: string) => x === 'key.create').length, 3, actions.join(','));
      assert.ok(actions.includes('tenant.create'));
      assert.ok(!JSON.stringify(ev.body).includes('pcl_'), 'no key material in events');
    });
  });
}
