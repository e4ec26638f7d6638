/**
 * Admin API input that the database cannot take, on SQLite and on PostgreSQL alike: event
 * cursors that are no event id, instants past a JavaScript Date's range, NUL characters in any
 * string (path parameter, query, body, nested, object key). Each is a 400 naming the parameter,
 * the same on both stores, never a 500 and never a database error text; nothing is stored.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'undici';
import { toAdminError } from '../../src/server/admin/routes.js';
import { GatewayError } from '../../src/errors.js';
import { adminKey, dropStore, newStore, pgSkipReason, startInstance } from './util.js';

interface Reply {
  status: number;
  json: any;
  headers: Record<string, string | string[] | undefined>;
}

async function call(base: string, key: string, method: string, path: string, body?: unknown): Promise<Reply> {
  const res = await request(`${base}${path}`, {
    method: method as 'GET',
    headers: { authorization: `Bearer ${key}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.body.text();
  let json: any = null;
  try {
    json = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  return { status: res.statusCode, json, headers: res.headers };
}

const DB_TEXT = /byte sequence|bigint|syntax|encoding|out of range|SQLITE|relation|column/i;

function assert400(r: Reply, param: string, label: string): void {
  assert.equal(r.status, 400, `${label}: ${JSON.stringify(r.json)}`);
  assert.equal(r.json?.error?.code, 'invalid_request', label);
  assert.equal(r.json?.error?.param, param, `${label}: param ${JSON.stringify(r.json)}`);
  assert.ok(!DB_TEXT.test(r.json.error.message), `${label}: database text reached the client: ${r.json.error.message}`);
}

for (const kind of ['sqlite', 'postgres'] as const) {
  test(`admin API refuses input the database cannot take, with a 400 naming the parameter (${kind})`, async (t) => {
    if (kind === 'postgres') {
      const skip = await pgSkipReason();
      if (skip) return t.skip(skip);
    }
    const store = newStore(kind, 'adminput');
    const inst = await startInstance(store);
    try {
      const owner = await adminKey(inst.gw, 'owner');
      const A = (method: string, path: string, body?: unknown) => call(inst.url, owner, method, path, body);
      const created = await A('POST', '/admin/v1/keys', { tenant: 'default', name: 'k' });
      assert.equal(created.status, 201, JSON.stringify(created.json));
      const keyId = created.json.id as string;

      // Event cursors: decimal digits within 2^53, or a 400 (SQLite used to answer an empty page).
      for (const cursor of ['abc', '99999999999999999999', '1e3', '-1', '0x10', ' 5', 'NaN', '9007199254740993']) {
        assert400(await A('GET', `/admin/v1/events?cursor=${encodeURIComponent(cursor)}`), 'cursor', `events?cursor=${cursor}`);
      }
      // A real cursor still pages.
      const first = await A('GET', '/admin/v1/events?limit=1');
      assert.equal(first.status, 200);
      assert.match(String(first.json.nextCursor), /^\d+$/);
      const next = await A('GET', `/admin/v1/events?limit=1&cursor=${first.json.nextCursor}`);
      assert.equal(next.status, 200, JSON.stringify(next.json));
      assert.ok(next.json.data[0].id < first.json.data[0].id);

      // Instants: at most a JavaScript Date's range (8.64e15 ms).
      assert400(await A('POST', '/admin/v1/keys', { tenant: 'default', name: 'k', expiresAt: 9223372036854775807 }), 'expiresAt', 'keys expiresAt 2^63');
      assert400(await A('POST', '/admin/v1/keys', { tenant: 'default', name: 'k', expiresAt: 8.64e15 + 1 }), 'expiresAt', 'keys expiresAt 8.64e15+1');
      assert400(await A('POST', `/admin/v1/keys/${keyId}/expire`, { at: 1e300 }), 'at', 'expire at 1e300');
      assert400(await A('POST', '/admin/v1/admin-keys', { name: 'x', role: 'auditor', expiresAt: 1e19 }), 'expiresAt', 'admin-keys expiresAt 1e19');
      const farthest = await A('POST', '/admin/v1/keys', { tenant: 'default', name: 'far', expiresAt: 8.64e15 });
      assert.equal(farthest.status, 201, JSON.stringify(farthest.json));
      assert.equal(farthest.json.expiresAt, 8.64e15);

      // NUL anywhere: path parameter, query, body, nested, object key.
      const nul: Array<[string, string, unknown, string]> = [
        ['GET', '/admin/v1/tenants/a%00b', undefined, 'tenant'],
        ['PATCH', '/admin/v1/tenants/a%00b', { status: 'active' }, 'tenant'],
        ['POST', '/admin/v1/tenants/a%00b/revoke-keys', {}, 'tenant'],
        ['GET', '/admin/v1/keys/k%00', undefined, 'id'],
        ['POST', '/admin/v1/keys/k%00/revoke', {}, 'id'],
        ['POST', '/admin/v1/admin-keys/x%00/revoke', {}, 'id'],
        ['GET', '/admin/v1/tenants?cursor=a%00', undefined, 'cursor'],
        ['GET', '/admin/v1/keys?cursor=a%00', undefined, 'cursor'],
        ['GET', '/admin/v1/keys?tenant=a%00', undefined, 'tenant'],
        ['GET', '/admin/v1/events?cursor=1%00', undefined, 'cursor'],
        ['GET', '/admin/v1/events?action=a%00', undefined, 'action'],
        ['GET', '/admin/v1/events?target=a%00', undefined, 'target'],
        ['POST', '/admin/v1/tenants', { name: 'a\u0000b' }, 'name'],
        ['POST', '/admin/v1/keys', { tenant: 'new\u0000tenant', name: 'k' }, 'tenant'],
        ['POST', '/admin/v1/keys', { tenant: 'default', name: 'k', owner: 'o\u0000' }, 'owner'],
        ['POST', '/admin/v1/keys', { tenant: 'default', name: 'k', scopes: { models: { allow: ['gpt-*', 'x\u0000'] } } }, 'scopes.models.allow.1'],
        ['PATCH', `/admin/v1/keys/${keyId}`, { name: '\u0000' }, 'name'],
        ['POST', `/admin/v1/keys/${keyId}/revoke`, { reason: 'r\u0000' }, 'reason'],
        ['POST', '/admin/v1/policy/check', { keyId: `${keyId}\u0000`, operation: 'chat' }, 'keyId'],
        ['POST', '/admin/v1/admin-keys', { name: 'n\u0000', role: 'auditor' }, 'name'],
        ['POST', '/admin/v1/tenants', { name: 't', 'x\u0000': 1 }, 'x\\u0000'],
      ];
      for (const [m, p, b, param] of nul) assert400(await A(m, p, b), param, `${m} ${p} ${JSON.stringify(b) ?? ''}`);

      // Nothing was stored or changed by the refused requests.
      const tenants = await A('GET', '/admin/v1/tenants');
      assert.deepEqual(
        tenants.json.data.map((x: { name: string }) => x.name),
        ['default'],
      );
      const k = await A('GET', `/admin/v1/keys/${keyId}`);
      assert.equal(k.json.status, 'active');
      assert.equal(k.json.name, 'k');

      // The lifecycle's own input errors still reach the client (matched exactly, not by a word in them).
      const op = await A('POST', '/admin/v1/admin-keys', { name: 'op', role: 'operator' });
      assert.equal(op.status, 400);
      assert.match(op.json.error.message, /^an operator admin key needs at least one tenant/);
    } finally {
      await inst.close();
      await dropStore(store);
    }
  });
}

test('toAdminError passes the lifecycle\'s own messages through and nothing else', () => {
  const own = toAdminError(new Error('only operator admin keys are limited to tenants'));
  assert.ok(own instanceof GatewayError && own.status === 400);
  // Database errors (any text that merely mentions "invalid") are left to become a logged 500.
  for (const msg of ['invalid byte sequence for encoding "UTF8": 0x00', 'invalid input syntax for type bigint: "NaN"', 'value "99999999999999999999" is out of range for type bigint', 'tenant must be 1-200 characters; and more']) {
    const e = new Error(msg);
    assert.equal(toAdminError(e), e, msg);
  }
  class DbError extends Error {}
  const sub = new DbError('tenant must be 1-200 characters');
  assert.equal(toAdminError(sub), sub, 'only plain Errors from keys.ts / admin-keys.ts');
});
