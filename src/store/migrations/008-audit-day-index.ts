import type { Kysely } from 'kysely';
import type { DbMigration } from './index.js';

/**
 * Migration 008: drops the audit trail's `(day, tenant_id)` index. No query filters on `day`
 * (search and usage filter on ts, tenant, key and model, and only group by day), so the index
 * only cost a B-tree insert per event: about a fifth of the writer's work per row.
 */
export const m008: DbMigration = {
  async up(db: Kysely<any>) {
    await db.schema.dropIndex('audit_events_day').ifExists().execute();
  },
  async down(db: Kysely<any>) {
    await db.schema.createIndex('audit_events_day').ifNotExists().on('audit_events').columns(['day', 'tenant_id']).execute();
  },
};
