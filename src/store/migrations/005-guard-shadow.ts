import type { Kysely } from 'kysely';
import type { DbMigration } from './index.js';

/** Shadow-mode guard results: what a shadow guard would have done, per tenant (no text, no values). */
export const m005: DbMigration = {
  async up(db: Kysely<any>) {
    await db.schema
      .createTable('guard_shadow')
      .addColumn('id', 'varchar(40)', (c) => c.primaryKey())
      .addColumn('tenant_id', 'varchar(64)', (c) => c.notNull())
      .addColumn('request_id', 'varchar(128)', (c) => c.notNull())
      .addColumn('guard', 'varchar(100)', (c) => c.notNull())
      .addColumn('stage', 'varchar(20)', (c) => c.notNull())
      .addColumn('action', 'varchar(20)', (c) => c.notNull())
      .addColumn('categories', 'text', (c) => c.notNull())
      .addColumn('score', 'real')
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('guard_shadow_tenant_time').on('guard_shadow').columns(['tenant_id', 'created_at']).execute();
  },
  async down(db: Kysely<any>) {
    await db.schema.dropTable('guard_shadow').execute();
  },
};
