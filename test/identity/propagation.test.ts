/**
 * Revocation across instances: two gateways sharing one store; a revocation on one is refused
 * by the other within 1 s (PostgreSQL: LISTEN/NOTIFY; SQLite: polling the key-change sequence).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openDb } from '../../src/store/db.js';
import { Lifecycle } from '../../src/identity/lifecycle.js';
import { loadPepper } from '../../src/identity/keys.js';
import { adminApi, adminKey, chat, dropStore, newStore, pgSkipReason, startInstance, TEST_ENV, waitFor } from './util.js';

async function twoInstances(kind: 'sqlite' | 'postgres', identity: Record<string, unknown>) {
  const store = newStore(kind, 'prop');
  const a = await startInstance(store, { identity });
  const b = await startInstance(store, { identity });
  return {
    store,
    a,
    b,
    async close() {
      await a.close();
      await b.close();
      await dropStore(store);
    },
  };
}

test('PostgreSQL: revoke on instance A is refused by instance B within 1 s (LISTEN/NOTIFY)', async (t) => {
  const skip = await pgSkipReason();
  if (skip) return t.skip(skip);
  // Polling fallback set to a minute: only NOTIFY can make this fast.
  const env = await twoInstances('postgres', { revocationPollMs: 60_000, cacheTtlMs: 600_000 });
  try {
    const owner = await adminKey(env.a.gw, 'owner');
    const k = (await adminApi(env.a.url, owner, 'POST', '/admin/v1/keys', { tenant: 'acme', name: 'svc' })).body;
    assert.equal((await chat(env.b.url, k.key)).status, 200); // B caches the key
    assert.equal((await chat(env.b.url, k.key)).status, 200);
    const t0 = performance.now();
    assert.equal((await adminApi(env.a.url, owner, 'POST', `/admin/v1/keys/${k.id}/revoke`, {})).status, 200);
    const ms = await waitFor(async () => (await chat(env.b.url, k.key)).status === 401, 1000, 10);
    t.diagnostic(`instance B refused the revoked key ${Math.round(performance.now() - t0)} ms after the revoke call (${Math.round(ms)} ms after it returned)`);
    // rotation with zero grace and tenant suspension propagate the same way
    const k2 = (await adminApi(env.a.url, owner, 'POST', '/admin/v1/keys', { tenant: 'acme', name: 'svc2' })).body;
    assert.equal((await chat(env.b.url, k2.key)).status, 200);
    await adminApi(env.a.url, owner, 'PATCH', '/admin/v1/tenants/acme', { status: 'suspended' });
    await waitFor(async () => (await chat(env.b.url, k2.key)).status === 401, 1000, 10);
  } finally {
    await env.close();
  }
});

test('SQLite: a second instance on the same data dir sees a revocation within 1 s (sequence polling)', async (t) => {
  const env = await twoInstances('sqlite', { revocationPollMs: 250, cacheTtlMs: 600_000 });
  try {
    const owner = await adminKey(env.a.gw, 'owner');
    const k = (await adminApi(env.a.url, owner, 'POST', '/admin/v1/keys', { tenant: 'acme', name: 'svc' })).body;
    assert.equal((await chat(env.b.url, k.key)).status, 200);
    await adminApi(env.a.url, owner, 'POST', `/admin/v1/keys/${k.id}/revoke`, {});
    const ms = await waitFor(async () => (await chat(env.b.url, k.key)).status === 401, 1000, 10);
    t.diagnostic(`SQLite instance B refused after ${Math.round(ms)} ms`);

    // An offline change (what `portcullis keys revoke` does without --url) reaches running instances too.
    const k2 = (await adminApi(env.a.url, owner, 'POST', '/admin/v1/keys', { tenant: 'acme', name: 'svc2' })).body;
    assert.equal((await chat(env.a.url, k2.key)).status, 200);
    assert.equal((await chat(env.b.url, k2.key)).status, 200);
    const db = await openDb({ dataDir: env.store.dataDir });
    try {
      await new Lifecycle(db, loadPepper(env.store.dataDir, TEST_ENV)).revokeKey({ id: 'cli', source: 'cli' }, k2.id, 'offline');
    } finally {
      await db.close();
    }
    await waitFor(async () => (await chat(env.a.url, k2.key)).status === 401 && (await chat(env.b.url, k2.key)).status === 401, 1000, 10);
  } finally {
    await env.close();
  }
});
