/** Who is calling: the result of identification, handed to every later step. */
export interface Principal {
  tenantId: string;
  tenantName: string;
  /** API key id (the part after `pcl_`), when authenticated by key. */
  keyId?: string;
  /** Human or service subject (key name, JWT `sub`, SPIFFE id). */
  subject: string;
  /** End user, from a JWT subject or the request's `user` field. */
  user?: string;
  /** Scopes granted to this principal; null = the tenant's/tier's defaults. */
  scopes: unknown | null;
  /** Effective tier: the key's, else the tenant's. */
  tier?: string;
  authMethod: 'api_key' | 'jwt' | 'mtls';
  /** Tenant-wide scopes (a layer between the tier and the key's own scopes), when set. */
  tenantScopes?: unknown | null;
  /** True while a rotated key is inside its grace period (clients should switch). */
  rotated?: boolean;
}

/** An authenticated administrator (admin API). */
export interface AdminPrincipal {
  /** Admin key id (the part after `pcla_`), or `cli` for offline use. */
  id: string;
  name: string;
  role: AdminRole;
  /** Tenant ids an operator manages; null = all tenants (owner, auditor). */
  tenants: string[] | null;
}

/** Admin roles: owner (everything), operator (keys/policies of assigned tenants), auditor (read-only). */
export type AdminRole = 'owner' | 'operator' | 'auditor';

/** Admin roles, in decreasing power. */
export const ADMIN_ROLES: readonly AdminRole[] = ['owner', 'operator', 'auditor'];
