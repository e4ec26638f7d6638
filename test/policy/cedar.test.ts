/** Cedar policies evaluated in-process after the built-in checks (real policies, real wasm). */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createCedarEvaluator } from '../../src/policy/cedar.js';
import { createPolicyEngine } from '../../src/policy/engine.js';
import { policyConfigSchema } from '../../src/policy/config.js';
import type { Principal } from '../../src/identity/types.js';
import { adminApi, adminKey, chat, dropStore, newStore, startInstance, type Instance, type StoreSpec } from '../identity/util.js';

const POLICIES = `
// Everyone may chat with the demo model.
@id("demo-chat")
permit (principal, action == Portcullis::Action::"chat", resource == Portcullis::Model::"demo");

// Tenant "research" may use any model, but never offer the shell tool.
@id("research-all")
permit (principal in Portcullis::Tenant::"research", action, resource);
@id("no-shell")
forbid (principal, action, resource) when { context.tools.contains("run_shell") };

// Nobody on the free tier asks for more than 256 output tokens.
@id("free-cap")
forbid (principal, action, resource) when { principal.tier == "free" && context.maxOutputTokens > 256 };
`;

const p = (o: Partial<Principal> = {}): Principal => ({ tenantId: 't1', tenantName: 'acme', keyId: 'k1', subject: 'svc', scopes: null, authMethod: 'api_key', ...o });

test('Cedar permit/forbid with principal, action, resource and context', () => {
  const engine = createPolicyEngine({ tiers: { free: {} }, policy: policyConfigSchema.parse({}) }, createCedarEvaluator(POLICIES));
  assert.equal(engine.authorize(p(), { operation: 'chat', model: 'demo' }).allow, true);
  const d = engine.authorize(p(), { operation: 'chat', model: 'demo-vulnerable' });
  assert.equal(d.allow, false);
  assert.equal(!d.allow && d.reason, 'cedar_denied');
  assert.equal(!d.allow && d.layer, 'cedar');
  assert.equal(engine.authorize(p({ tenantName: 'research' }), { operation: 'embeddings', model: 'any' }).allow, true);
  const shell = engine.authorize(p({ tenantName: 'research' }), { operation: 'chat', model: 'demo', tools: ['run_shell'] });
  assert.equal(shell.allow, false);
  assert.match(!shell.allow ? shell.detail : '', /no-shell/);
  assert.equal(engine.authorize(p({ tier: 'free' }), { operation: 'chat', model: 'demo', maxOutputTokens: 300 }).allow, false);
  assert.equal(engine.authorize(p({ tier: 'free' }), { operation: 'chat', model: 'demo', maxOutputTokens: 200 }).allow, true);
  // Built-in scopes still apply first: Cedar cannot widen them.
  assert.equal(engine.authorize(p({ tenantName: 'research', scopes: { operations: ['chat'] } }), { operation: 'embeddings', model: 'x' }).allow, false);
});

test('invalid Cedar text is rejected at start-up with Cedar\'s message', () => {
  assert.throws(() => createCedarEvaluator('permit (principal, action, resource) when { nope( };'), /invalid Cedar policies/);
});

let store: StoreSpec;
let gw: Instance;
before(async () => {
  store = newStore('sqlite');
  const file = join(store.dataDir, 'policies.cedar');
  writeFileSync(file, POLICIES);
  gw = await startInstance(store, { tiers: { free: {} }, policy: { cedar: { policiesFile: file } } });
});
after(async () => {
  await gw.close();
  await dropStore(store);
});

test('gateway with policy.cedar: allowed and forbidden requests over HTTP', async () => {
  const owner = await adminKey(gw.gw, 'owner');
  const acme = (await adminApi(gw.url, owner, 'POST', '/admin/v1/keys', { tenant: 'acme', name: 'svc' })).body;
  const research = (await adminApi(gw.url, owner, 'POST', '/admin/v1/keys', { tenant: 'research', name: 'svc' })).body;
  assert.equal((await chat(gw.url, acme.key)).status, 200);
  assert.equal((await chat(gw.url, acme.key, {}, 'demo-vulnerable')).status, 403);
  assert.equal((await chat(gw.url, research.key, {}, 'demo-vulnerable')).status, 200);
  const shell = await chat(gw.url, research.key, { tools: [{ type: 'function', function: { name: 'run_shell', parameters: { type: 'object' } } }] });
  assert.equal(shell.status, 403);
  const pol = await adminApi(gw.url, owner, 'GET', '/admin/v1/policy');
  assert.equal(pol.body.cedar, true);
});
