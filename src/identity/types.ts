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
  tier?: string;
  authMethod: 'api_key' | 'jwt' | 'mtls';
}
