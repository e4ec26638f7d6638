import type { Kysely } from 'kysely';
import type { DbMigration } from './index.js';

/**
 * Approval tickets for tool calls that need a human: who asked (tenant, key), which request
 * (hash), which call (tool name, argument hash, arguments kept for the reviewer), the decision
 * and its single use.
 */
export const m006: DbMigration = {
  async up(db: Kysely<any>) {
    await db.schema
      .createTable('approvals')
      .addColumn('id', 'varchar(40)', (c) => c.primaryKey())
      .addColumn('tenant_id', 'varchar(64)', (c) => c.notNull())
      .addColumn('key_id', 'varchar(64)')
      .addColumn('subject', 'varchar(256)')
      .addColumn('request_id', 'varchar(128)', (c) => c.notNull())
      .addColumn('request_hash', 'varchar(64)', (c) => c.notNull())
      .addColumn('api', 'varchar(20)', (c) => c.notNull())
      .addColumn('model', 'varchar(200)')
      .addColumn('tool', 'varchar(128)', (c) => c.notNull())
      .addColumn('arguments_hash', 'varchar(64)', (c) => c.notNull())
      .addColumn('arguments', 'text')
      .addColumn('reason', 'varchar(40)', (c) => c.notNull())
      .addColumn('categories', 'text', (c) => c.notNull())
      .addColumn('status', 'varchar(20)', (c) => c.notNull())
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      .addColumn('expires_at', 'bigint', (c) => c.notNull())
      .addColumn('decided_at', 'bigint')
      .addColumn('decided_by', 'varchar(200)')
      .addColumn('decision_reason', 'varchar(500)')
      .addColumn('used_at', 'bigint')
      .addColumn('used_request_id', 'varchar(128)')
      .execute();
    await db.schema.createIndex('approvals_tenant_status').on('approvals').columns(['tenant_id', 'status', 'created_at']).execute();
  },
  async down(db: Kysely<any>) {
    await db.schema.dropTable('approvals').execute();
  },
};
