/** Unit tests: failure buckets (injected clock), key states, admin key parsing, scopes parsing. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FailureBuckets } from '../../src/identity/auth-limiter.js';
import { keyState, parseApiKey, generateApiKey, hashSecret, verifySecret } from '../../src/identity/keys.js';
import { parseAdminKey } from '../../src/identity/admin-keys.js';
import { parseScopes } from '../../src/policy/scopes.js';

test('failure buckets: burst, then refill at perMinute', () => {
  let now = 0;
  const b = new FailureBuckets({ burst: 3, perMinute: 6 }, 100, () => now);
  for (let i = 0; i < 3; i++) {
    assert.equal(b.blockedFor('ip'), 0);
    b.fail('ip');
  }
  assert.equal(b.blockedFor('ip'), 10, 'one token every 10 s');
  now += 5_000;
  assert.equal(b.blockedFor('ip'), 5);
  now += 5_000;
  assert.equal(b.blockedFor('ip'), 0);
  assert.equal(b.blockedFor('other'), 0, 'buckets are per key');
  now += 3_600_000;
  for (let i = 0; i < 3; i++) b.fail('ip');
  assert.ok(b.blockedFor('ip') > 0, 'refill is capped at the burst');
});

test('key states: active, grace, rotated, revoked, expired', () => {
  const now = 1_000_000;
  assert.equal(keyState({ status: 'active', expiresAt: null, graceUntil: null }, now), 'active');
  assert.equal(keyState({ status: 'active', expiresAt: now, graceUntil: null }, now), 'expired');
  assert.equal(keyState({ status: 'rotated', expiresAt: null, graceUntil: now + 1 }, now), 'grace');
  assert.equal(keyState({ status: 'rotated', expiresAt: null, graceUntil: now }, now), 'rotated');
  assert.equal(keyState({ status: 'rotated', expiresAt: now - 1, graceUntil: now + 1 }, now), 'expired', 'expiry beats grace');
  assert.equal(keyState({ status: 'revoked', expiresAt: null, graceUntil: now + 1 }, now), 'revoked');
  assert.equal(keyState({ status: 'weird', expiresAt: null, graceUntil: null }, now), 'revoked', 'unknown states fail closed');
});

test('API and admin keys do not parse as each other; hashing is keyed', () => {
  const pepper = Buffer.alloc(32, 1);
  const api = generateApiKey(pepper);
  const adm = generateApiKey(pepper, 'pcla');
  assert.ok(parseApiKey(api.key));
  assert.equal(parseAdminKey(api.key), null);
  assert.ok(parseAdminKey(adm.key));
  assert.equal(parseApiKey(adm.key), null);
  const secret = parseApiKey(api.key)!.secret;
  assert.ok(verifySecret(pepper, secret, api.hash));
  assert.equal(verifySecret(Buffer.alloc(32, 2), secret, api.hash), false);
  assert.notEqual(hashSecret(pepper, secret), hashSecret(Buffer.alloc(32, 2), secret));
});

test('scopes: strict, with paths in errors', () => {
  assert.deepEqual(parseScopes({ operations: ['chat', 'admin:*', '*'] }).operations, ['chat', 'admin:*', '*']);
  assert.throws(() => parseScopes({ operations: ['fly'] }), /scopes\.operations\.0/);
  assert.throws(() => parseScopes({ model: {} }), /scopes: Unrecognized key/);
  assert.throws(() => parseScopes({ maxOutputTokens: 0 }), /scopes\.maxOutputTokens/);
});
