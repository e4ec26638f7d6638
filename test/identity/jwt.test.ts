/**
 * JWT / OIDC: a local JWKS server whose keys rotate; valid, expired, wrong aud/iss, nbf,
 * alg none, HS256-with-the-RSA-public-key confusion, unknown kid → refresh (rate-limited),
 * removed kid → rejected after the cache age; claim mapping; gateway wiring (API keys still work).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHmac } from 'node:crypto';
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, type JWK, type CryptoKey } from 'jose';
import { openDb, type Db } from '../../src/store/db.js';
import { ensureTenant } from '../../src/identity/keys.js';
import { claimAt, createJwtVerifier, isJwtShaped, scopesFromClaim, type JwtConfigInput } from '../../src/identity/jwt.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';

const ISS = 'https://idp.test.example';
const AUD = 'portcullis';

interface Signer {
  kid: string;
  alg: string;
  priv: CryptoKey;
  jwk: JWK;
  pem: string;
}

async function signer(kid: string, alg: 'RS256' | 'ES256' | 'EdDSA'): Promise<Signer> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const jwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
  return { kid, alg, priv: privateKey, jwk, pem: await exportSPKI(publicKey) };
}

/** Signs a token; `claims` override the defaults (set a claim to undefined to drop it). */
async function token(s: Signer, claims: Record<string, unknown> = {}, opts: { kid?: string | null } = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const body: Record<string, unknown> = { iss: ISS, aud: AUD, sub: 'user-1', org_id: 'acme', scope: 'openid chat models:list', iat: now, exp: now + 300, ...claims };
  for (const k of Object.keys(body)) if (body[k] === undefined) delete body[k];
  const header: Record<string, unknown> = { alg: s.alg, typ: 'JWT' };
  if (opts.kid !== null) header.kid = opts.kid ?? s.kid;
  return new SignJWT(body).setProtectedHeader(header as { alg: string }).sign(s.priv);
}

const b64u = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

/** A token signed with HMAC-SHA256 over an arbitrary secret (for confusion tests). */
function hsToken(secret: string | Buffer, claims: Record<string, unknown> = {}, kid?: string): string {
  const now = Math.floor(Date.now() / 1000);
  const h = b64u({ alg: 'HS256', typ: 'JWT', ...(kid ? { kid } : {}) });
  const p = b64u({ iss: ISS, aud: AUD, sub: 'user-1', org_id: 'acme', scope: 'chat', iat: now, exp: now + 300, ...claims });
  const sig = createHmac('sha256', secret).update(`${h}.${p}`).digest('base64url');
  return `${h}.${p}.${sig}`;
}

