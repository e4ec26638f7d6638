/**
 * mTLS identity: the gateway terminates TLS; a CA, server and client certificates are generated
 * at test time with the openssl CLI (nothing committed). A valid SPIFFE certificate maps to a
 * tenant and scopes; no certificate, a certificate from another CA, or an unmapped SPIFFE ID
 * answer 401 when client certificates are required.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { sanUris } from '../../src/identity/mtls.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';

const SPIFFE = 'spiffe://example.org/ns/payments/sa/checkout';

function opensslMissing(): string | null {
  try {
    execFileSync('openssl', ['version'], { stdio: 'pipe' });
    return null;
  } catch (e) {
    if (process.env.CI === 'true') throw new Error(`openssl is required in CI: ${(e as Error).message}`);
    const reason = 'openssl CLI not found; skipping mTLS tests';
    process.stdout.write(`# ${reason}\n`);
    return reason;
  }
}

/** Generates CAs and leaf certificates in `dir` (P-256 keys, valid one day). */
function makePki(dir: string): void {
  const ossl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  const ca = (name: string) => ossl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.pem`, '-days', '1', '-subj', `/CN=${name}`);
  const leaf = (name: string, caName: string, ext: string) => {
    writeFileSync(join(dir, `${name}.ext`), ext + '\n');
    ossl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`);
    ossl('x509', '-req', '-in', `${name}.csr`, '-CA', `${caName}.pem`, '-CAkey', `${caName}.key`, '-CAcreateserial', '-out', `${name}.pem`, '-days', '1', '-extfile', `${name}.ext`);
  };
  ca('ca');
  ca('other-ca');
  leaf('server', 'ca', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth');
  leaf('client', 'ca', `subjectAltName=URI:${SPIFFE}\nextendedKeyUsage=clientAuth`);
  leaf('unmapped', 'ca', 'subjectAltName=URI:spiffe://example.org/ns/marketing/sa/web\nextendedKeyUsage=clientAuth');
  leaf('rogue', 'other-ca', `subjectAltName=URI:${SPIFFE}\nextendedKeyUsage=clientAuth`);
}

const skip = opensslMissing();

describe('mTLS identity', { skip: skip ?? false }, () => {
  let dir: string;
  let required: TestGateway;
  let optional: TestGateway;
  const agents: Agent[] = [];

  const agent = (client?: string) => {
    const a = new Agent({ connect: { ca: readFileSync(join(dir, 'ca.pem')), ...(client ? { cert: readFileSync(join(dir, `${client}.pem`)), key: readFileSync(join(dir, `${client}.key`)) } : {}) } });
    agents.push(a);
    return a;
  };
  const call = async (g: TestGateway, client: string | undefined, path: string, opts: { key?: string; body?: unknown } = {}) => {
    const res = await request(`${g.url}${path}`, {
      method: opts.body ? 'POST' : 'GET',
      dispatcher: agent(client),
      headers: { ...(opts.body ? { 'content-type': 'application/json' } : {}), ...(opts.key ? { authorization: `Bearer ${opts.key}` } : {}) },
      ...(opts.body ? { body: JSON.stringify(opts.body) } : {}),
    });
    const text = await res.body.text();
    return { status: res.statusCode, text };
  };
  const chatBody = { model: 'demo', messages: [{ role: 'user', content: 'hello' }] };
  const embBody = { model: 'demo', input: 'hello' };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'pcl-mtls-'));
    makePki(dir);
    const tls = (requireClientCert: boolean) => ({ cert: join(dir, 'server.pem'), key: join(dir, 'server.key'), ca: join(dir, 'ca.pem'), requestClientCert: true, requireClientCert });
    const auth = { mtls: { identities: [{ match: 'spiffe://example.org/ns/payments/*', tenant: 'payments', scopes: { operations: ['chat', 'files'] } }], tenants: 'create' } };
    required = await startGateway({ server: { tls: tls(true) }, auth });
    optional = await startGateway({ server: { tls: tls(false) }, auth });
  });
  after(async () => {
    await Promise.all(agents.map((a) => a.close()));
    await required?.close();
    await optional?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('the gateway serves HTTPS', () => {
    assert.match(required.url, /^https:\/\/127\.0\.0\.1:\d+$/);
  });

  test('a valid SPIFFE certificate is the principal: tenant and scopes from the mapping', async () => {
    const ok = await call(required, 'client', '/v1/chat/completions', { body: chatBody });
    assert.equal(ok.status, 200, ok.text);
    const forbidden = await call(required, 'client', '/v1/embeddings', { body: embBody });
    assert.equal(forbidden.status, 403, 'embeddings is not in the mapped scopes');
    const t = await required.gw.db.kysely.selectFrom('tenants').select(['id', 'name']).where('name', '=', 'payments').executeTakeFirst();
    assert.ok(t, 'tenant created from the mapping');
    // Object routes take the certificate identity too (the new tenant owns nothing yet).
    const up = await call(required, 'client', '/v1/files', {});
    assert.equal(up.status, 200);
    assert.deepEqual(JSON.parse(up.text).data, []);
  });

  test('required: no certificate → 401, also with a valid API key; health stays reachable', async () => {
    const none = await call(required, undefined, '/v1/chat/completions', { body: chatBody });
    assert.equal(none.status, 401);
    assert.equal(JSON.parse(none.text).error.code, 'invalid_api_key');
    const keyOnly = await call(required, undefined, '/v1/chat/completions', { body: chatBody, key: required.key });
    assert.equal(keyOnly.status, 401);
    assert.equal((await call(required, undefined, '/healthz')).status, 200);
  });

  test('a certificate from another CA is rejected, even with a mapped SPIFFE ID', async () => {
    const r = await call(required, 'rogue', '/v1/chat/completions', { body: chatBody });
    assert.equal(r.status, 401);
  });

  test('a trusted certificate with an unmapped SPIFFE ID is rejected', async () => {
    const r = await call(required, 'unmapped', '/v1/chat/completions', { body: chatBody });
    assert.equal(r.status, 401);
    assert.ok(required.gw.identity.failureCounts().byReason.client_cert >= 3);
  });

  test('with a certificate, an API key still identifies the caller (its tenant and scopes)', async () => {
    const r = await call(required, 'client', '/v1/embeddings', { body: embBody, key: required.key });
    assert.equal(r.status, 200, 'the key of tenant default has no operation limits');
  });

  test('optional client certificates: API keys work without one; a certificate alone identifies', async () => {
    assert.equal((await call(optional, undefined, '/v1/chat/completions', { body: chatBody, key: optional.key })).status, 200);
    assert.equal((await call(optional, undefined, '/v1/chat/completions', { body: chatBody })).status, 401);
    assert.equal((await call(optional, 'client', '/v1/chat/completions', { body: chatBody })).status, 200);
    assert.equal((await call(optional, 'rogue', '/v1/chat/completions', { body: chatBody })).status, 401);
  });

  test('config: mTLS identity needs TLS with client certificates requested', async () => {
    await assert.rejects(startGateway({ auth: { mtls: { identities: [{ match: SPIFFE, tenant: 'x' }] } } }), /requestClientCert/);
  });
});

test('SAN URI parsing', () => {
  assert.deepEqual(sanUris(`DNS:localhost, URI:${SPIFFE}, IP Address:127.0.0.1`), [SPIFFE]);
  assert.deepEqual(sanUris('URI:"spiffe://a/b,c", URI:spiffe://x/y'), ['spiffe://a/b,c', 'spiffe://x/y']);
  assert.deepEqual(sanUris(undefined), []);
  assert.deepEqual(sanUris('DNS:URI:evil'), []);
});
