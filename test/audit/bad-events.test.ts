/**
 * Events a store cannot take as they are must never stop the audit trail (both stores, for real):
 * values that do not fit their columns are fitted when the row is made (and read back as they
 * were), an event the store still refuses for its data goes to the dead-letter file while every
 * other event of its batch is stored, and a spill segment holding a bad line replays to the end.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import type { Db } from '../../src/store/db.js';
import { AuditStore } from '../../src/audit/store.js';
import { AuditWriter, DEAD_LETTER_FILE } from '../../src/audit/writer.js';
import { newEventId, type AuditEvent, type QueuedEvent } from '../../src/audit/event.js';
import type { AuditModule } from '../../src/audit/module.js';
import { onBothStores } from './util.js';
import { startGateway } from '../helpers/gateway.js';
import { startMockUpstream } from '../helpers/mock-upstream.js';
import { auditEventOf } from '../helpers/audit.js';
import { PG_URL, dropSchema, pgSkipReason, uniqueSchema } from '../identity/util.js';

let n = 0;
function good(tenant = 'ten_a'): QueuedEvent {
  n++;
  return { event: { id: newEventId(), ts: Date.now(), kind: 'request', requestId: `r${n}`, tenantId: tenant, keyId: 'k1', model: 'gpt-4o', status: 200, tokensIn: 10, tokensOut: 5, costUsd: 0.001 } };
}

/** A writer over the store (its own prepare/insertPrepared: the path the gateway uses), logs kept. */
function writerFor(store: AuditStore, defer: (fn: () => unknown) => void, opts: { batchSize?: number } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'pcl-badev-'));
  defer(() => rmSync(dir, { recursive: true, force: true }));
  const logs: Array<{ o: object; m: string }> = [];
  const log = { warn: (o: object, m: string) => void logs.push({ o, m }), error: (o: object, m: string) => void logs.push({ o, m }), info: (o: object, m: string) => void logs.push({ o, m }) };
  const spill = join(dir, 'spill');
  const w = new AuditWriter({ store, spillDir: spill, queueSize: 10_000, batchSize: opts.batchSize ?? 500, flushIntervalMs: 60_000, retryIntervalMs: 60_000, log });
  return { w, spill, logs };
}

/** Makes the store refuse events whose model is `poison` (a SQLite trigger, a PostgreSQL CHECK constraint): a data error no row preparation can avoid. */
async function refusePoison(db: Db): Promise<void> {
  if (db.dialect === 'postgres') await sql`alter table audit_events add constraint no_poison check (model is distinct from 'poison')`.execute(db.kysely);
  else await sql`create trigger no_poison before insert on audit_events when new.model = 'poison' begin select raise(abort, 'poison event'); end`.execute(db.kysely);
}

const deadLines = (spill: string) => (existsSync(join(spill, DEAD_LETTER_FILE)) ? readFileSync(join(spill, DEAD_LETTER_FILE), 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l)) : []);

