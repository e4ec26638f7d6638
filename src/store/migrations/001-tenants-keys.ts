import type { Kysely } from 'kysely';
import type { DbMigration } from './index.js';

/** Tenants and API keys (hashed secrets only). Times are epoch milliseconds. */
export const m001: DbMigration = {
  async up(db: Kysely<any>) {
    await db.schema
      .createTable('tenants')
      .addColumn('id', 'varchar(64)', (c) => c.primaryKey())
      .addColumn('name', 'varchar(200)', (c) => c.notNull().unique())
      .addColumn('status', 'varchar(32)', (c) => c.notNull().defaultTo('active'))
      .addColumn('tier', 'varchar(100)')
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      .execute();
    await db.schema
      .createTable('api_keys')
      .addColumn('id', 'varchar(64)', (c) => c.primaryKey())
      .addColumn('tenant_id', 'varchar(64)', (c) => c.notNull().references('tenants.id'))
      .addColumn('name', 'varchar(200)', (c) => c.notNull())
      .addColumn('hash', 'varchar(128)', (c) => c.notNull())
      .addColumn('scopes', 'text')
      .addColumn('tier', 'varchar(100)')
      .addColumn('owner', 'varchar(200)')
      .addColumn('status', 'varchar(32)', (c) => c.notNull().defaultTo('active'))
      .addColumn('created_by', 'varchar(200)')
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      .addColumn('expires_at', 'bigint')
      .addColumn('last_used_at', 'bigint')
      .execute();
    await db.schema.createIndex('api_keys_tenant').on('api_keys').column('tenant_id').execute();
    await db.schema
      .createTable('kv_meta')
      .addColumn('k', 'varchar(200)', (c) => c.primaryKey())
      .addColumn('v', 'text', (c) => c.notNull())
      .execute();
  },
};
