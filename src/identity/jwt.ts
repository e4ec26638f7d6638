/**
 * JWT / OIDC bearer tokens: verified with `jose` against a JWKS URL (cached, refreshed on an
 * unknown `kid` at most once per cooldown) and/or static public keys (PEM or JWK); HS256 only
 * when a shared secret is configured. `iss`, `aud`, `exp` (required) and `nbf` are checked with
 * a configurable clock skew. Claims map to tenant, user, scopes and tier by config.
 */
import { createPublicKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createLocalJWKSet, createRemoteJWKSet, errors as joseErrors, jwtVerify, type JWK, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import type { Kysely } from 'kysely';
import type { Database } from '../store/schema.js';
import { tenantLookup } from './keys.js';
import { isJwtShaped, jwtConfigSchema, type JwtConfig, type JwtConfigInput, type JwtFailure, type JwtVerifier } from './jwt-config.js';
import type { Principal } from './types.js';

export { JWT_ALGORITHMS, isJwtShaped, jwtConfigSchema, type JwtConfig, type JwtConfigInput, type JwtFailure, type JwtResult, type JwtVerifier } from './jwt-config.js';

/** Options of the verifier beyond its config. */
export interface JwtVerifierOptions {
  db: Kysely<Database>;
  env?: Record<string, string | undefined>;
  /** Clock (tests): epoch milliseconds. */
  now?: () => number;
}

/** Reads a claim by dotted path (`org_id`, `claims.org_id`, `ext.tenant`); an exact key wins. */
export function claimAt(payload: Record<string, unknown>, path: string): unknown {
  if (Object.prototype.hasOwnProperty.call(payload, path)) return payload[path];
  const p = path.startsWith('claims.') ? path.slice(7) : path;
  if (Object.prototype.hasOwnProperty.call(payload, p)) return payload[p];
  let cur: unknown = payload;
  for (const part of p.split('.')) {
    if (!cur || typeof cur !== 'object' || !Object.prototype.hasOwnProperty.call(cur, part)) return undefined;
    cur = (cur as Record<string, unknown>)[part];
  }
  return cur;
}

const OPERATION_TOKENS = new Set(['chat', 'completions', 'embeddings', 'responses', 'messages', 'models:list', 'files', 'batches', 'fine_tuning', 'vector_stores', 'moderations', '*']);

/**
 * Scopes from a scope claim (space-separated string or array): operation names and `*` become
 * `operations`, `model:<glob>` entries become `models.allow`; other entries (`openid`, `profile`…)
 * are ignored. Admin operations are never granted by a token. Absent claim → null (defaults apply).
 */
export function scopesFromClaim(value: unknown): { operations: string[]; models?: { allow: string[] } } | null {
  if (value === undefined || value === null) return null;
  const items = typeof value === 'string' ? value.split(/\s+/) : Array.isArray(value) ? value.filter((x): x is string => typeof x === 'string') : [];
  const ops: string[] = [];
  const models: string[] = [];
  for (const raw of items.slice(0, 200)) {
    const s = raw.trim();
    if (!s) continue;
    if (OPERATION_TOKENS.has(s)) ops.push(s);
    else if (s.startsWith('model:') && s.length > 6 && s.length <= 262) models.push(s.slice(6));
  }
  return { operations: [...new Set(ops)], ...(models.length ? { models: { allow: models } } : {}) };
}

function keyFromConfig(k: NonNullable<JwtConfig['publicKeys']>[number]): JWK {
  let jwk: JWK;
  if (k.jwk) {
    jwk = { ...(k.jwk as JWK) };
    if ('d' in jwk || 'k' in jwk) throw new Error('auth.jwt.publicKeys: a JWK must be a public key (no private or symmetric material)');
  } else {
    const pem = k.pem ?? readFileSync(k.file!, 'utf8');
    jwk = createPublicKey(pem).export({ format: 'jwk' }) as JWK;
  }
  if (k.kid) jwk.kid = k.kid;
  return jwk;
}

function readSecret(h: NonNullable<JwtConfig['hs256']>, env: Record<string, string | undefined>): Uint8Array {
  const v = h.secretEnv ? env[h.secretEnv] : readFileSync(h.secretFile!, 'utf8').trim();
  if (!v) throw new Error(`auth.jwt.hs256: the secret ${h.secretEnv ? `env variable ${h.secretEnv}` : 'file'} is empty or unset`);
  const b = Buffer.from(v, 'utf8');
  if (b.length < 32) throw new Error('auth.jwt.hs256: the secret must be at least 32 bytes');
  return new Uint8Array(b);
}

function failureOf(e: unknown): { reason: JwtFailure; detail: string } {
  const detail = String((e as Error)?.message ?? e).slice(0, 200);
  if (e instanceof joseErrors.JWTExpired) return { reason: 'expired', detail };
  if (e instanceof joseErrors.JWTClaimValidationFailed) {
    const c = e.claim;
    if (c === 'iss') return { reason: 'bad_issuer', detail };
    if (c === 'aud') return { reason: 'bad_audience', detail };
    if (c === 'nbf') return { reason: 'not_yet_valid', detail };
    return { reason: 'bad_claims', detail };
  }
  if (e instanceof joseErrors.JOSEAlgNotAllowed || e instanceof joseErrors.JOSENotSupported) return { reason: 'alg_not_allowed', detail };
  if (e instanceof joseErrors.JWSSignatureVerificationFailed) return { reason: 'bad_signature', detail };
  if (e instanceof joseErrors.JWKSNoMatchingKey || e instanceof joseErrors.JWKSMultipleMatchingKeys) return { reason: 'unknown_kid', detail };
  if (e instanceof joseErrors.JWKSTimeout || e instanceof joseErrors.JWKSInvalid || !(e instanceof joseErrors.JOSEError)) return { reason: 'jwks_unavailable', detail };
  return { reason: 'malformed', detail };
}

/** Creates a verifier; throws on invalid key material or a missing HS256 secret. */
export function createJwtVerifier(cfgIn: JwtConfig | JwtConfigInput, opts: JwtVerifierOptions): JwtVerifier {
  const cfg = jwtConfigSchema.parse(cfgIn);
  const env = opts.env ?? process.env;
  const now = opts.now ?? Date.now;
  const local = cfg.publicKeys?.length ? createLocalJWKSet({ keys: cfg.publicKeys.map(keyFromConfig) }) : undefined;
  const remote = cfg.jwksUrl
    ? createRemoteJWKSet(new URL(cfg.jwksUrl), { cacheMaxAge: cfg.jwks.cacheMaxAgeMs, cooldownDuration: cfg.jwks.cooldownMs, timeoutDuration: cfg.jwks.timeoutMs })
    : undefined;
  const secret = cfg.hs256 ? readSecret(cfg.hs256, env) : undefined;
  const algorithms = [...cfg.algorithms];

  // The key is chosen by the algorithm family, so an HS256 token can never be checked against a public key.
  const getKey: JWTVerifyGetKey = async (header, token) => {
    if (header.alg === 'HS256') {
      if (!secret) throw new joseErrors.JOSEAlgNotAllowed('HS256 is not configured');
      return secret;
    }
    if (typeof header.alg === 'string' && header.alg.startsWith('HS')) throw new joseErrors.JOSEAlgNotAllowed('symmetric algorithm not allowed');
    if (local) {
      try {
        return await local(header, token);
      } catch (e) {
        if (!remote || !(e instanceof joseErrors.JWKSNoMatchingKey)) throw e;
      }
    }
    if (remote) return remote(header, token);
    throw new joseErrors.JWKSNoMatchingKey();
  };

  const tenantFor = tenantLookup(opts.db, { create: cfg.tenants === 'create', cacheMs: cfg.tenantCacheMs });

  return {
    async verify(token) {
      if (!isJwtShaped(token)) return { ok: false, reason: 'malformed' };
      let payload: JWTPayload;
      try {
        ({ payload } = await jwtVerify(token, getKey, {
          issuer: cfg.issuer,
          audience: cfg.audience,
          algorithms,
          clockTolerance: cfg.clockSkewSeconds,
          requiredClaims: ['exp'],
          currentDate: new Date(now()),
        }));
      } catch (e) {
        return { ok: false, ...failureOf(e) };
      }
      const rawTenant = claimAt(payload, cfg.claims.tenant);
      const tenantName = typeof rawTenant === 'string' ? rawTenant.trim() : typeof rawTenant === 'number' ? String(rawTenant) : '';
      if (!tenantName || tenantName.length > 200) return { ok: false, reason: 'no_tenant', detail: `claim ${cfg.claims.tenant} missing or invalid` };
      const tenant = await tenantFor(tenantName);
      if (!tenant) return { ok: false, reason: 'unknown_tenant' };
      if (tenant.status !== 'active') return { ok: false, reason: 'tenant_disabled' };
      const user = claimAt(payload, cfg.claims.user);
      const tierClaim = cfg.claims.tier ? claimAt(payload, cfg.claims.tier) : undefined;
      const tier = typeof tierClaim === 'string' && tierClaim.length > 0 && tierClaim.length <= 100 ? tierClaim : (tenant.tier ?? undefined);
      const sub = typeof payload.sub === 'string' ? payload.sub.slice(0, 256) : undefined;
      const principal: Principal = {
        tenantId: tenant.id,
        tenantName: tenant.name,
        subject: `jwt:${sub ?? 'anonymous'}`,
        ...(typeof user === 'string' && user ? { user: user.slice(0, 256) } : {}),
        scopes: scopesFromClaim(claimAt(payload, cfg.claims.scopes)),
        ...(tier ? { tier } : {}),
        authMethod: 'jwt',
        ...(tenant.scopes != null ? { tenantScopes: tenant.scopes } : {}),
      };
      return { ok: true, principal };
    },
  };
}
