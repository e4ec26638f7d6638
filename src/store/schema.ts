/** Kysely table types. Times are epoch milliseconds (bigint columns come back as number or string). */
import type { ColumnType, Generated } from 'kysely';

type Millis = ColumnType<number, number, number>;

export interface TenantsTable {
  id: string;
  name: string;
  status: Generated<string>;
  tier: string | null;
  created_at: Millis;
  /** JSON-encoded tenant-wide scopes (narrowed further by each key), or null. */
  scopes: string | null;
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
  /** Set on rotation: the key that replaces this one. */
  successor_id: string | null;
  /** Set on rotation: the rotated key keeps working until this time. */
  grace_until: Millis | null;
  revoked_at: Millis | null;
  revoked_reason: string | null;
}

export interface KvMetaTable {
  k: string;
  v: string;
}

export interface AdminKeysTable {
  id: string;
  name: string;
  hash: string;
  /** owner | operator | auditor */
  role: string;
  /** JSON array of tenant ids an operator manages (null for owner/auditor = all). */
  tenants: string | null;
  status: Generated<string>;
  created_by: string | null;
  created_at: Millis;
  expires_at: Millis | null;
  last_used_at: Millis | null;
}

export interface AdminEventsTable {
  id: Generated<number>;
  ts: Millis;
  actor: string;
  actor_role: string | null;
  action: string;
  target_type: string | null;
  target_id: string | null;
  tenant_id: string | null;
  /** Where the action came from: client address, `cli`, … */
  source: string | null;
  request_id: string | null;
  /** JSON detail (never secrets). */
  detail: string | null;
}

export interface KeyChangesTable {
  seq: Generated<number>;
  key_id: string;
  ts: Millis;
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

/** Approval tickets of tool calls that need a human (migration 006). */
export interface ApprovalsTable {
  id: string;
  tenant_id: string;
  key_id: string | null;
  subject: string | null;
  request_id: string;
  /** sha256 of the canonical request body (without stream flags). */
  request_hash: string;
  api: string;
  model: string | null;
  tool: string;
  /** sha256 of the call's arguments JSON as the model produced it (after the SQL LIMIT rewrite). */
  arguments_hash: string;
  /** The arguments, truncated, for the reviewer. */
  arguments: string | null;
  /** requires_approval | sql_write | taint */
  reason: string;
  /** JSON array of finding categories. */
  categories: string;
  /** pending | approved | denied | used */
  status: string;
  created_at: Millis;
  expires_at: Millis;
  decided_at: Millis | null;
  decided_by: string | null;
  decision_reason: string | null;
  used_at: Millis | null;
  used_request_id: string | null;
}

/** Audit events (migration 007): indexed columns, and in `data` the event's JSON without the fields the columns hold (see rowData in src/audit/store.ts; rows written by earlier versions hold the whole event). */
export interface AuditEventsTable {
  id: string;
  ts: Millis;
  /** Calendar day (YYYY-MM-DD) of `ts` in the limits time zone, for usage reports. */
  day: string;
  /** request | admin */
  kind: string;
  tenant_id: string | null;
  key_id: string | null;
  request_id: string | null;
  status: number | null;
  model: string | null;
  /** Admin action, or the request's strongest guard action. */
  action: string | null;
  /** Finding categories as `|a|b|` (empty: `||`). */
  categories: string;
  tokens_in: ColumnType<number, number, number>;
  tokens_out: ColumnType<number, number, number>;
  cost_usd: number;
  data: string;
}

/** Encrypted request/response bodies of tenants with payload capture (migration 007). */
export interface AuditPayloadsTable {
  event_id: string;
  tenant_id: string;
  ts: Millis;
  expires_at: Millis;
  /** base64(iv | tag | ciphertext) under the tenant's data key, or null. */
  request: string | null;
  response: string | null;
}

/** Per-tenant data keys wrapped by the master key (migration 007). */
export interface AuditTenantKeysTable {
  tenant_id: string;
  /** base64(iv | tag | wrapped key). */
  wrapped: string;
  created_at: Millis;
}

/** Owner of an upstream object id (migration 003): files, batches, fine-tuning jobs, vector stores, responses. */
export interface ObjectOwnersTable {
  /** files | batches | fine_tuning | vector_stores | responses */
  kind: string;
  object_id: string;
  tenant_id: string;
  key_id: string | null;
  /** Key name, JWT subject or SPIFFE id of the creator. */
  subject: string | null;
  created_at: Millis;
  /** Stored responses: `passed`, `withheld` or `unscanned` by the response guards (migration 011); NULL otherwise. */
  output_check: string | null;
}

/** All tables. Later migrations add their tables here. */
export interface Database {
  tenants: TenantsTable;
  api_keys: ApiKeysTable;
  kv_meta: KvMetaTable;
  admin_keys: AdminKeysTable;
  admin_events: AdminEventsTable;
  key_changes: KeyChangesTable;
  guard_shadow: GuardShadowTable;
  object_owners: ObjectOwnersTable;
  audit_events: AuditEventsTable;
  audit_payloads: AuditPayloadsTable;
  audit_tenant_keys: AuditTenantKeysTable;
  approvals: ApprovalsTable;
}
