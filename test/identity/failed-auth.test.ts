/** Failed authentication: generic 401, limits per client address and per key id, counters. */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { adminApi, adminKey, chat, dropStore, newStore, startInstance, type Instance, type StoreSpec } from './util.js';

let store: StoreSpec;
let gw: Instance;
let owner: string;
before(async () => {
  store = newStore('sqlite');
  gw = await startInstance(store, { identity: { failedAuth: { perAddress: { burst: 8, perMinute: 0.5 }, perKey: { burst: 4, perMinute: 0.5 } } } });
  owner = await adminKey(gw.gw, 'owner');
});
after(async () => {
  await gw.close();
  await dropStore(store);
});

const wrongSecret = (key: string) => key.slice(0, -4) + (key.endsWith('AAAA') ? 'BBBB' : 'AAAA');

test('unknown, malformed, wrong-secret and revoked keys all get the same generic 401', async () => {
  const k = (await adminApi(gw.url, owner, 'POST', '/admin/v1/keys', { tenant: 'acme', name: 'svc' })).body;
  const unknown = 'pcl_' + 'Z'.repeat(12) + '_' + 'x'.repeat(43);
  const bodies = [];
  for (const cred of [unknown, 'garbage', wrongSecret(k.key)]) {
    const r = await chat(gw.url, cred);
    assert.equal(r.status, 401);
    bodies.push(r.body.error.message.replace(/\(request id: [^)]+\)/, ''));
  }
  assert.equal(new Set(bodies).size, 1, 'indistinguishable messages');
  const counts = gw.gw.identity.failureCounts();
  assert.equal(counts.byReason.unknown_key, 1);
  assert.equal(counts.byReason.malformed, 1);
  assert.equal(counts.byReason.bad_secret, 1);
  assert.equal((await chat(gw.url, k.key)).status, 200, 'a valid key from the same address still works below the limit');
});

test('per key id: repeated wrong secrets for one id → 429 with Retry-After, while the real key still works', async () => {
  const k = (await adminApi(gw.url, owner, 'POST', '/admin/v1/keys', { tenant: 'acme', name: 'target' })).body;
  // Spread attempts over addresses (trustProxy is off, so use the per-key limit only): 4 failures allowed.
  const statuses = [];
  for (let i = 0; i < 5; i++) statuses.push((await chat(gw.url, wrongSecret(k.key))).status);
  assert.deepEqual(statuses.slice(0, 4), [401, 401, 401, 401]);
  assert.equal(statuses[4], 429);
  const r = await chat(gw.url, wrongSecret(k.key));
  assert.equal(r.status, 429);
  assert.ok(Number(r.headers.get('retry-after')) >= 1);
  assert.ok(gw.gw.identity.failureCounts().byReason.rate_limited >= 2);
  assert.equal((await chat(gw.url, k.key)).status, 200, 'the holder of the real key is not locked out');
});

test('per address: after the burst every attempt from the address is refused before any lookup', async () => {
  // The address has used 3 + 4 failures so far (the 429s do not count): one more fills the burst of 8.
  const unknown = () => 'pcl_' + Math.random().toString(36).slice(2, 14).padEnd(12, 'q').replace(/[^A-Za-z0-9]/g, 'q') + '_' + 'y'.repeat(43);
  let limited = false;
  for (let i = 0; i < 5 && !limited; i++) limited = (await chat(gw.url, unknown())).status === 429;
  assert.ok(limited, 'the address is limited');
  const before = gw.gw.identity.failureCounts();
  const k = (await adminApi(gw.url, owner, 'POST', '/admin/v1/keys', { tenant: 'acme', name: 'other' }));
  assert.equal(k.status, 429, 'admin authentication shares the address limit');
  const r = await chat(gw.url, unknown());
  assert.equal(r.status, 429);
  assert.equal(r.body.error.type, 'rate_limit_error');
  const afterCounts = gw.gw.identity.failureCounts();
  assert.equal(afterCounts.byReason.unknown_key, before.byReason.unknown_key, 'no lookup while limited');
});
