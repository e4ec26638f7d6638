import type { Kysely } from 'kysely';
import type { DbMigration } from './index.js';

/** Object ownership (BOLA): which tenant (and key) created each upstream object id. */
export const m003: DbMigration = {
  async up(db: Kysely<any>) {
    await db.schema
      .createTable('object_owners')
      .addColumn('kind', 'varchar(32)', (c) => c.notNull())
      .addColumn('object_id', 'varchar(200)', (c) => c.notNull())
      .addColumn('tenant_id', 'varchar(64)', (c) => c.notNull())
      .addColumn('key_id', 'varchar(64)')
      .addColumn('subject', 'varchar(1000)')
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      .addPrimaryKeyConstraint('object_owners_pk', ['kind', 'object_id'])
      .execute();
    await db.schema.createIndex('object_owners_tenant').on('object_owners').columns(['tenant_id', 'kind', 'created_at']).execute();
  },
  async down(db: Kysely<any>) {
    await db.schema.dropTable('object_owners').execute();
  },
};
