/** Alert delivery and automated response through a real gateway: the webhook is never unsigned, alerts report what was done. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { createHmac } from 'node:crypto';
import type { AnalyticsModule } from '../../src/analytics/module.js';
import type { AdminModule } from '../../src/server/admin/module.js';
import { startGateway } from '../helpers/gateway.js';

test('a webhookUrl without its signing secret refuses to start, naming the variable', async () => {
  const alerts = { webhookUrl: 'http://127.0.0.1:9/hook' };
  await assert.rejects(startGateway({ analytics: { alerts } }, { env: {} }), (e: Error) => {
    assert.equal(e.name, 'ConfigError');
    assert.match(e.message, /analytics\.alerts\.webhookUrl is set but the environment variable PORTCULLIS_ALERT_WEBHOOK_SECRET .* is not set/);
    return true;
  });
  await assert.rejects(startGateway({ analytics: { alerts: { ...alerts, webhookSecretEnv: 'MY_HOOK_SECRET' } } }, { env: { MY_HOOK_SECRET: '' } }), /environment variable MY_HOOK_SECRET \(analytics\.alerts\.webhookSecretEnv\).* is empty/);
  // The Alerter itself never sends unsigned either.
  const { Alerter } = await import('../../src/analytics/alerts.js');
  assert.throws(() => new Alerter({ webhookUrl: 'http://127.0.0.1:9/hook', timeoutMs: 100, dedupMs: 0, keep: 1, log: { warn() {} } }), /never sent unsigned/);
  // With analytics off nothing is ever sent, so a leftover webhookUrl does not stop the gateway.
  const off = await startGateway({ analytics: { enabled: false, alerts } }, { env: {} });
  await off.close();
});

function campaign(i: number): string {
  return `Classify the sentiment of review number ${1000 + i}: "The product arrived on time and works as described." Answer positive or negative.`;
}

test('alerts report the action actually taken: throttle, then none (already throttled), then none (cooldown after a clear); signed webhook', async () => {
  const got: Array<{ sig: string; ts: string; body: string }> = [];
  const recv = createServer((req, res) => {
    let b = '';
    req.on('data', (c) => (b += c));
    req.on('end', () => {
      got.push({ sig: String(req.headers['x-portcullis-signature']), ts: String(req.headers['x-portcullis-timestamp']), body: b });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => recv.listen(0, '127.0.0.1', () => r()));
  const secret = 'alert-' + 'hook-secret';
  const t = await startGateway(
    { analytics: { alerts: { webhookUrl: `http://127.0.0.1:${(recv.address() as { port: number }).port}/hook`, dedupMs: 0 }, response: { onExtraction: 'throttle', throttleRpm: 100_000 } } },
    { env: { PORTCULLIS_ALERT_WEBHOOK_SECRET: secret } },
  );
  try {
    const key = await t.newKey('acme', 'svc');
    const keyId = key.split('_')[1]!;
    const mod = t.gw.modules.get('analytics') as AnalyticsModule;
    const send = async (i: number) => {
      const res = await fetch(`${t.url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'demo', messages: [{ role: 'user', content: campaign(i) }], logprobs: true, top_logprobs: 20 }) });
      await res.text();
      await mod.settle();
      return res.status;
    };
    let i = 0;
    while (mod.alerter.list().length === 0 && i < 80) assert.equal(await send(i++), 200);
    assert.equal(mod.actions.active(keyId)?.kind, 'throttle');
    for (let k = 0; k < 3; k++) assert.equal(await send(i++), 200); // throttled at 100 000 rpm: still served, still flagged
    const lc = (t.gw.modules.get('admin') as AdminModule).lifecycle;
    const admin = (await lc.createAdminKey({ id: 'test' }, { name: 'ops', role: 'owner' })).key;
    const clear = await fetch(`${t.url}/admin/v1/analytics/keys/${keyId}/clear`, { method: 'POST', headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' }, body: '{}' });
    assert.equal(clear.status, 200);
    // The clear also resets the key's extraction window: the campaign is flagged again after ~30 more requests.
    const before = mod.alerter.list().length;
    for (let k = 0; k < 80 && mod.alerter.list().length === before; k++) assert.equal(await send(i++), 200);
    const list = mod.alerter.list().reverse();
    assert.deepEqual(
      list.map((a) => `${a.action}${a.skipped ? `/${a.skipped}` : ''}`),
      ['throttle', 'none/already_throttled', 'none/already_throttled', 'none/already_throttled', 'none/cooldown'],
    );
    assert.equal(mod.actions.active(keyId), undefined, 'the clear holds during the cooldown');
    const ev = await lc.events({ targetId: keyId });
    const recorded = ev.data.filter((e) => e.action === 'analytics.alert').map((e) => (e.detail as { action: string; skipped?: string }) ?? {});
    assert.deepEqual(recorded.map((d) => `${d.action}${d.skipped ? `/${d.skipped}` : ''}`).reverse(), list.map((a) => `${a.action}${a.skipped ? `/${a.skipped}` : ''}`));
    await mod.alerter.flush();
    assert.equal(got.length, list.length);
    for (const g of got) assert.equal(g.sig, 'sha256=' + createHmac('sha256', secret).update(`${g.ts}.${g.body}`).digest('hex'));
    assert.equal(JSON.parse(got.at(-1)!.body).alert.skipped, 'cooldown');
  } finally {
    await t.close();
    recv.close();
  }
});

test('alertOnly keys and tenants are alerted on but never throttled automatically (action none, skipped alert_only)', async () => {
  const t = await startGateway({ analytics: { response: { onExtraction: 'throttle', alertOnly: { tenants: ['batch-team'] } } } });
  const dataDir = t.dataDir;
  let keyId = '';
  const campaignOn = async (url: string, key: string, mod: AnalyticsModule) => {
    for (let i = 0; i < 80 && mod.alerter.list().length === 0; i++) {
      const res = await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'demo', messages: [{ role: 'user', content: campaign(i) }], logprobs: true, top_logprobs: 20 }) });
      await res.text();
      assert.equal(res.status, 200);
      await mod.settle();
    }
    return mod.alerter.list().map((a) => `${a.kind}:${a.action}/${a.skipped}`);
  };
  try {
    const key = await t.newKey('batch-team', 'pipeline');
    const mod = t.gw.modules.get('analytics') as AnalyticsModule;
    assert.deepEqual(await campaignOn(t.url, key, mod), ['extraction:none/alert_only']);
    assert.equal(mod.actions.active(key.split('_')[1]!), undefined);
    const other = await t.newKey('someone-else', 'svc');
    keyId = other.split('_')[1]!;
    await t.gw.close();
    // Same store, the key exempted by id.
    const t2 = await startGateway({ dataDir, analytics: { response: { onExtraction: 'throttle', alertOnly: { keys: [keyId] } } } });
    try {
      const mod2 = t2.gw.modules.get('analytics') as AnalyticsModule;
      assert.deepEqual(await campaignOn(t2.url, other, mod2), ['extraction:none/alert_only']);
      assert.equal(mod2.actions.active(keyId), undefined);
    } finally {
      await t2.close();
    }
  } finally {
    await t.close();
  }
});
