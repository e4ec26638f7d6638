import type { Kysely } from 'kysely';
import type { DbMigration } from './index.js';

/**
 * Migration 009: an index on `guard_shadow.created_at`, for the retention purge
 * (`guards.shadowRetentionDays`), which deletes across tenants by age.
 */
export const m009: DbMigration = {
  async up(db: Kysely<any>) {
    await db.schema.createIndex('guard_shadow_created').ifNotExists().on('guard_shadow').column('created_at').execute();
  },
  async down(db: Kysely<any>) {
    await db.schema.dropIndex('guard_shadow_created').ifExists().execute();
  },
};
