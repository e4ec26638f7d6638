/**
 * `auth.jwt:` — the configuration of bearer JWT verification, and the shape test of a bearer
 * credential. Apart from the verifier (jwt.ts), so that `jose` is loaded only when JWT auth is
 * configured.
 */
import { z } from 'zod';
import type { Principal } from './types.js';

/** Asymmetric algorithms a token may use; HS256 additionally when `hs256` is configured. */
export const JWT_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'EdDSA', 'HS256'] as const;

const oneOrMany = z.union([z.string().min(1).max(500), z.array(z.string().min(1).max(500)).min(1).max(50)]);
const claimPath = z.string().min(1).max(200);

/** `auth.jwt:` — bearer JWT verification and claim mapping. */
export const jwtConfigSchema = z
  .object({
    /** Accepted issuer(s) (`iss` must equal one). */
    issuer: oneOrMany,
    /** Accepted audience(s) (`aud` must contain one). */
    audience: oneOrMany,
    /** JWKS endpoint of the identity provider (e.g. https://idp.example.com/.well-known/jwks.json). */
    jwksUrl: z.string().url().optional(),
    /** Static public keys: inline PEM, a PEM file path, or a JWK. */
    publicKeys: z
      .array(
        z
          .object({ pem: z.string().min(1).optional(), file: z.string().min(1).optional(), jwk: z.record(z.unknown()).optional(), kid: z.string().min(1).max(200).optional() })
          .strict()
          .refine((k) => [k.pem, k.file, k.jwk].filter((x) => x !== undefined).length === 1, { message: 'expected exactly one of pem|file|jwk' }),
      )
      .max(100)
      .optional(),
    /** HS256 shared secret (from an env variable or a file, never inline); enables HS256. */
    hs256: z
      .object({ secretEnv: z.string().min(1).optional(), secretFile: z.string().min(1).optional() })
      .strict()
      .refine((h) => (h.secretEnv === undefined) !== (h.secretFile === undefined), { message: 'expected exactly one of secretEnv|secretFile' })
      .optional(),
    /** Accepted algorithms (HS256 is only allowed together with `hs256`). */
    algorithms: z.array(z.enum(JWT_ALGORITHMS)).min(1).default(['RS256', 'ES256', 'EdDSA']),
    /** Tolerated clock difference for `exp`/`nbf`/`iat`, in seconds. */
    clockSkewSeconds: z.number().int().min(0).max(600).default(30),
    jwks: z
      .object({
        /** A fetched key set is trusted this long; afterwards the next verification refetches (removed keys stop working). */
        cacheMaxAgeMs: z.number().int().min(100).max(86_400_000).default(600_000),
        /** Least time between two fetches triggered by an unknown `kid` (refresh rate limit). */
        cooldownMs: z.number().int().min(0).max(3_600_000).default(30_000),
        /** Fetch timeout. */
        timeoutMs: z.number().int().min(100).max(60_000).default(5_000),
      })
      .strict()
      .default({}),
    /** Which claims carry tenant, user, scopes and tier (dotted paths; a leading `claims.` is allowed). */
    claims: z
      .object({
        tenant: claimPath.default('org_id'),
        user: claimPath.default('sub'),
        /** Space-separated string or array: operation names (`chat`, `embeddings`, …), `*`, and `model:<glob>`. */
        scopes: claimPath.default('scope'),
        tier: claimPath.optional(),
      })
      .strict()
      .default({}),
    /** Tenants named by tokens: `existing` (unknown tenant → 401) or `create` (created on first use). */
    tenants: z.enum(['existing', 'create']).default('existing'),
    /** How long a tenant lookup is cached per instance (a disabled tenant stops working within this time). */
    tenantCacheMs: z.number().int().min(0).max(600_000).default(5_000),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (!c.jwksUrl && !c.publicKeys?.length && !c.hs256) ctx.addIssue({ code: 'custom', message: 'expected jwksUrl, publicKeys or hs256', path: [] });
    if (c.algorithms.includes('HS256') && !c.hs256) ctx.addIssue({ code: 'custom', message: 'HS256 needs auth.jwt.hs256 (a shared secret)', path: ['algorithms'] });
    if (c.hs256 && !c.algorithms.includes('HS256')) ctx.addIssue({ code: 'custom', message: 'hs256 is configured but HS256 is not in algorithms', path: ['algorithms'] });
    if (!c.jwksUrl && !c.publicKeys?.length && c.algorithms.some((a) => a !== 'HS256')) ctx.addIssue({ code: 'custom', message: 'asymmetric algorithms need jwksUrl or publicKeys', path: ['algorithms'] });
  });

/** `auth.jwt` as written (before defaults). */
export type JwtConfigInput = z.input<typeof jwtConfigSchema>;
/** `auth.jwt` after validation. */
export type JwtConfig = z.infer<typeof jwtConfigSchema>;

/** Why a token was refused (logs and metrics only; clients see a generic 401). */
export type JwtFailure =
  | 'malformed'
  | 'alg_not_allowed'
  | 'bad_signature'
  | 'unknown_kid'
  | 'expired'
  | 'not_yet_valid'
  | 'bad_issuer'
  | 'bad_audience'
  | 'bad_claims'
  | 'jwks_unavailable'
  | 'no_tenant'
  | 'unknown_tenant'
  | 'tenant_disabled';

/** The outcome of verifying one bearer token. */
export type JwtResult = { ok: true; principal: Principal } | { ok: false; reason: JwtFailure; detail?: string };

/** A JWT verifier bound to one configuration. */
export interface JwtVerifier {
  /** Verifies a compact JWS and maps its claims to a Principal. */
  verify(token: string): Promise<JwtResult>;
}

const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

/** True when a bearer credential is a compact JWT (three dot-separated base64url parts). */
export function isJwtShaped(token: string): boolean {
  return token.length <= 16_384 && JWT_SHAPE.test(token);
}
