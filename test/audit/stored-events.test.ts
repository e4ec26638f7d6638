import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Db } from '../../src/store/db.js';
import { AuditStore, rowData } from '../../src/audit/store.js';
import { newEventId, type AuditEvent } from '../../src/audit/event.js';
import { onBothStores } from './util.js';

const now = Date.now();

/** Events whose fields the row's columns hold, each in a way the columns give back or do not. */
function events(): AuditEvent[] {
  const base = (i: number): AuditEvent => ({ id: newEventId(now + i), ts: now + i, kind: 'request' });
  return [
    {
      ...base(0),
      requestId: 'req_full',
      clientIp: '10.0.0.1',
      route: '/v1/chat/completions',
      api: 'chat',
      stream: false,
      latencyMs: 120.5,
      gatewayMs: 1.25,
      tenantId: 'ten_a',
      keyId: 'key_a',
      model: 'gpt-4o-mini',
      upstreamModel: 'gpt-4o-mini-2024',
      provider: 'openai',
      status: 200,
      upstreamMs: 119.25,
      tokensIn: 350,
      tokensOut: 120,
      costUsd: 0.000125,
      guardAction: 'flag',
      guards: [{ guard: 'pii', stage: 'request', mode: 'enforce', action: 'flag', categories: ['EMAIL', 'PHONE'], findings: 2, latencyMs: 0.3 }],
      findings: [
        { detector: 'pii.email', category: 'EMAIL', score: 0.99, spanLength: 17, role: 'user' },
        { detector: 'pii.phone', category: 'PHONE', score: 0.8, spanLength: 12, role: 'user' },
      ],
      categories: ['EMAIL', 'PHONE'],
      limits: { decision: 'admitted', estimatedInputTokens: 340, settled: 'settled' },
      policy: { operation: 'chat', decision: 'allow' },
      promptHash: 'a'.repeat(64),
      promptChars: 157,
      outputHash: 'b'.repeat(64),
      outputChars: 760,
    },
    // Nothing but what every event has.
    base(1),
    // Zero counts and cost given explicitly: the columns hold 0 for "absent" too, so the JSON keeps them.
    { ...base(2), tenantId: 'ten_a', tokensIn: 0, tokensOut: 0, costUsd: 0, status: 499, aborted: true },
    // Longer than their columns keep: whole in the JSON, cut in the columns.
    { ...base(3), requestId: 'r'.repeat(300), model: 'm'.repeat(250), guardAction: 'g'.repeat(150), tenantId: 'ten_b' },
    // Categories the `|a|b|` column cannot give back as they are.
    { ...base(4), categories: ['A|B', 'C'] },
    { ...base(5), categories: ['', 'X'] },
    { ...base(6), categories: [] },
    // Non-ASCII text in the columns and the JSON.
    { ...base(7), model: 'modèle-模型-🙂', user: 'ünïcode', tenantId: 'ten_ü', keyId: 'key_ß', tokensIn: 2 ** 40 },
    // An admin event: `action` is its column (not guardAction).
    {
      id: 'adm_42',
      ts: now + 8,
      kind: 'admin',
      action: 'key.revoke',
      actor: 'adm_root',
      actorRole: 'owner',
      tenantId: 'ten_a',
      source: '127.0.0.1',
      requestId: 'req_admin',
      targetType: 'key',
      targetId: 'key_a',
      detail: { reason: 'leaked', nested: { ok: true } },
    },
  ];
}

test('rowData leaves out the fields the columns hold exactly, and gives the event back as it was (same fields, same order)', () => {
  const [full, , zeros, long, pipes, , , , admin] = events();
  const keys = Object.keys(full!);
  const before = structuredClone(full!);
  const data = JSON.parse(rowData(full!));
  assert.deepEqual(full, before, 'the event is unchanged');
  assert.deepEqual(Object.keys(full!), keys, 'in the same key order');
  for (const k of ['id', 'ts', 'kind', 'requestId', 'tenantId', 'keyId', 'model', 'status', 'tokensIn', 'tokensOut', 'costUsd', 'guardAction', 'categories']) assert.ok(!(k in data), `${k} is left to its column`);
  assert.deepEqual(data.findings, full!.findings, 'what no column holds stays');
  assert.equal(data.upstreamModel, full!.upstreamModel);
  assert.ok(JSON.stringify(data).length < 0.8 * JSON.stringify(full).length, 'a fifth of the bytes or more');

  const z = JSON.parse(rowData(zeros!));
  assert.deepEqual([z.tokensIn, z.tokensOut, z.costUsd], [0, 0, 0], 'zeros stay in the JSON');
  const l = JSON.parse(rowData(long!));
  assert.deepEqual([l.requestId.length, l.model.length, l.guardAction.length], [300, 250, 150], 'values longer than their columns stay whole');
  assert.deepEqual(JSON.parse(rowData(pipes!)).categories, ['A|B', 'C']);
  const a = JSON.parse(rowData(admin!));
  assert.ok(!('action' in a) && a.actor === 'adm_root' && a.detail.nested.ok === true, "an admin event's action is its column");
});

async function checkRoundTrip(db: Db): Promise<void> {
  const store = new AuditStore(db.kysely, 'UTC', db.sqlite);
  try {
    const evs = events();
    const snapshot = structuredClone(evs);
    await store.insert(evs.map((event) => ({ event })));
    assert.deepEqual(evs, snapshot, 'inserting leaves the events as they were');
    for (const e of snapshot) assert.deepEqual(await store.get(e.id), e, `${e.id} reads back as it was stored`);
    const page = await store.search({ limit: 100 });
    assert.deepEqual(
      page.data.sort((a, b) => a.ts - b.ts),
      snapshot,
      'search gives the same events',
    );
    assert.equal((await store.search({ category: 'PHONE', limit: 10 })).data[0]?.id, snapshot[0]!.id, 'the columns are searched as before');

    // The stored JSON of the full event leaves out what its columns hold.
    const row = await db.kysely.selectFrom('audit_events').select(['data', 'request_id', 'model', 'action']).where('id', '=', snapshot[0]!.id).executeTakeFirstOrThrow();
    const data = JSON.parse(row.data);
    assert.ok(!('tenantId' in data) && !('requestId' in data) && !('id' in data) && data.promptHash === 'a'.repeat(64));
    const cut = await db.kysely.selectFrom('audit_events').select(['request_id', 'model', 'action']).where('id', '=', snapshot[3]!.id).executeTakeFirstOrThrow();
    assert.deepEqual([cut.request_id?.length, cut.model?.length, cut.action?.length], [128, 200, 100], 'the columns hold cut values');

    // A row as written before the JSON was trimmed (the whole event in `data`) reads back the same.
    const old: AuditEvent = { ...snapshot[0]!, id: newEventId(now + 100), ts: now + 100, requestId: 'req_old' };
    await db.kysely
      .insertInto('audit_events')
      .values({ id: old.id, ts: old.ts, day: '2026-01-01', kind: 'request', tenant_id: 'ten_a', key_id: 'key_a', request_id: 'req_old', status: 200, model: old.model!, action: 'flag', categories: '|EMAIL|PHONE|', tokens_in: 350, tokens_out: 120, cost_usd: 0.000125, data: JSON.stringify(old) })
      .execute();
    assert.deepEqual(await store.get(old.id), old);
  } finally {
    await store.close();
  }
}

onBothStores('stored events read back as they were: trimmed JSON plus columns, edge values kept, rows of the untrimmed format', 'storedev', (db) => checkRoundTrip(db));
