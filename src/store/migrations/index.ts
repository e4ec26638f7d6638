/**
 * The ordered list of migrations, shared by SQLite and PostgreSQL. Add a new file per
 * change (`NNN-name.ts`) and register it here; never edit a migration that has shipped.
 */
import type { Kysely } from 'kysely';
import type { Dialect } from '../db.js';
import { m001 } from './001-tenants-keys.js';
import { m005 } from './005-guard-shadow.js';
import { m002 } from './002-identity-access.js';
import { m003 } from './003-object-owners.js';
import { m007 } from './007-audit.js';
import { m006 } from './006-approvals.js';
import { m008 } from './008-audit-day-index.js';
import { m009 } from './009-guard-shadow-created.js';
import { m010 } from './010-admin-events-action.js';
import { m011 } from './011-object-output-check.js';

/** One migration; `dialect` lets a step use engine-specific column types. */
export interface DbMigration {
  up(db: Kysely<any>, dialect: Dialect): Promise<void>;
  down?(db: Kysely<any>, dialect: Dialect): Promise<void>;
}

/** Migrations by name; names sort in the order they run. */
export const migrations: Record<string, DbMigration> = {
  '001-tenants-keys': m001,
  '002-identity-access': m002,
  '003-object-owners': m003,
  '005-guard-shadow': m005,
  '006-approvals': m006,
  '007-audit': m007,
  '008-audit-day-index': m008,
  '009-guard-shadow-created': m009,
  '010-admin-events-action': m010,
  '011-object-output-check': m011,
};
