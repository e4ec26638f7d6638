/** Authorization: layered scopes (defaults → tier → tenant → key), data boundaries, tools, output caps; via the engine and real HTTP. */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createPolicyEngine } from '../../src/policy/engine.js';
import { policyConfigSchema, tiersConfigSchema } from '../../src/policy/config.js';
import type { Principal } from '../../src/identity/types.js';
import { adminApi, adminKey, chat, dropStore, newStore, startInstance, type Instance, type StoreSpec } from '../identity/util.js';

const TIERS = {
  free: { models: { allow: ['demo', 'gpt-4o-mini*'] }, operations: ['chat', 'models:list'], tools: ['get_weather', 'search_*'], maxOutputTokens: 100 },
  pro: { models: { deny: ['*-preview'] }, maxOutputTokens: 4000 },
};
const POLICY = { defaults: { models: { deny: ['forbidden-*'] } }, dataBoundaries: [{ model: 'demo-vulnerable', label: 'external' }, { model: 'gpt-*', label: 'external' }] };

describe('policy engine', () => {
  const engine = createPolicyEngine({ tiers: tiersConfigSchema.parse(TIERS), policy: policyConfigSchema.parse(POLICY) });
  const p = (o: Partial<Principal> = {}): Principal => ({ tenantId: 't1', tenantName: 'acme', keyId: 'k1', subject: 'svc', scopes: null, authMethod: 'api_key', ...o });

  test('allow within every layer; cap is the smallest', () => {
    const d = engine.authorize(p({ tier: 'free' }), { operation: 'chat', model: 'demo', tools: ['search_web'], maxOutputTokens: 50 });
    assert.equal(d.allow, true);
    assert.equal(d.allow && d.maxOutputTokens, 100);
    assert.deepEqual(d.layers, ['defaults', 'tier:free']);
  });

  test('each check denies with its machine-readable reason and layer', () => {
    const free = p({ tier: 'free' });
    const cases: Array<[Principal, Parameters<typeof engine.authorize>[1], string, string]> = [
      [free, { operation: 'embeddings', model: 'demo' }, 'operation_not_allowed', 'tier:free'],
      [free, { operation: 'chat', model: 'claude-3' }, 'model_not_allowed', 'tier:free'],
      [free, { operation: 'chat', model: 'forbidden-x' }, 'model_denied', 'defaults'],
      [free, { operation: 'chat', model: 'demo', tools: ['search_web', 'run_shell'] }, 'tool_not_allowed', 'tier:free'],
      [free, { operation: 'chat', model: 'demo', maxOutputTokens: 101 }, 'max_output_tokens_exceeded', 'tier:free'],
      [p({ tier: 'pro' }), { operation: 'chat', model: 'gpt-5-preview' }, 'model_denied', 'tier:pro'],
      [p({ tier: 'gold' }), { operation: 'chat', model: 'demo' }, 'unknown_tier', 'tier:gold'],
      [p({ tier: 'pro', scopes: { dataBoundaries: ['internal'] } }), { operation: 'chat', model: 'gpt-4o' }, 'data_boundary', 'key'],
      [p({ tier: 'pro', tenantScopes: { operations: ['embeddings'] } }), { operation: 'chat', model: 'demo' }, 'operation_not_allowed', 'tenant'],
      [p({ scopes: { models: { allow: 'demo' } } as any }), { operation: 'chat', model: 'demo' }, 'invalid_scopes', 'key'],
      [p({ scopes: { operations: ['admin:*'] } }), { operation: 'chat' }, 'operation_not_allowed', 'key'],
    ];
    for (const [principal, req, reason, layer] of cases) {
      const d = engine.authorize(principal, req);
      assert.equal(d.allow, false, `${reason}: ${JSON.stringify(req)}`);
      if (!d.allow) {
        assert.equal(d.reason, reason, JSON.stringify(req));
        assert.equal(d.layer, layer, JSON.stringify(req));
      }
    }
  });

  test('a key can only narrow its tier, never widen it', () => {
    const d = engine.authorize(p({ tier: 'free', scopes: { models: { allow: ['*'] }, operations: ['*'], maxOutputTokens: 10_000 } }), { operation: 'embeddings', model: 'claude-3' });
    assert.equal(d.allow, false);
    const ok = engine.authorize(p({ tier: 'pro', scopes: { operations: ['admin:*'] } }), { operation: 'admin:keys' });
    assert.equal(ok.allow, true);
    assert.equal(engine.authorize(p({ scopes: { tools: [] } }), { operation: 'chat', model: 'demo', tools: ['x'] }).allow, false, 'tools: [] means no tools');
  });

  test('modelVisible filters the model list; defaultTier must exist', () => {
    assert.equal(engine.modelVisible(p({ tier: 'free' }), 'demo'), true);
    assert.equal(engine.modelVisible(p({ tier: 'free' }), 'demo-vulnerable'), false);
    assert.equal(engine.modelVisible(p({ scopes: { dataBoundaries: ['internal'] } }), 'demo-vulnerable'), false);
    assert.throws(() => createPolicyEngine({ tiers: {}, policy: policyConfigSchema.parse({ defaultTier: 'nope' }) }), /unknown tier/);
  });
});