onBothStores('values that do not fit their columns (NUL in text, fractional or huge token counts, out-of-range status, long ids) are stored among good events and read back as they were', 'badfit', async (db, defer) => {
  const store = new AuditStore(db.kysely, 'UTC', db.sqlite);
  defer(() => store.close());
  const { w } = writerFor(store, defer);
  const base = (): AuditEvent => ({ ...good().event });
  const odd: AuditEvent[] = [
    { ...base(), model: 'gpt\u0000-4o' }, // the client's `model`: any API-key holder can send a NUL
    { ...base(), tokensIn: 10.5, tokensOut: 1e300 }, // the upstream's usage: only finite and >= 0
    { ...base(), status: 2 ** 40 },
    { ...base(), requestId: 'req\u0000id', tenantId: 't'.repeat(70), keyId: 'key\u0000', guardAction: 'fl\u0000ag' },
    { ...base(), categories: ['EM\u0000AIL', 'PHONE'], user: 'nul\u0000user' },
    { ...base(), model: 'lone \ud800 surrogate' },
  ];
  const events = [...Array.from({ length: 50 }, () => good()), ...odd.map((event) => ({ event })), ...Array.from({ length: 50 }, () => good())];
  for (const q of events) w.push(q);
  await w.flush();
  assert.deepEqual([w.stats.written, w.stats.spilled, w.stats.deadLettered, w.stats.failures, w.stats.storeDown], [events.length, 0, 0, 0, false], JSON.stringify(w.stats));
  assert.equal(await store.count(), events.length, 'every event stored');
  for (const e of odd) assert.deepEqual(await store.get(e.id), e, `${JSON.stringify(e)} reads back as it was`);
  // The columns hold fitted values: searchable, summable.
  const cols = await db.kysely.selectFrom('audit_events').select(['model', 'tokens_in', 'tokens_out', 'status', 'tenant_id', 'categories']).where('id', 'in', odd.map((e) => e.id)).orderBy('ts').execute();
  assert.ok(cols.some((r) => r.model === 'gpt-4o'), 'NUL removed from the model column');
  assert.ok(cols.some((r) => Number(r.tokens_in) === 11 && Number(r.tokens_out) === Number.MAX_SAFE_INTEGER), 'token counts rounded and clamped');
  assert.ok(cols.some((r) => Number(r.status) === 2 ** 31 - 1), 'status clamped to integer');
  assert.ok(cols.some((r) => r.tenant_id === 't'.repeat(64)), 'tenant cut to its column');
  assert.equal((await store.search({ category: 'EMAIL', limit: 10 })).data.length, 1, 'the fitted category column is searchable');
  // A cost that is not a finite number (JSON cannot hold it) is stored as 0.
  const nan = { ...base(), costUsd: Number.NaN };
  w.push({ event: nan });
  await w.close();
  assert.equal((await store.get(nan.id))?.id, nan.id);
});

onBothStores('an event the store refuses for its data goes to the dead-letter file; every other event of its batch is stored, the writer is not down, later events are stored', 'badrefuse', async (db, defer) => {
  await refusePoison(db);
  const store = new AuditStore(db.kysely, 'UTC', db.sqlite);
  defer(() => store.close());
  const { w, spill, logs } = writerFor(store, defer, { batchSize: 101 });
  const poison: QueuedEvent = { event: { ...good().event, model: 'poison' } };
  const events = [...Array.from({ length: 40 }, () => good()), poison, ...Array.from({ length: 60 }, () => good())];
  for (const q of events) w.push(q);
  await w.flush();
  assert.equal(await store.count(), 100, 'the 100 good events are stored');
  assert.equal(await store.get(poison.event.id), undefined);
  assert.deepEqual([w.stats.written, w.stats.deadLettered, w.stats.spilled, w.stats.failures, w.stats.storeDown], [100, 1, 0, 0, false], JSON.stringify(w.stats));
  const dead = deadLines(spill);
  assert.equal(dead.length, 1);
  assert.deepEqual(dead[0].event, poison.event, 'the dead-letter line holds the event as it was');
  assert.ok(typeof dead[0].error.code === 'string' && dead[0].error.code.length > 0, `with the store's error code (${JSON.stringify(dead[0].error)})`);
  assert.equal(logs.filter((l) => l.m.includes('dead-letter')).length, 1, 'logged once for the batch');
  assert.deepEqual(readdirSync(spill).filter((f) => f !== DEAD_LETTER_FILE), [], 'nothing spilled');
  // Later events, and another poison among them: the trail goes on.
  const later = [...Array.from({ length: 30 }, () => good()), { event: { ...good().event, model: 'poison' } }];
  for (const q of later) w.push(q);
  await w.close();
  assert.equal(await store.count(), 130);
  assert.equal(w.stats.deadLettered, 2);
  assert.equal(deadLines(spill).length, 2, 'appended');
});

