import type { Kysely } from 'kysely';
import type { Dialect } from '../db.js';
import type { DbMigration } from './index.js';

/**
 * The audit trail (migration 007): one row per request or admin action (indexed columns plus the
 * whole event as JSON), encrypted payloads of tenants that opted in, and wrapped per-tenant data keys.
 */
export const m007: DbMigration = {
  async up(db: Kysely<any>, dialect: Dialect) {
    const dbl = dialect === 'postgres' ? 'double precision' : 'real';
    await db.schema
      .createTable('audit_events')
      .addColumn('id', 'varchar(64)', (c) => c.primaryKey())
      .addColumn('ts', 'bigint', (c) => c.notNull())
      .addColumn('day', 'varchar(10)', (c) => c.notNull())
      .addColumn('kind', 'varchar(16)', (c) => c.notNull())
      .addColumn('tenant_id', 'varchar(64)')
      .addColumn('key_id', 'varchar(64)')
      .addColumn('request_id', 'varchar(128)')
      .addColumn('status', 'integer')
      .addColumn('model', 'varchar(200)')
      .addColumn('action', 'varchar(100)')
      .addColumn('categories', 'text', (c) => c.notNull())
      .addColumn('tokens_in', 'bigint', (c) => c.notNull())
      .addColumn('tokens_out', 'bigint', (c) => c.notNull())
      .addColumn('cost_usd', dbl, (c) => c.notNull())
      .addColumn('data', 'text', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('audit_events_ts').on('audit_events').columns(['ts', 'id']).execute();
    await db.schema.createIndex('audit_events_tenant_ts').on('audit_events').columns(['tenant_id', 'ts']).execute();
    await db.schema.createIndex('audit_events_key_ts').on('audit_events').columns(['key_id', 'ts']).execute();
    await db.schema.createIndex('audit_events_day').on('audit_events').columns(['day', 'tenant_id']).execute();
    await db.schema
      .createTable('audit_payloads')
      .addColumn('event_id', 'varchar(64)', (c) => c.primaryKey())
      .addColumn('tenant_id', 'varchar(64)', (c) => c.notNull())
      .addColumn('ts', 'bigint', (c) => c.notNull())
      .addColumn('expires_at', 'bigint', (c) => c.notNull())
      .addColumn('request', 'text')
      .addColumn('response', 'text')
      .execute();
    await db.schema.createIndex('audit_payloads_expiry').on('audit_payloads').columns(['expires_at']).execute();
    await db.schema
      .createTable('audit_tenant_keys')
      .addColumn('tenant_id', 'varchar(64)', (c) => c.primaryKey())
      .addColumn('wrapped', 'text', (c) => c.notNull())
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      .execute();
  },
  async down(db: Kysely<any>) {
    await db.schema.dropTable('audit_tenant_keys').execute();
    await db.schema.dropTable('audit_payloads').execute();
    await db.schema.dropTable('audit_events').execute();
  },
};
