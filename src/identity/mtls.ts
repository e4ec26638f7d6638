/**
 * mTLS identity: the gateway terminates TLS itself (`server.tls`), asks for client certificates
 * signed by a configured CA, and maps the certificate's SAN URI (a SPIFFE ID such as
 * `spiffe://example.org/ns/payments/sa/checkout`) to a tenant, tier and scopes (`auth.mtls`).
 */
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Kysely } from 'kysely';
import { z } from 'zod';
import { globToRegExp } from '../config/glob.js';
import type { Database } from '../store/schema.js';
import { tenantLookup } from './keys.js';
import type { Principal } from './types.js';

/** `server.tls:` — TLS termination by the gateway (PEM file paths). */
export const tlsConfigSchema = z
  .object({
    /** Server certificate chain (PEM file). */
    cert: z.string().min(1),
    /** Server private key (PEM file). */
    key: z.string().min(1),
    /** CA bundle that signs accepted client certificates (PEM file). */
    ca: z.string().min(1).optional(),
    /** Ask clients for a certificate (needed for mTLS identity). */
    requestClientCert: z.boolean().default(false),
    /** Refuse (401) API requests without a valid client certificate from `ca`. */
    requireClientCert: z.boolean().default(false),
  })
  .strict()
  .superRefine((t, ctx) => {
    if (t.requireClientCert && !t.requestClientCert) ctx.addIssue({ code: 'custom', path: ['requestClientCert'], message: 'requireClientCert needs requestClientCert: true' });
    if (t.requestClientCert && !t.ca) ctx.addIssue({ code: 'custom', path: ['ca'], message: 'client certificates need a CA bundle (ca)' });
  });

/** `server.tls` after validation. */
export type TlsConfig = z.infer<typeof tlsConfigSchema>;

/** `auth.mtls:` — SPIFFE / SAN URI → tenant, tier and scopes; first matching rule wins. */
export const mtlsConfigSchema = z
  .object({
    identities: z
      .array(
        z
          .object({
            /** SAN URI, exact or glob (`*` any run, `?` one character), e.g. `spiffe://example.org/ns/payments/*`. */
            match: z.string().min(1).max(1000),
            /** Tenant name. */
            tenant: z.string().min(1).max(200),
            tier: z.string().min(1).max(100).optional(),
            /** Scopes of this identity (same shape as a key's scopes); absent = tenant/tier defaults. */
            scopes: z.record(z.unknown()).optional(),
          })
          .strict(),
      )
      .min(1)
      .max(10_000),
    /** Tenants named by rules: `existing` (unknown → 401) or `create` (created on first use). */
    tenants: z.enum(['existing', 'create']).default('existing'),
  })
  .strict();

/** `auth.mtls` after validation. */
export type MtlsConfig = z.infer<typeof mtlsConfigSchema>;

/** What the TLS layer says about the client's certificate. */
export interface PeerInfo {
  /** True when the certificate chains to the configured CA (and is within its validity). */
  authorized: boolean;
  /** SAN URIs of the certificate. */
  uris: string[];
  /** Why the certificate is not authorized (OpenSSL reason), when it is not. */
  error?: string;
}

/** Options for `https.createServer` from `server.tls` (client certificates are judged per request, answering 401). */
export function tlsServerOptions(t: TlsConfig): { cert: Buffer; key: Buffer; ca?: Buffer; requestCert: boolean; rejectUnauthorized: boolean } {
  return {
    cert: readFileSync(t.cert),
    key: readFileSync(t.key),
    ...(t.ca ? { ca: readFileSync(t.ca) } : {}),
    requestCert: t.requestClientCert,
    rejectUnauthorized: false,
  };
}

/** SAN URIs from Node's `subjectaltname` string (`URI:spiffe://…, DNS:…`; quoted values are JSON strings). */
export function sanUris(subjectaltname: string | undefined): string[] {
  if (!subjectaltname) return [];
  const out: string[] = [];
  const re = /(?:^|,\s*)URI:("(?:[^"\\]|\\.)*"|[^,]*)/g;
  for (let m = re.exec(subjectaltname); m; m = re.exec(subjectaltname)) {
    let v = m[1]!;
    if (v.startsWith('"')) {
      try {
        v = JSON.parse(v) as string;
      } catch {
        continue;
      }
    }
    if (v) out.push(v.trim());
  }
  return out;
}

/** The client certificate of a connection, or null (plain HTTP, or no certificate sent). */
export function peerOf(socket: Socket | TLSSocket | undefined): PeerInfo | null {
  const s = socket as TLSSocket | undefined;
  if (!s || typeof s.getPeerCertificate !== 'function') return null;
  const cert = s.getPeerCertificate(false);
  if (!cert || Object.keys(cert).length === 0) return null;
  return {
    authorized: s.authorized === true,
    uris: sanUris(cert.subjectaltname),
    ...(s.authorizationError ? { error: String(s.authorizationError) } : {}),
  };
}

/** Why a certificate identity was refused. */
export type MtlsFailure = 'no_certificate' | 'untrusted_certificate' | 'no_matching_identity' | 'unknown_tenant' | 'tenant_disabled';

/** Maps verified client certificates to principals. */
export interface MtlsIdentity {
  /** True when every API request needs a valid client certificate. */
  readonly required: boolean;
  /** The principal for a client certificate. */
  principalFor(peer: PeerInfo | null): Promise<{ ok: true; principal: Principal } | { ok: false; reason: MtlsFailure }>;
}

/** Creates the certificate → principal mapping. */
export function createMtlsIdentity(cfg: MtlsConfig, opts: { db: Kysely<Database>; required: boolean; tenantCacheMs?: number }): MtlsIdentity {
  const rules = cfg.identities.map((r) => ({ ...r, re: globToRegExp(r.match) }));
  const tenantFor = tenantLookup(opts.db, { create: cfg.tenants === 'create', cacheMs: opts.tenantCacheMs ?? 5_000 });

  return {
    required: opts.required,
    async principalFor(peer) {
      if (!peer) return { ok: false, reason: 'no_certificate' };
      if (!peer.authorized) return { ok: false, reason: 'untrusted_certificate' };
      let uri: string | undefined;
      const rule = rules.find((r) => (uri = peer.uris.find((u) => r.re.test(u))) !== undefined);
      if (!rule || !uri) return { ok: false, reason: 'no_matching_identity' };
      const tenant = await tenantFor(rule.tenant);
      if (!tenant) return { ok: false, reason: 'unknown_tenant' };
      if (tenant.status !== 'active') return { ok: false, reason: 'tenant_disabled' };
      const tier = rule.tier ?? tenant.tier ?? undefined;
      return {
        ok: true,
        principal: {
          tenantId: tenant.id,
          tenantName: tenant.name,
          subject: uri.slice(0, 1000),
          scopes: rule.scopes ?? null,
          ...(tier ? { tier } : {}),
          authMethod: 'mtls',
          ...(tenant.scopes != null ? { tenantScopes: tenant.scopes } : {}),
        },
      };
    },
  };
}
