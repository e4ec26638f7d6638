/**
 * Audit events have a small bounded size whatever the client or the upstream sends: text that
 * comes from them (model names, end user, client address, codes, policy, guard, finding and
 * approval fields) is cut — as a copy, not a view that keeps the long original alive — and the
 * cut fields are named in `truncated`. Through a real gateway on both stores (admin API and
 * store), and on `requestEvent` for the fields no request can make long today.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { defaultChat, startMockUpstream } from '../helpers/mock-upstream.js';
import { auditEventOf } from '../helpers/audit.js';
import { adminApi, adminKey, dropSchema, PG_URL, pgSkipReason, uniqueSchema } from '../identity/util.js';
import type { AuditModule } from '../../src/audit/module.js';
import { cutText, requestEvent, EVENT_TEXT_MAX, type AuditEvent } from '../../src/audit/event.js';
import type { RequestContext } from '../../src/server/context.js';

const cleanups: Array<() => Promise<unknown>> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

const MB = 1 << 20;
/** Small enough for a request event with a few guards and findings; a 1 MB field is far beyond. */
const SMALL = 4096;

async function checkGateway(raw: Record<string, unknown>, pgSchema?: string): Promise<void> {
  // The upstream answers every request with a 1 MB model name of its own.
  const upstreamModel = 'up-' + 'U'.repeat(MB);
  const mock = await startMockUpstream((req, res) => defaultChat({ ...req, body: { ...req.body, model: upstreamModel } }, res));
  cleanups.push(() => mock.close());
  const g: TestGateway = await startGateway(
    { ...raw, providers: { mock: { type: 'openai', baseUrl: `${mock.url}/v1` } }, routes: [{ model: 'mock-*', provider: 'mock' }], audit: { flushIntervalMs: 20, adminPollMs: 600_000 } },
    pgSchema ? { pgSchema } : {},
  );
  cleanups.push(() => g.close());
  const audit = g.gw.modules.get('audit') as AuditModule;
  const owner = await adminKey(g.gw, 'owner');
  const chat = async (model: string) => {
    const res = await fetch(`${g.url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${g.key}`, 'content-type': 'application/json' }, body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }] }) });
    const body = await res.text();
    return { status: res.status, id: res.headers.get('x-request-id')!, body };
  };

  // A model name of 1 MB is never routed (404); one of 256 characters (the longest the router
  // takes) goes upstream as it is, so the event's upstreamModel is the client's too.
  const unrouted = 'mock-' + 'u'.repeat(MB);
  const routed = 'mock-' + 'r'.repeat(251);
  const a = await chat(routed);
  assert.equal(a.status, 200);
  assert.ok(a.body.length > MB, 'the upstream answered with its 1 MB model name');
  assert.equal(mock.requests.at(-1)?.body.model, routed, 'the upstream got the model as sent');
  const b = await chat(unrouted);
  assert.equal(b.status, 404);

  for (const [r, model, flags] of [
    [a, routed, ['model', 'upstreamModel']],
    [b, unrouted, ['model']],
  ] as const) {
    const stored = await auditEventOf(audit, r.id);
    const viaApi = await adminApi(g.url, owner, 'GET', `/admin/v1/audit/${stored.id}`);
    assert.equal(viaApi.status, 200);
    for (const ev of [stored, viaApi.body as AuditEvent]) {
      assert.equal(ev.model, model.slice(0, EVENT_TEXT_MAX.model), 'the model cut to 200 characters');
      if (flags.length === 2) assert.equal(ev.upstreamModel, model.slice(0, EVENT_TEXT_MAX.model));
      else assert.equal(ev.upstreamModel, undefined);
      assert.deepEqual(ev.truncated, flags);
      assert.ok(JSON.stringify(ev).length < SMALL, `event of ${JSON.stringify(ev).length} characters`);
      assert.ok(!JSON.stringify(ev).includes('UUUU'), 'nothing of the model name the upstream answered with');
    }
    // The row: the cut model fits its column (so the JSON does not repeat it) and reads back as is.
    const row = await g.gw.db.kysely.selectFrom('audit_events').select(['model', 'data']).where('id', '=', stored.id).executeTakeFirstOrThrow();
    assert.equal(row.model, stored.model);
    assert.ok(row.data.length < SMALL, `data column of ${row.data.length} characters`);
    assert.ok(!row.data.includes(model.slice(0, 300)));
  }
  // The trail is searchable by the stored (cut) model.
  const usage = await adminApi(g.url, owner, 'GET', `/admin/v1/usage?groupBy=model&model=${encodeURIComponent(routed.slice(0, 200))}`);
  assert.equal(usage.body.total.requests, 1);
}

test('a 1 MB model name, a long routed one and an upstream answering with a 1 MB model name make small events, the models cut and flagged (SQLite)', async () => {
  await checkGateway({});
});

test('a 1 MB model name, a long routed one and an upstream answering with a 1 MB model name make small events, the models cut and flagged (PostgreSQL)', async (t) => {
  const skip = await pgSkipReason();
  if (skip) return t.skip(skip);
  const schema = uniqueSchema('evcap');
  cleanups.push(() => dropSchema(schema));
  await checkGateway({ store: { kind: 'cluster', postgresUrl: PG_URL } }, schema);
});

