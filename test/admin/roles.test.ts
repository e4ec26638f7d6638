/** Admin API: admin-key authentication, roles (owner, operator of assigned tenants, auditor), validation, paging, audit, OpenAPI. */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { adminApi, adminKey, chat, dropStore, newStore, pgSkipReason, startInstance, type Instance, type StoreSpec } from '../identity/util.js';

for (const kind of ['sqlite', 'postgres'] as const) {
  describe(`admin API (${kind})`, async () => {
    const skip = kind === 'postgres' ? await pgSkipReason() : null;
    let store: StoreSpec;
    let gw: Instance;
    let owner: string;
    before(async () => {
      if (skip) return;
      store = newStore(kind, 'roles');
      gw = await startInstance(store, { tiers: { free: { operations: ['chat'] } } });
      owner = await adminKey(gw.gw, 'owner');
    });
    after(async () => {
      if (skip) return;
      await gw.close();
      await dropStore(store);
    });

    test('API keys and bad admin keys cannot use the admin API; owner sees itself', { skip: skip ?? false }, async () => {
      const apiKey = (await adminApi(gw.url, owner, 'POST', '/admin/v1/keys', { tenant: 'acme', name: 'svc' })).body.key;
      assert.equal((await adminApi(gw.url, apiKey, 'GET', '/admin/v1/me')).status, 401);
      assert.equal((await fetch(`${gw.url}/admin/v1/keys`)).status, 401);
      assert.equal((await chat(gw.url, owner)).status, 401, 'admin keys are not API keys');
      const me = await adminApi(gw.url, owner, 'GET', '/admin/v1/me');
      assert.equal(me.status, 200);
      assert.equal(me.body.role, 'owner');
      assert.equal(me.headers.get('cache-control'), 'no-store');
    });

    test('operator manages only its tenants; other tenants look absent (404)', { skip: skip ?? false }, async () => {
      const a = (await adminApi(gw.url, owner, 'POST', '/admin/v1/tenants', { name: 'team-a' })).body;
      await adminApi(gw.url, owner, 'POST', '/admin/v1/tenants', { name: 'team-b' });
      const bKey = (await adminApi(gw.url, owner, 'POST', '/admin/v1/keys', { tenant: 'team-b', name: 'svc' })).body;
      const op = (await adminApi(gw.url, owner, 'POST', '/admin/v1/admin-keys', { name: 'ops-a', role: 'operator', tenants: ['team-a'] })).body;
      assert.match(op.key, /^pcla_/);

      assert.equal((await adminApi(gw.url, op.key, 'POST', '/admin/v1/keys', { tenant: 'team-a', name: 'svc', tier: 'free' })).status, 403, 'only owners assign tiers');
      await adminApi(gw.url, owner, 'PATCH', '/admin/v1/tenants/team-a', { tier: 'free' });
      const mine = await adminApi(gw.url, op.key, 'POST', '/admin/v1/keys', { tenant: 'team-a', name: 'svc' });
      assert.equal(mine.status, 201);
      assert.equal((await chat(gw.url, mine.body.key)).status, 200);
      assert.equal((await adminApi(gw.url, op.key, 'POST', '/admin/v1/keys', { tenant: 'team-b', name: 'x' })).status, 404);
      assert.equal((await adminApi(gw.url, op.key, 'POST', '/admin/v1/keys', { tenant: 'new-tenant', name: 'x' })).status, 404, 'operators cannot create tenants implicitly');
      assert.equal((await adminApi(gw.url, op.key, 'GET', `/admin/v1/keys/${bKey.id}`)).status, 404);
      assert.equal((await adminApi(gw.url, op.key, 'POST', `/admin/v1/keys/${bKey.id}/revoke`, {})).status, 404);
      assert.equal((await chat(gw.url, bKey.key)).status, 200, 'untouched');
      assert.equal((await adminApi(gw.url, op.key, 'POST', '/admin/v1/tenants/team-b/revoke-keys', {})).status, 404);
      const keys = await adminApi(gw.url, op.key, 'GET', '/admin/v1/keys');
      assert.ok(keys.body.data.length >= 1);
      assert.ok(keys.body.data.every((k: any) => k.tenantId === a.id));
      const tenants = await adminApi(gw.url, op.key, 'GET', '/admin/v1/tenants');
      assert.deepEqual(tenants.body.data.map((t: any) => t.name), ['team-a']);
      assert.equal((await adminApi(gw.url, op.key, 'POST', '/admin/v1/tenants', { name: 'team-c' })).status, 403);
      // Tiers and tenant-wide scopes are the ceiling: operators cannot raise them, only narrow per key.
      assert.equal((await adminApi(gw.url, op.key, 'PATCH', '/admin/v1/tenants/team-a', { tier: 'free' })).status, 403);
      assert.equal((await adminApi(gw.url, op.key, 'PATCH', '/admin/v1/tenants/team-a', { scopes: null })).status, 403);
      assert.equal((await adminApi(gw.url, op.key, 'PATCH', `/admin/v1/keys/${mine.body.id}`, { tier: null })).status, 403);
      const narrowed = await adminApi(gw.url, op.key, 'PATCH', `/admin/v1/keys/${mine.body.id}`, { scopes: { models: { allow: ['demo'] } } });
      assert.equal(narrowed.status, 200);
      assert.deepEqual(narrowed.body.scopes, { models: { allow: ['demo'] } });
      assert.equal((await adminApi(gw.url, op.key, 'PATCH', '/admin/v1/tenants/team-a', { status: 'active' })).status, 200);
      assert.equal((await adminApi(gw.url, op.key, 'POST', '/admin/v1/admin-keys', { name: 'x', role: 'owner' })).status, 403);
      assert.equal((await adminApi(gw.url, op.key, 'POST', `/admin/v1/keys/${mine.body.id}/revoke`, {})).status, 200);
      assert.equal((await chat(gw.url, mine.body.key)).status, 401);
    });

    test('auditor reads everything and changes nothing; denied attempts are audited', { skip: skip ?? false }, async () => {
      const aud = (await adminApi(gw.url, owner, 'POST', '/admin/v1/admin-keys', { name: 'audit', role: 'auditor' })).body;
      assert.equal((await adminApi(gw.url, aud.key, 'GET', '/admin/v1/keys')).status, 200);
      assert.equal((await adminApi(gw.url, aud.key, 'GET', '/admin/v1/events')).status, 200);
      assert.equal((await adminApi(gw.url, aud.key, 'GET', '/admin/v1/tiers')).body.data[0].name, 'free');
      const k = (await adminApi(gw.url, owner, 'POST', '/admin/v1/keys', { tenant: 'acme', name: 'svc2' })).body;
      const r = await adminApi(gw.url, aud.key, 'POST', `/admin/v1/keys/${k.id}/revoke`, {});
      assert.equal(r.status, 403);
      assert.equal((await adminApi(gw.url, aud.key, 'POST', '/admin/v1/keys', { tenant: 'acme', name: 'x' })).status, 403);
      assert.equal((await chat(gw.url, k.key)).status, 200);
      const ev = await adminApi(gw.url, owner, 'GET', '/admin/v1/events?action=admin.denied');
      assert.ok(ev.body.data.some((e: any) => e.actor === aud.id && e.targetId === 'revokeKey'));
      // revoking the auditor's admin key locks it out at once
      assert.equal((await adminApi(gw.url, owner, 'POST', `/admin/v1/admin-keys/${aud.id}/revoke`, {})).status, 200);
      assert.equal((await adminApi(gw.url, aud.key, 'GET', '/admin/v1/keys')).status, 401);
    });

    test('validation errors are 400 with the failing field; paging walks every key once', { skip: skip ?? false }, async () => {
      const bad = await adminApi(gw.url, owner, 'POST', '/admin/v1/keys', { tenant: 'acme', name: 'x', extra: 1 });
      assert.equal(bad.status, 400);
      assert.match(bad.body.error.message, /extra/);
      assert.equal((await adminApi(gw.url, owner, 'GET', '/admin/v1/keys?limit=0')).status, 400);
      assert.equal((await adminApi(gw.url, owner, 'POST', '/admin/v1/admin-keys', { name: 'op', role: 'operator' })).status, 400);
      for (let i = 0; i < 5; i++) await adminApi(gw.url, owner, 'POST', '/admin/v1/keys', { tenant: 'paged', name: `svc${i}` });
      const seen: string[] = [];
      let cursor: string | null = null;
      do {
        const page: any = await adminApi(gw.url, owner, 'GET', `/admin/v1/keys?tenant=paged&limit=2${cursor ? `&cursor=${cursor}` : ''}`);
        assert.ok(page.body.data.length <= 2);
        seen.push(...page.body.data.map((k: any) => k.id));
        cursor = page.body.nextCursor;
      } while (cursor);
      assert.equal(seen.length, 5);
      assert.equal(new Set(seen).size, 5);
    });

    test('OpenAPI document lists every admin route with its schemas', { skip: skip ?? false }, async () => {
      const res = await fetch(`${gw.url}/admin/v1/openapi.json`);
      assert.equal(res.status, 200);
      const doc = (await res.json()) as any;
      assert.equal(doc.openapi, '3.1.0');
      assert.ok(doc.paths['/admin/v1/keys/{id}/rotate'].post);
      const create = doc.paths['/admin/v1/keys'].post.requestBody.content['application/json'].schema;
      assert.deepEqual(create.required, ['tenant', 'name']);
      assert.equal(create.properties.scopes.properties.maxOutputTokens.type, 'integer');
      assert.ok(doc.paths['/admin/v1/keys'].get.parameters.some((p: any) => p.name === 'status' && p.schema.enum.includes('revoked')));
    });
  });
}