describe('policy over HTTP', () => {
  let store: StoreSpec;
  let gw: Instance;
  let owner: string;
  let free: { id: string; key: string };
  before(async () => {
    store = newStore('sqlite');
    gw = await startInstance(store, { tiers: TIERS, policy: POLICY });
    owner = await adminKey(gw.gw, 'owner');
    free = (await adminApi(gw.url, owner, 'POST', '/admin/v1/keys', { tenant: 'acme', name: 'free-svc', tier: 'free' })).body;
  });
  after(async () => {
    await gw.close();
    await dropStore(store);
  });

  test('allowed request passes; denials are 403 with a generic message', async () => {
    assert.equal((await chat(gw.url, free.key, { max_tokens: 50, tools: [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object' } } }] })).status, 200);
    for (const [extra, model] of [
      [{}, 'demo-vulnerable'],
      [{ max_tokens: 5000 }, 'demo'],
      [{ tools: [{ type: 'function', function: { name: 'run_shell', parameters: { type: 'object' } } }] }, 'demo'],
    ] as const) {
      const r = await chat(gw.url, free.key, extra, model);
      assert.equal(r.status, 403, JSON.stringify(extra));
      assert.equal(r.body.error.code, 'permission_denied');
      assert.doesNotMatch(r.body.error.message, /tier|tool|max|model_not|boundary/i, 'no reason leaks to the client');
    }
    const emb = await fetch(`${gw.url}/v1/embeddings`, { method: 'POST', headers: { authorization: `Bearer ${free.key}`, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'demo', input: 'x' }) });
    assert.equal(emb.status, 403);
  });

  test('/v1/models lists only the models the caller may use', async () => {
    const list = async (key: string) => (await (await fetch(`${gw.url}/v1/models`, { headers: { authorization: `Bearer ${key}` } })).json()) as { data: Array<{ id: string }> };
    assert.deepEqual((await list(free.key)).data.map((m) => m.id), ['demo']);
    const pro = (await adminApi(gw.url, owner, 'POST', '/admin/v1/keys', { tenant: 'acme', name: 'pro', tier: 'pro' })).body;
    assert.ok((await list(pro.key)).data.some((m) => m.id === 'demo-vulnerable'));
    const noList = (await adminApi(gw.url, owner, 'POST', '/admin/v1/keys', { tenant: 'acme', name: 'nolist', scopes: { operations: ['chat'] } })).body;
    assert.equal((await fetch(`${gw.url}/v1/models`, { headers: { authorization: `Bearer ${noList.key}` } })).status, 403);
  });

  test('tenant scopes narrow every key of the tenant; admin policy check explains why', async () => {
    const k = (await adminApi(gw.url, owner, 'POST', '/admin/v1/keys', { tenant: 'eu-corp', name: 'svc', tier: 'pro' })).body;
    assert.equal((await chat(gw.url, k.key, {}, 'demo-vulnerable')).status, 200);
    await adminApi(gw.url, owner, 'PATCH', '/admin/v1/tenants/eu-corp', { scopes: { dataBoundaries: ['internal'] } });
    assert.equal((await chat(gw.url, k.key, {}, 'demo-vulnerable')).status, 403);
    assert.equal((await chat(gw.url, k.key, {}, 'demo')).status, 200);
    const why = await adminApi(gw.url, owner, 'POST', '/admin/v1/policy/check', { keyId: k.id, operation: 'chat', model: 'demo-vulnerable' });
    assert.equal(why.status, 200);
    assert.equal(why.body.allowed, false);
    assert.equal(why.body.decision.reason, 'data_boundary');
    assert.equal(why.body.decision.layer, 'tenant');
    assert.match(why.body.explanation, /denied by tenant/);
    const bad = await adminApi(gw.url, owner, 'POST', '/admin/v1/keys', { tenant: 'eu-corp', name: 'x', tier: 'platinum' });
    assert.equal(bad.status, 400);
    const badScopes = await adminApi(gw.url, owner, 'POST', '/admin/v1/keys', { tenant: 'eu-corp', name: 'x', scopes: { operations: ['launch_missiles'] } });
    assert.equal(badScopes.status, 400);
    assert.match(badScopes.body.error.message, /scopes\.operations\.0/);
  });
});