/** A finished request context carrying long client- and upstream-supplied values everywhere the event reads one. */
function longContext(model: string): RequestContext {
  const long = (c: string) => c.repeat(10_000);
  return {
    requestId: 'req_caps',
    api: 'chat',
    route: '/v1/chat/completions',
    startedAt: performance.now(),
    clientIp: long('1'),
    principal: { tenantId: 'ten_a', keyId: 'k1', user: long('u') } as RequestContext['principal'],
    model,
    upstreamModel: model,
    stream: false,
    body: {},
    responseHeaders: {},
    status: 403,
    errorCode: long('e'),
    state: {
      policy: { operation: long('o'), decision: 'deny', reason: long('r'), layer: long('l') },
      guards: Array.from({ length: 300 }, (_, i) => ({ guard: `g${i}` + long('g'), stage: 'request', mode: 'enforce', action: 'flag', categories: Array.from({ length: 500 }, (_, j) => `c${i}.${j}`), findings: 1, error: long('x') })),
      guardRun: { outcome: { action: 'flag', findings: [{ detector: 'pii', category: 'EMAIL', start: 0, end: 5, segment: 's1' }], segments: [{ id: 's1', role: long('R') }] } },
      approvals: Array.from({ length: 300 }, (_, i) => ({ event: 'requested', ticket: `t${i}`, tool: long('T') })),
    },
  } as RequestContext;
}

test('requestEvent cuts every client- or upstream-supplied field, names it in `truncated`, and keeps short values as they are', () => {
  const ev = requestEvent(longContext('m'.repeat(MB)), Buffer.alloc(32));
  assert.deepEqual([...ev.truncated!].sort(), ['approvals', 'categories', 'clientIp', 'errorCode', 'findings', 'guards', 'model', 'operation', 'policy', 'upstreamModel', 'user'].sort());
  assert.equal(ev.model!.length, 200);
  assert.equal(ev.upstreamModel!.length, 200);
  assert.equal(ev.user!.length, 256);
  assert.equal(ev.clientIp!.length, 100);
  assert.equal(ev.errorCode!.length, 100);
  assert.equal(ev.operation!.length, 100);
  assert.equal(ev.policy!.reason!.length, 100);
  assert.equal(ev.guards!.length, 100);
  assert.ok(ev.guards!.every((g) => g.guard.length <= 100 && g.error!.length === 100 && g.categories.length === 100));
  assert.equal(ev.categories!.length, 200);
  assert.equal(ev.findings![0]!.role!.length, 100);
  assert.equal(ev.approvals!.length, 100);
  assert.ok(ev.approvals!.every((a) => a.tool!.length === 100 && a.ticket!.startsWith('t')));
  // Bounded: ~1.5 MB of JSON before the caps would be millions of characters here.
  assert.ok(JSON.stringify(ev).length < 300_000, `${JSON.stringify(ev).length}`);

  // Short values stay as they are and the event carries no flag.
  const short = longContext('gpt-4o');
  Object.assign(short, { clientIp: '127.0.0.1', errorCode: 'permission_denied', principal: { tenantId: 'ten_a', user: 'alice' } });
  short.state = { policy: { operation: 'chat', decision: 'deny', reason: 'model_not_allowed', layer: 'tenant' } };
  const ok = requestEvent(short, Buffer.alloc(32));
  assert.equal(ok.truncated, undefined);
  assert.deepEqual([ok.model, ok.upstreamModel, ok.user, ok.clientIp, ok.errorCode, ok.policy?.reason], ['gpt-4o', 'gpt-4o', 'alice', '127.0.0.1', 'permission_denied', 'model_not_allowed']);
});

test('a cut never splits a surrogate pair and keeps lone surrogates as they were', () => {
  const pair = '\ud83d\ude00';
  assert.equal(cutText('a'.repeat(199) + pair + 'b', 200), 'a'.repeat(199));
  assert.equal(cutText('a'.repeat(198) + pair + 'b', 200), 'a'.repeat(198) + pair);
  assert.equal(cutText('\ud800'.repeat(300), 200), '\ud800'.repeat(200));
  assert.equal(cutText('a'.repeat(199) + '\ud800b', 200), 'a'.repeat(199) + '\ud800');
  assert.equal(cutText('short', 200), 'short');
});

test('events made from requests with a 2 MB model do not keep the 2 MB alive (40 queued events: < 16 MB of heap)', () => {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  gc();
  const before = process.memoryUsage().heapUsed;
  const kept: AuditEvent[] = [];
  for (let i = 0; i < 40; i++) {
    // A fresh string each time (as each request body parses into its own), dropped after the event.
    // A flat string on the heap, as parsing a request body makes (`repeat` alone builds a tree of a few shared nodes).
    const model = JSON.parse(JSON.stringify(`${i}:` + 'm'.repeat(2 * MB))) as string;
    const ctx = { requestId: `req_${i}`, api: 'chat', route: '/v1/chat/completions', startedAt: performance.now(), clientIp: '127.0.0.1', model, upstreamModel: model, stream: false, body: {}, responseHeaders: {}, status: 404, state: {} } as RequestContext;
    kept.push(requestEvent(ctx, Buffer.alloc(32)));
  }
  gc();
  const grown = process.memoryUsage().heapUsed - before;
  assert.equal(kept.length, 40);
  assert.ok(grown < 16 * MB, `heap grew by ${Math.round(grown / MB)} MB holding 40 events`);
});
