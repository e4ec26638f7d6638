import type { Kysely } from 'kysely';
import type { DbMigration } from './index.js';

/**
 * Identity and access: key rotation/revocation columns, per-tenant scopes, admin keys with
 * roles, the admin event log and the key-change sequence that invalidates caches.
 */
export const m002: DbMigration = {
  async up(db: Kysely<any>, dialect) {
    const serial = dialect === 'postgres' ? 'bigserial' : 'integer';
    await db.schema.alterTable('api_keys').addColumn('successor_id', 'varchar(64)').execute();
    await db.schema.alterTable('api_keys').addColumn('grace_until', 'bigint').execute();
    await db.schema.alterTable('api_keys').addColumn('revoked_at', 'bigint').execute();
    await db.schema.alterTable('api_keys').addColumn('revoked_reason', 'varchar(500)').execute();
    await db.schema.alterTable('tenants').addColumn('scopes', 'text').execute();
    await db.schema
      .createTable('admin_keys')
      .addColumn('id', 'varchar(64)', (c) => c.primaryKey())
      .addColumn('name', 'varchar(200)', (c) => c.notNull())
      .addColumn('hash', 'varchar(128)', (c) => c.notNull())
      .addColumn('role', 'varchar(32)', (c) => c.notNull())
      .addColumn('tenants', 'text')
      .addColumn('status', 'varchar(32)', (c) => c.notNull().defaultTo('active'))
      .addColumn('created_by', 'varchar(200)')
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      .addColumn('expires_at', 'bigint')
      .addColumn('last_used_at', 'bigint')
      .execute();
    await db.schema
      .createTable('admin_events')
      .addColumn('id', serial, (c) => (dialect === 'postgres' ? c.primaryKey() : c.primaryKey().autoIncrement()))
      .addColumn('ts', 'bigint', (c) => c.notNull())
      .addColumn('actor', 'varchar(200)', (c) => c.notNull())
      .addColumn('actor_role', 'varchar(32)')
      .addColumn('action', 'varchar(100)', (c) => c.notNull())
      .addColumn('target_type', 'varchar(32)')
      .addColumn('target_id', 'varchar(200)')
      .addColumn('tenant_id', 'varchar(64)')
      .addColumn('source', 'varchar(200)')
      .addColumn('request_id', 'varchar(200)')
      .addColumn('detail', 'text')
      .execute();
    await db.schema.createIndex('admin_events_tenant').on('admin_events').columns(['tenant_id', 'id']).execute();
    await db.schema.createIndex('admin_events_target').on('admin_events').columns(['target_id']).execute();
    await db.schema
      .createTable('key_changes')
      .addColumn('seq', serial, (c) => (dialect === 'postgres' ? c.primaryKey() : c.primaryKey().autoIncrement()))
      .addColumn('key_id', 'varchar(64)', (c) => c.notNull())
      .addColumn('ts', 'bigint', (c) => c.notNull())
      .execute();
  },
};