/** A JWKS server whose key list the test changes; counts fetches. */
class Jwks {
  keys: JWK[] = [];
  fetches = 0;
  server!: Server;
  url = '';
  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      this.fetches++;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ keys: this.keys }));
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', () => r()));
    this.url = `http://127.0.0.1:${(this.server.address() as { port: number }).port}/.well-known/jwks.json`;
  }
  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((r) => this.server.close(() => r()));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('JWT verifier', () => {
  let dir: string;
  let db: Db;
  let jwks: Jwks;
  let rs1: Signer, rs2: Signer, es: Signer, ed: Signer;
  const base = (): JwtConfigInput => ({ issuer: ISS, audience: AUD, jwksUrl: jwks.url, jwks: { cacheMaxAgeMs: 600_000, cooldownMs: 0 }, claims: { tier: 'plan' } });

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'pcl-jwt-'));
    db = await openDb({ dataDir: dir });
    await ensureTenant(db.kysely, 'acme');
    jwks = new Jwks();
    await jwks.start();
    [rs1, rs2, es, ed] = await Promise.all([signer('rs1', 'RS256'), signer('rs2', 'RS256'), signer('es1', 'ES256'), signer('ed1', 'EdDSA')]);
    jwks.keys = [rs1.jwk, es.jwk, ed.jwk];
  });
  after(async () => {
    await jwks.close();
    await db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('valid RS256, ES256 and EdDSA tokens map claims to a principal', async () => {
    const v = createJwtVerifier(base(), { db: db.kysely });
    for (const s of [rs1, es, ed]) {
      const r = await v.verify(await token(s, { plan: 'gold' }));
      assert.ok(r.ok, `${s.alg}: ${JSON.stringify(r)}`);
      assert.equal(r.principal.tenantName, 'acme');
      assert.equal(r.principal.authMethod, 'jwt');
      assert.equal(r.principal.user, 'user-1');
      assert.equal(r.principal.tier, 'gold');
      assert.equal(r.principal.keyId, undefined);
      assert.deepEqual(r.principal.scopes, { operations: ['chat', 'models:list'] });
    }
  });

  test('expired tokens fail; within the clock skew they pass', async () => {
    const v = createJwtVerifier({ ...base(), clockSkewSeconds: 30 }, { db: db.kysely });
    const now = Math.floor(Date.now() / 1000);
    const r1 = await v.verify(await token(rs1, { exp: now - 120 }));
    assert.deepEqual([r1.ok, !r1.ok && r1.reason], [false, 'expired']);
    const r2 = await v.verify(await token(rs1, { exp: now - 10 }));
    assert.ok(r2.ok);
    const r3 = await v.verify(await token(rs1, { exp: undefined }));
    assert.equal(r3.ok, false, 'exp is required');
  });

  test('wrong audience or issuer, and nbf in the future, are refused', async () => {
    const v = createJwtVerifier(base(), { db: db.kysely });
    const now = Math.floor(Date.now() / 1000);
    const aud = await v.verify(await token(rs1, { aud: 'someone-else' }));
    assert.equal(!aud.ok && aud.reason, 'bad_audience');
    const iss = await v.verify(await token(rs1, { iss: 'https://evil.example' }));
    assert.equal(!iss.ok && iss.reason, 'bad_issuer');
    const nbf = await v.verify(await token(rs1, { nbf: now + 600 }));
    assert.equal(!nbf.ok && nbf.reason, 'not_yet_valid');
    const nbfSkew = await v.verify(await token(rs1, { nbf: now + 5 }));
    assert.ok(nbfSkew.ok, 'nbf within the skew passes');
  });

  test('alg none is refused, with or without a signature part', async () => {
    const v = createJwtVerifier(base(), { db: db.kysely });
    const now = Math.floor(Date.now() / 1000);
    const p = b64u({ iss: ISS, aud: AUD, sub: 'x', org_id: 'acme', exp: now + 300 });
    for (const alg of ['none', 'None', 'NONE']) {
      const t = `${b64u({ alg, typ: 'JWT' })}.${p}.`;
      assert.ok(isJwtShaped(t));
      const r = await v.verify(t);
      assert.equal(r.ok, false, alg);
    }
  });

  test('algorithm confusion: HS256 signed with the RSA public key is refused', async () => {
    const v = createJwtVerifier(base(), { db: db.kysely });
    for (const secret of [rs1.pem, JSON.stringify(rs1.jwk), Buffer.from(rs1.jwk.n!, 'base64url')]) {
      const r = await v.verify(hsToken(secret, {}, 'rs1'));
      assert.equal(!r.ok && r.reason, 'alg_not_allowed');
    }
    // Even with HS256 enabled, the HMAC key is only the configured secret, never a public key.
    const env = { JWT_SECRET: 's'.repeat(40) };
    const hv = createJwtVerifier({ ...base(), algorithms: ['RS256', 'HS256'], hs256: { secretEnv: 'JWT_SECRET' } }, { db: db.kysely, env });
    const bad = await hv.verify(hsToken(rs1.pem, {}, 'rs1'));
    assert.equal(!bad.ok && bad.reason, 'bad_signature');
    const good = await hv.verify(hsToken(env.JWT_SECRET));
    assert.ok(good.ok, 'HS256 with the configured secret');
    assert.ok((await hv.verify(await token(rs1))).ok, 'RS256 still works next to HS256');
    // An algorithm outside the list is refused even with a valid signature.
    const esOnlyRs = createJwtVerifier({ ...base(), algorithms: ['RS256'] }, { db: db.kysely });
    const r = await esOnlyRs.verify(await token(es));
    assert.equal(!r.ok && r.reason, 'alg_not_allowed');
  });

  test('config refuses HS256 without a secret and a secret without HS256', () => {
    assert.throws(() => createJwtVerifier({ ...base(), algorithms: ['HS256'] } as JwtConfigInput, { db: db.kysely }), /HS256 needs/);
    assert.throws(() => createJwtVerifier({ ...base(), hs256: { secretEnv: 'X' } }, { db: db.kysely, env: { X: 'x'.repeat(40) } }), /HS256 is not in algorithms/);
    assert.throws(() => createJwtVerifier({ ...base(), algorithms: ['RS256', 'HS256'], hs256: { secretEnv: 'X' } }, { db: db.kysely, env: { X: 'short' } }), /at least 32 bytes/);
  });

  test('unknown kid refreshes the JWKS (rate-limited); a removed kid fails once the cache ages out', async () => {
    jwks.keys = [rs1.jwk];
    const v = createJwtVerifier({ ...base(), jwks: { cacheMaxAgeMs: 400, cooldownMs: 300 } }, { db: db.kysely });
    const f0 = jwks.fetches;
    assert.ok((await v.verify(await token(rs1))).ok);
    assert.equal(jwks.fetches, f0 + 1);
    // Rotation: the IdP publishes rs2 next to rs1.
    jwks.keys = [rs1.jwk, rs2.jwk];
    await sleep(320); // past the cooldown
    const r2 = await v.verify(await token(rs2));
    assert.ok(r2.ok, `new kid picked up: ${JSON.stringify(r2)}`);
    assert.equal(jwks.fetches, f0 + 2);
    // Unknown kids inside the cooldown do not hammer the IdP.
    const before = jwks.fetches;
    for (let i = 0; i < 5; i++) {
      const r = await v.verify(await token(rs2, {}, { kid: `nope-${i}` }));
      assert.equal(!r.ok && r.reason, 'unknown_kid');
    }
    assert.ok(jwks.fetches - before <= 1, `refreshes inside the cooldown: ${jwks.fetches - before}`);
    // The IdP removes rs1: still trusted until the cached set ages out, then refused.
    jwks.keys = [rs2.jwk];
    await sleep(450);
    const old = await v.verify(await token(rs1));
    assert.equal(!old.ok && old.reason, 'unknown_kid');
    assert.ok((await v.verify(await token(rs2))).ok);
  });

  test('static PEM and JWK keys, without a JWKS URL', async () => {
    const v = createJwtVerifier({ issuer: ISS, audience: [AUD, 'other'], publicKeys: [{ pem: rs1.pem, kid: 'rs1' }, { jwk: es.jwk as Record<string, unknown> }] }, { db: db.kysely });
    assert.ok((await v.verify(await token(rs1))).ok);
    assert.ok((await v.verify(await token(es))).ok);
    const r = await v.verify(await token(rs2));
    assert.equal(r.ok, false);
    assert.throws(() => createJwtVerifier({ issuer: ISS, audience: AUD, publicKeys: [{ jwk: { kty: 'oct', k: 'AAAA' } }] }, { db: db.kysely }), /public key/);
  });

  test('tenants: unknown tenant refused by default, created when configured; missing claim refused', async () => {
    jwks.keys = [rs1.jwk];
    const strict = createJwtVerifier(base(), { db: db.kysely });
    const r1 = await strict.verify(await token(rs1, { org_id: 'newco' }));
    assert.equal(!r1.ok && r1.reason, 'unknown_tenant');
    const r2 = await strict.verify(await token(rs1, { org_id: undefined }));
    assert.equal(!r2.ok && r2.reason, 'no_tenant');
    const auto = createJwtVerifier({ ...base(), tenants: 'create', claims: { tenant: 'claims.ext.org' } }, { db: db.kysely });
    const r3 = await auto.verify(await token(rs1, { ext: { org: 'newco' } }));
    assert.ok(r3.ok && r3.principal.tenantName === 'newco');
    assert.ok(await db.kysely.selectFrom('tenants').select('id').where('name', '=', 'newco').executeTakeFirst());
  });

  test('claim helpers', () => {
    assert.equal(claimAt({ org_id: 'a' }, 'claims.org_id'), 'a');
    assert.equal(claimAt({ 'https://x.example/org': 'b' }, 'https://x.example/org'), 'b');
    assert.equal(claimAt({ a: { b: { c: 1 } } }, 'a.b.c'), 1);
    assert.equal(claimAt({ a: 1 }, '__proto__.x'), undefined);
    assert.deepEqual(scopesFromClaim('openid chat  embeddings model:gpt-4o* admin:* profile'), { operations: ['chat', 'embeddings'], models: { allow: ['gpt-4o*'] } });
    assert.deepEqual(scopesFromClaim(['files', 'batches', 7]), { operations: ['files', 'batches'] });
    assert.deepEqual(scopesFromClaim('openid'), { operations: [] });
    assert.equal(scopesFromClaim(undefined), null);
    assert.equal(isJwtShaped('pcl_abcdefabcdef_' + 'x'.repeat(43)), false);
    assert.equal(isJwtShaped('a.b.c'), true);
  });
});

