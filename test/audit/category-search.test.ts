/**
 * Category search matches whole categories, in the same case, on both stores: `_`, `%` and `\`
 * in a category are literal (most injection categories hold `_`), a category that is a prefix or
 * a part of another matches only itself, and `email` is not `EMAIL`.
 */
import assert from 'node:assert/strict';
import { AuditStore } from '../../src/audit/store.js';
import { newEventId, type AuditEvent } from '../../src/audit/event.js';
import { onBothStores } from './util.js';

const now = Date.now();

onBothStores('category search: whole categories, exact case, wildcards literal', 'catsearch', async (db, defer) => {
  const store = new AuditStore(db.kysely, 'UTC', db.sqlite);
  defer(() => store.close());
  const sets: Record<string, string[]> = {
    override: ['instruction_override'],
    overrideX: ['instructionXoverride'], // what `_` as a wildcard would also match
    pair: ['EMAIL', 'instruction_override'],
    email: ['EMAIL'],
    emailAddress: ['EMAIL_ADDRESS'], // EMAIL is a prefix of it
    lower: ['email'],
    mail: ['XMAIL'],
    percent: ['100%_sure'],
    backslash: ['a\\b'],
  };
  const ids: Record<string, string> = {};
  const events: AuditEvent[] = Object.entries(sets).map(([name, categories], i) => {
    const e: AuditEvent = { id: newEventId(now + i), ts: now + i, kind: 'request', tenantId: 'ten_a', categories };
    ids[name] = e.id;
    return e;
  });
  await store.insert(events.map((event) => ({ event })));
  const found = async (category: string) => (await store.search({ category, limit: 100 })).data.map((e) => Object.entries(ids).find(([, id]) => id === e.id)![0]).sort();

  assert.deepEqual(await found('instruction_override'), ['override', 'pair'], 'an underscore category is found, `_` is no wildcard');
  assert.deepEqual(await found('EMAIL'), ['email', 'pair'], 'whole categories only: not EMAIL_ADDRESS, not the lower-case email');
  assert.deepEqual(await found('email'), ['lower'], 'case-sensitive on both stores');
  assert.deepEqual(await found('EMAIL_ADDRESS'), ['emailAddress']);
  assert.deepEqual(await found('MAIL'), [], 'no part of a category');
  assert.deepEqual(await found('instruction'), []);
  assert.deepEqual(await found('100%_sure'), ['percent'], '`%` and `_` literal');
  assert.deepEqual(await found('100%'), []);
  assert.deepEqual(await found('%'), []);
  assert.deepEqual(await found('_'), []);
  assert.deepEqual(await found('a\\b'), ['backslash'], '`\\` literal');
  assert.deepEqual(await found('EMAIL|instruction_override'), [], 'a term with `|` is no single category');
  assert.deepEqual(await found('EM\u0000AIL'), ['email', 'pair'], 'NUL left out of the term, as out of the column');
});