onBothStores('a spill segment holding a line the store refuses (or that is no event) replays to the end: good events stored, bad lines dead-lettered, segment gone', 'badreplay', async (db, defer) => {
  await refusePoison(db);
  const store = new AuditStore(db.kysely, 'UTC', db.sqlite);
  defer(() => store.close());
  const { w, spill } = writerFor(store, defer, { batchSize: 10 });
  const goods = Array.from({ length: 35 }, () => good());
  const poison: QueuedEvent = { event: { ...good().event, model: 'poison' } };
  const lines = goods.map((q) => JSON.stringify(q));
  lines.splice(12, 0, JSON.stringify(poison));
  lines.splice(20, 0, '{"event":null}', '42', '{"event":{"ts":1,"kind":"request"}}');
  writeFileSync(join(spill, 'seg-1-99999997-0.jsonl'), lines.join('\n') + '\n{"event":{"id":"torn');
  assert.equal(await w.replay(), true, 'the replay finishes');
  assert.equal(w.stats.replayed, 35);
  assert.equal(await store.count(), 35);
  assert.equal(w.stats.storeDown, false);
  const dead = deadLines(spill);
  assert.equal(dead.length, 4, 'the refused event and the three lines that are no event');
  assert.ok(dead.some((d) => d.event?.id === poison.event.id));
  assert.deepEqual(readdirSync(spill).filter((f) => f !== DEAD_LETTER_FILE), [], 'no segment left to replay');
  await w.close();
});

test('through a real gateway on PostgreSQL: a model with a NUL character and fractional or huge token counts from the upstream are stored, and the trail goes on', async (t) => {
  const skip = await pgSkipReason();
  if (skip) return t.skip(skip);
  const mock = await startMockUpstream((req, res) => {
    const huge = req.body?.messages?.[0]?.content === 'huge usage';
    res.writeHead(200, { 'content-type': 'application/json' });
    // Raw JSON: 1e300 and 10.5 are what a misbehaving upstream may send (finite, >= 0: accepted as usage).
    res.end(`{"id":"c1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":${huge ? '10.5' : '3'},"completion_tokens":${huge ? '1e300' : '2'},"total_tokens":5}}`);
  });
  const schema = uniqueSchema('badgw');
  const g = await startGateway(
    {
      store: { kind: 'cluster', postgresUrl: PG_URL },
      providers: { mock: { type: 'openai', baseUrl: `${mock.url}/v1` } },
      routes: [{ model: 'mock-*', provider: 'mock' }],
      audit: { flushIntervalMs: 20, adminPollMs: 600_000 },
    },
    { pgSchema: schema },
  );
  try {
    const audit = g.gw.modules.get('audit') as AuditModule;
    const chat = async (model: string, content: string) => {
      const res = await fetch(`${g.url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${g.key}`, 'content-type': 'application/json' }, body: JSON.stringify({ model, messages: [{ role: 'user', content }] }) });
      await res.text();
      return { status: res.status, id: res.headers.get('x-request-id')! };
    };
    const nul = await chat('mock-a\u0000b', 'hello');
    const huge = await chat('mock-1', 'huge usage');
    const after = await Promise.all(Array.from({ length: 20 }, () => chat('mock-1', 'hello')));
    const e1 = await auditEventOf(audit, nul.id);
    assert.equal(e1.model, 'mock-a\u0000b', 'the model reads back as the client sent it');
    const e2 = await auditEventOf(audit, huge.id);
    assert.deepEqual([e2.tokensIn, e2.tokensOut], [10.5, 1e300], 'token counts read back as the upstream reported them');
    for (const r of after) assert.equal((await auditEventOf(audit, r.id)).status, r.status);
    assert.deepEqual([audit.writer.stats.storeDown, audit.writer.stats.spilled, audit.writer.stats.deadLettered, audit.writer.stats.failures], [false, 0, 0, 0], JSON.stringify(audit.writer.stats));
  } finally {
    await g.close();
    await mock.close();
    await dropSchema(schema);
  }
});