describe('JWT through the gateway', () => {
  let jwks: Jwks;
  let g: TestGateway;
  let rs: Signer;
  before(async () => {
    jwks = new Jwks();
    await jwks.start();
    rs = await signer('gw1', 'RS256');
    jwks.keys = [rs.jwk];
    g = await startGateway({ auth: { jwt: { issuer: ISS, audience: AUD, jwksUrl: jwks.url, tenants: 'create' } } });
  });
  after(async () => {
    await g.close();
    await jwks.close();
  });

  const chat = (cred: string) =>
    fetch(`${g.url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${cred}`, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'demo', messages: [{ role: 'user', content: 'hi' }] }) });

  test('a valid token is served, scopes from the token apply, bad tokens get a generic 401', async () => {
    const ok = await chat(await token(rs));
    assert.equal(ok.status, 200);
    const noChat = await chat(await token(rs, { scope: 'embeddings' }));
    assert.equal(noChat.status, 403);
    const expired = await chat(await token(rs, { exp: Math.floor(Date.now() / 1000) - 3600 }));
    assert.equal(expired.status, 401);
    const body = (await expired.json()) as { error: { message: string; code: string } };
    assert.equal(body.error.code, 'invalid_api_key');
    assert.doesNotMatch(body.error.message, /exp|expired|jwt/i);
    const tenant = await g.gw.db.kysely.selectFrom('tenants').select('id').where('name', '=', 'acme').executeTakeFirst();
    assert.ok(tenant, 'tenant auto-created');
    assert.ok(g.gw.identity.failureCounts().byReason.bad_token >= 1);
  });

  test('API keys keep working next to JWTs', async () => {
    assert.equal((await chat(g.key)).status, 200);
    assert.equal((await chat(g.key.slice(0, -2) + 'zz')).status, 401);
  });
});
