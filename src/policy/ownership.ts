/**
 * Object ownership (BOLA defence): the gateway records which tenant (and key) created each
 * upstream object id, and answers "not yours" exactly like "does not exist". Stored in the
 * `object_owners` table (SQLite or PostgreSQL, migration 003).
 */
import type { Kysely } from 'kysely';
import type { Database } from '../store/schema.js';

/**
 * Kinds of objects the gateway tracks (also the policy operation that guards them), and the output
 * items of stored responses (`response_items`: what a Responses `item_reference` names).
 */
export type ObjectKind = 'files' | 'batches' | 'fine_tuning' | 'vector_stores' | 'responses' | 'response_items';

/** Who created an object. */
export interface ObjectOwner {
  tenantId: string;
  keyId?: string | undefined;
  subject?: string | undefined;
}

/**
 * What the response guards made of a stored response when it was created: `passed` (the gateway
 * scanned the whole output in enforce mode and released it unchanged), `withheld` (the guards
 * blocked or changed it), `unscanned` (the gateway did not see the whole output: background, a
 * stream cut short, guards off).
 */
export type OutputCheck = 'passed' | 'withheld' | 'unscanned';

/** The ownership store. */
export interface OwnershipStore {
  /** Records the creator of an object; an id already owned keeps its first owner (and its output check). */
  record(kind: ObjectKind, id: string, owner: ObjectOwner, outputCheck?: OutputCheck): Promise<void>;
  /** Records several objects of one owner at once (as `record` does each). */
  recordMany(kind: ObjectKind, ids: readonly string[], owner: ObjectOwner, outputCheck?: OutputCheck): Promise<void>;
  /** Sets the output check of objects the store holds. */
  setOutputCheck(kind: ObjectKind, id: string | readonly string[], check: OutputCheck): Promise<void>;
  /** Sets the output check of an object the store holds when it has none (a row made before the check existed). */
  fillOutputCheck(kind: ObjectKind, id: string, check: OutputCheck): Promise<void>;
  /** The owner and output check (null when never recorded, or made before the check existed), or null when the gateway never saw the object. */
  lookup(kind: ObjectKind, id: string): Promise<{ tenantId: string; outputCheck: OutputCheck | null } | null>;
  /** The owning tenant id, or null when the gateway never saw the object. */
  ownerOf(kind: ObjectKind, id: string): Promise<string | null>;
  /** True when `tenantId` owns the object. */
  owns(kind: ObjectKind, id: string, tenantId: string): Promise<boolean>;
  /** The subset of `ids` owned by `tenantId` (for filtering list pages). */
  ownedAmong(kind: ObjectKind, ids: readonly string[], tenantId: string): Promise<Set<string>>;
  /** Forgets an object (after a successful delete upstream). */
  forget(kind: ObjectKind, id: string): Promise<void>;
}

/** Creates the ownership store over the gateway database. */
export function createOwnershipStore(db: Kysely<Database>, now: () => number = Date.now): OwnershipStore {
  return {
    record(kind, id, owner, outputCheck) {
      return this.recordMany(kind, [id], owner, outputCheck);
    },
    async recordMany(kind, ids, owner, outputCheck) {
      const at = now();
      for (let i = 0; i < ids.length; i += 200) {
        const chunk = ids.slice(i, i + 200);
        if (chunk.length === 0) continue;
        await db
          .insertInto('object_owners')
          .values(chunk.map((id) => ({ kind, object_id: id, tenant_id: owner.tenantId, key_id: owner.keyId ?? null, subject: owner.subject?.slice(0, 1000) ?? null, created_at: at, output_check: outputCheck ?? null })))
          .onConflict((oc) => oc.columns(['kind', 'object_id']).doNothing())
          .execute();
      }
    },
    async setOutputCheck(kind, id, check) {
      const ids = typeof id === 'string' ? [id] : id;
      for (let i = 0; i < ids.length; i += 200) {
        const chunk = ids.slice(i, i + 200);
        if (chunk.length === 0) continue;
        await db.updateTable('object_owners').set({ output_check: check }).where('kind', '=', kind).where('object_id', 'in', chunk).execute();
      }
    },
    async fillOutputCheck(kind, id, check) {
      await db.updateTable('object_owners').set({ output_check: check }).where('kind', '=', kind).where('object_id', '=', id).where('output_check', 'is', null).execute();
    },
    async lookup(kind, id) {
      const row = await db.selectFrom('object_owners').select(['tenant_id', 'output_check']).where('kind', '=', kind).where('object_id', '=', id).executeTakeFirst();
      if (!row) return null;
      const c = row.output_check;
      return { tenantId: row.tenant_id, outputCheck: c === 'passed' || c === 'withheld' || c === 'unscanned' ? c : null };
    },
    async ownerOf(kind, id) {
      const row = await db.selectFrom('object_owners').select('tenant_id').where('kind', '=', kind).where('object_id', '=', id).executeTakeFirst();
      return row?.tenant_id ?? null;
    },
    async owns(kind, id, tenantId) {
      return (await this.ownerOf(kind, id)) === tenantId;
    },
    async ownedAmong(kind, ids, tenantId) {
      const out = new Set<string>();
      for (let i = 0; i < ids.length; i += 500) {
        const chunk = ids.slice(i, i + 500);
        if (chunk.length === 0) continue;
        const rows = await db.selectFrom('object_owners').select('object_id').where('kind', '=', kind).where('tenant_id', '=', tenantId).where('object_id', 'in', chunk).execute();
        for (const r of rows) out.add(r.object_id);
      }
      return out;
    },
    async forget(kind, id) {
      await db.deleteFrom('object_owners').where('kind', '=', kind).where('object_id', '=', id).execute();
    },
  };
}
