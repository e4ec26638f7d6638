/** Kysely table types. Times are epoch milliseconds (bigint columns come back as number or string). */
import type { ColumnType, Generated } from 'kysely';

type Millis = ColumnType<number, number, number>;

export interface TenantsTable {
  id: string;
  name: string;
  status: Generated<string>;
  tier: string | null;
  created_at: Millis;
}

export interface ApiKeysTable {
  id: string;
  tenant_id: string;
  name: string;
  /** HMAC-SHA256(pepper, secret), hex. */
  hash: string;
  /** JSON-encoded scopes, or null for the tenant's defaults. */
  scopes: string | null;
  tier: string | null;
  owner: string | null;
  status: Generated<string>;
  created_by: string | null;
  created_at: Millis;
  expires_at: Millis | null;
  last_used_at: Millis | null;
}

export interface KvMetaTable {
  k: string;
  v: string;
}

/** Shadow-mode guard results (migration 005): categories as a JSON array, never text. */
export interface GuardShadowTable {
  id: string;
  tenant_id: string;
  request_id: string;
  guard: string;
  stage: string;
  action: string;
  categories: string;
  score: number | null;
  created_at: Millis;
}

/** All tables. Later migrations add their tables here. */
export interface Database {
  tenants: TenantsTable;
  api_keys: ApiKeysTable;
  kv_meta: KvMetaTable;
  guard_shadow: GuardShadowTable;
}
