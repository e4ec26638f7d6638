/** Money budgets and models without a price: refused by default, allowed (at $0) when configured. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createLimiter, createMemoryCounterStore, parseLimitsConfig, type AdmitRequest } from '../../src/limits/index.js';
import { startGateway } from '../helpers/gateway.js';
import { startMockUpstream } from '../helpers/mock-upstream.js';

const req = (model: string, limits: AdmitRequest['limits']): AdmitRequest => ({ tenantId: 't1', keyId: 'k1', model, inputTokens: 10, messages: 1, limits });

test('a money budget on an unpriced model refuses (403) by default; allow admits at $0; other limits and priced models are unaffected', async () => {
  const refuse = createLimiter({ config: parseLimitsConfig({}), store: createMemoryCounterStore({ sweepMs: 0 }) });
  const allow = createLimiter({ config: parseLimitsConfig({ unpricedModels: 'allow' }), store: createMemoryCounterStore({ sweepMs: 0 }) });
  try {
    const r = await refuse.admit(req('mystery-model-7b', { tenant: { dailyCostUsd: 5 } }));
    assert.equal(r.ok, false);
    if (!r.ok) {
      assert.equal(r.error.status, 403);
      assert.match(r.error.message, /no price configured/);
    }
    assert.equal((await refuse.admit(req('mystery-model-7b', { key: { monthlyCostUsd: 50 } }))).ok, false, 'monthly budgets too');
    assert.equal((await refuse.admit(req('mystery-model-7b', { key: { requestsPerMinute: 10, dailyTokens: 100_000 } }))).ok, true, 'no money budget: nothing to enforce');
    assert.equal((await refuse.admit(req('gpt-4o-mini', { tenant: { dailyCostUsd: 5 } }))).ok, true, 'a priced model is admitted');
    const a = await allow.admit(req('mystery-model-7b', { tenant: { dailyCostUsd: 5 } }));
    assert.equal(a.ok, true);
    if (a.ok) assert.equal((await allow.settle(a.ticket, { inputTokens: 10, outputTokens: 10 })).costUsd, 0);
  } finally {
    await refuse.close();
    await allow.close();
  }
});

test('through the gateway: 403 with a clear message; a pricing entry makes the model usable', async () => {
  const common = { limits: { defaults: { tenant: { dailyCostUsd: 1 } } }, guards: { enabled: false } };
  for (const [extra, status] of [[{}, 403], [{ pricing: { 'unpriced-*': { inputPerMTok: 1, outputPerMTok: 2 } } }, 200]] as const) {
    // An upstream (deployment) name the price table does not know either: nothing prices the request.
    const mock = await startMockUpstream();
    const t = await startGateway({ ...common, limits: { ...common.limits, ...extra }, providers: { mock: { type: 'openai', baseUrl: `${mock.url}/v1` } }, routes: [{ model: 'unpriced-*', provider: 'mock', upstreamModel: 'unpriced-deployment' }] });
    try {
      const key = await t.newKey('acme', 'svc');
      const res = await fetch(`${t.url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'unpriced-llm', messages: [{ role: 'user', content: 'hello there' }] }) });
      const body = (await res.json()) as { error?: { message: string; code: string } };
      assert.equal(res.status, status, JSON.stringify(body));
      if (status === 403) {
        assert.equal(body.error?.code, 'permission_denied');
        assert.match(body.error!.message, /no price configured/);
      }
    } finally {
      await t.close();
      await mock.close();
    }
  }
});
