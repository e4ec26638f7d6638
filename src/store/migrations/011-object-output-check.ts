import type { Kysely } from 'kysely';
import type { DbMigration } from './index.js';

/**
 * Migration 011: `object_owners.output_check`, what the response guards made of a stored response
 * when it was created (`passed`, `withheld`, `unscanned`; NULL for other objects and for rows made
 * before it). `GET /v1/responses/{id}` returns a withheld response to no one and re-scans an
 * unscanned one (see `src/server/objects.ts`).
 */
export const m011: DbMigration = {
  async up(db: Kysely<any>) {
    await db.schema.alterTable('object_owners').addColumn('output_check', 'varchar(16)').execute();
  },
  async down(db: Kysely<any>) {
    await db.schema.alterTable('object_owners').dropColumn('output_check').execute();
  },
};
