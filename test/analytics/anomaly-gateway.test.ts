/** Anomaly → automatic suspension through a real gateway (short buckets), and the operator's reversal. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AnalyticsModule } from '../../src/analytics/module.js';
import type { AdminModule } from '../../src/server/admin/module.js';
import { startGateway } from '../helpers/gateway.js';

/** A gateway whose anomaly buckets last 1 s and whose anomalies suspend the key; a key of tenant `tenant` and a chat sender for it. */
async function suspendingGateway(tenant: string) {
  const t = await startGateway({ analytics: { anomaly: { bucketMs: 1000, warmupBuckets: 3, minRequests: 5, zThreshold: 4 }, response: { onAnomaly: 'suspend', refreshMs: 200 } } });
  const key = await t.newKey(tenant, 'svc');
  const send = async (content: string) => {
    const res = await fetch(`${t.url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'demo', messages: [{ role: 'user', content }] }) });
    await res.text();
    return res.status;
  };
  return { t, key, keyId: key.split('_')[1]!, send, mod: t.gw.modules.get('analytics') as AnalyticsModule };
}

test('a request-rate burst on a warmed-up key suspends it automatically; clear restores it', async () => {
  const { t, keyId, send, mod } = await suspendingGateway('burst');
  try {
    for (let i = 0; i < 5; i++) {
      assert.equal(await send(`steady ${i}`), 200);
      await new Promise((r) => setTimeout(r, 1000));
    }
    const burst = await Promise.all(Array.from({ length: 40 }, (_, i) => send(`burst ${i}`)));
    assert.ok(burst.filter((s) => s === 200).length >= 5, `burst statuses ${burst.join(',')}`);
    await new Promise((r) => setTimeout(r, 1200));
    await send('after the burst'); // closes the burst's bucket (the timer would too)
    await mod.settle();
    assert.equal(mod.actions.active(keyId)?.kind, 'suspend');
    assert.equal(await send('suspended?'), 403);
    const alerts = mod.alerter.list();
    assert.ok(alerts.some((a) => a.kind === 'anomaly' && a.signal === 'request_rate' && a.keyId === keyId));
    const lc = (t.gw.modules.get('admin') as AdminModule).lifecycle;
    const admin = (await lc.createAdminKey({ id: 'test' }, { name: 'ops', role: 'operator', tenants: ['burst'] })).key;
    const clear = await fetch(`${t.url}/admin/v1/analytics/keys/${keyId}/clear`, { method: 'POST', headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' }, body: '{}' });
    assert.equal(clear.status, 200);
    assert.equal(await send('back'), 200);
    const ev = await lc.events({ targetId: keyId });
    const acts = ev.data.filter((e) => e.action === 'analytics.suspend' || e.action === 'analytics.clear').map((e) => `${e.actor === 'analytics' ? 'auto' : 'admin'}:${e.action}`);
    assert.deepEqual(acts, ['admin:analytics.clear', 'auto:analytics.suspend'], 'audited, newest first');
  } finally {
    await t.close();
  }
});

test('a key with one request and then idle buckets is not warmed up: its first burst neither alerts nor suspends it', async () => {
  const { t, keyId, send, mod } = await suspendingGateway('idle');
  try {
    assert.equal(await send('first'), 200);
    await new Promise((r) => setTimeout(r, 5000)); // five idle buckets: more than warmupBuckets, but not history
    const burst = await Promise.all(Array.from({ length: 40 }, (_, i) => send(`burst ${i}`)));
    assert.ok(burst.every((s) => s === 200), `burst statuses ${burst.join(',')}`);
    await new Promise((r) => setTimeout(r, 1200));
    assert.equal(await send('after the burst'), 200); // closes the burst's bucket
    await mod.settle();
    assert.equal(mod.actions.active(keyId), undefined, 'not suspended');
    assert.deepEqual(mod.alerter.list().filter((a) => a.keyId === keyId).map((a) => a.signal), [], 'no alerts');
    assert.equal((await fetch(`${t.url}/admin/v1/analytics/keys/${keyId}`)).status, 401);
    assert.ok(mod.baselines.baseline(`key:${keyId}`)!.seen <= 3, 'only the buckets with traffic are history');
  } finally {
    await t.close();
  }
});
