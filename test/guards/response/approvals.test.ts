/**
 * The approval flow end to end with the official openai client: a tool call that needs a human
 * is held back with a ticket, an admin approves or denies it (admin API and CLI), a retry of the
 * same request with `x-portcullis-approval` releases exactly that call once; all audited.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Command } from 'commander';
import OpenAI from 'openai';
import { registerApprovalsCommand } from '../../../src/cli/approvals.js';
import type { AdminModule } from '../../../src/server/admin/module.js';
import { startGateway, type TestGateway } from '../../helpers/gateway.js';
import { startMockUpstream, type MockUpstream } from '../../helpers/mock-upstream.js';
import { postSse, scriptedChat } from './helpers.js';

/** Runs `portcullis <args>` in process (the same code as the binary) and returns what it printed. */
async function cli(args: string[]): Promise<string> {
  const program = new Command().exitOverride();
  registerApprovalsCommand(program);
  let out = '';
  const write = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((chunk: string | Uint8Array) => ((out += String(chunk)), true)) as typeof process.stdout.write;
  try {
    await program.parseAsync(['node', 'portcullis', ...args]);
  } finally {
    process.stdout.write = write;
  }
  return out;
}

const TOOLS: OpenAI.Chat.Completions.ChatCompletionTool[] = [
  { type: 'function', function: { name: 'send_payment', description: 'Sends money.', parameters: { type: 'object', properties: { to: { type: 'string' }, amount: { type: 'number' } }, required: ['to', 'amount'] } } },
  { type: 'function', function: { name: 'run_sql', description: 'SQL on the sales DB.', parameters: { type: 'object', properties: { query: { type: 'string' } }, required: ['query'] } } },
];

describe('approvals', () => {
  let gw: TestGateway;
  let mock: MockUpstream;
  let client: OpenAI;
  let owner: string;
  let auditor: string;
  let amount = 120;
  const body = (): OpenAI.Chat.Completions.ChatCompletionCreateParamsNonStreaming => ({ model: 'gpt-4o', messages: [{ role: 'user', content: 'Pay the Oslo supplier invoice 7.' }], tools: TOOLS });
  const admin = async (key: string, method: string, path: string, b?: unknown) => {
    const r = await fetch(gw.url + path, { method, headers: { authorization: `Bearer ${key}`, ...(b !== undefined ? { 'content-type': 'application/json' } : {}) }, ...(b !== undefined ? { body: JSON.stringify(b) } : {}) });
    return { status: r.status, body: (await r.json()) as any };
  };
  const ticketOf = async (p: Promise<unknown>): Promise<string> => {
    let ticket = '';
    await assert.rejects(p, (e: any) => {
      assert.equal(e.status, 403);
      assert.equal(e.code, 'approval_required');
      ticket = e.error.approval.tickets[0].ticket;
      assert.match(ticket, /^apr_[0-9a-f]{24}$/);
      assert.equal(e.error.approval.tickets[0].tool, 'send_payment');
      assert.equal(e.headers.get('x-portcullis-approval-ticket'), ticket);
      return true;
    });
    return ticket;
  };

  before(async () => {
    mock = await startMockUpstream((req, res) => scriptedChat(req, res, [], [{ name: 'send_payment', arguments: JSON.stringify({ to: 'supplier-oslo', amount }) }]));
    gw = await startGateway({
      providers: { mock: { type: 'openai', baseUrl: mock.url + '/v1' } },
      routes: [{ model: 'gpt-*', provider: 'mock' }],
      guards: { tools: { requireApproval: ['send_payment'], sql: { run_sql: { allowedTables: ['orders'], allowWrites: 'approval' } } }, approvals: { ttlSeconds: 600 } },
    });
    client = new OpenAI({ apiKey: gw.key, baseURL: gw.url + '/v1', maxRetries: 0 });
    const lc = (gw.gw.modules.get('admin') as AdminModule).lifecycle;
    owner = (await lc.createAdminKey({ id: 'test', source: 'test' }, { name: 'owner', role: 'owner' })).key;
    auditor = (await lc.createAdminKey({ id: 'test', source: 'test' }, { name: 'aud', role: 'auditor' })).key;
  });
  after(async () => {
    await gw?.close();
    await mock?.close();
  });

  test('held back, approved by an admin, released once for exactly the same call', async () => {
    const ticket = await ticketOf(client.chat.completions.create(body()));
    // Retrying before a decision answers with the same ticket.
    assert.equal(await ticketOf(client.chat.completions.create(body(), { headers: { 'x-portcullis-approval': ticket } })), ticket);
    const list = await admin(owner, 'GET', '/admin/v1/approvals?status=pending');
    const t = list.body.data.find((x: any) => x.id === ticket);
    assert.equal(t.tool, 'send_payment');
    assert.equal(JSON.parse(t.arguments).amount, 120, 'the reviewer sees the arguments');
    assert.equal((await admin(auditor, 'POST', `/admin/v1/approvals/${ticket}/approve`, {})).status, 403, 'auditors cannot decide');
    const ok = await admin(owner, 'POST', `/admin/v1/approvals/${ticket}/approve`, { reason: 'invoice checked' });
    assert.equal(ok.status, 200);
    assert.equal(ok.body.status, 'approved');

    const res = await client.chat.completions.create(body(), { headers: { 'x-portcullis-approval': ticket } });
    const call = res.choices[0]!.message.tool_calls![0] as any;
    assert.equal(call.function.name, 'send_payment');
    assert.deepEqual(JSON.parse(call.function.arguments), { to: 'supplier-oslo', amount: 120 });
    // Single use: the same ticket again yields a new ticket.
    const again = await ticketOf(client.chat.completions.create(body(), { headers: { 'x-portcullis-approval': ticket } }));
    assert.notEqual(again, ticket);
    const used = await admin(owner, 'GET', `/admin/v1/approvals/${ticket}`);
    assert.equal(used.body.status, 'used');
    const events = await gw.gw.db.kysely.selectFrom('admin_events').select(['action']).where('target_id', '=', ticket).execute();
    assert.deepEqual(events.map((e) => e.action).sort(), ['approval.approve', 'approval.request', 'approval.use']);
  });

  test('an approved ticket does not release a different call or a different request', async () => {
    amount = 130;
    const ticket = await ticketOf(client.chat.completions.create(body()));
    await admin(owner, 'POST', `/admin/v1/approvals/${ticket}/approve`, {});
    amount = 999_999; // the model now proposes other arguments
    const other = await ticketOf(client.chat.completions.create(body(), { headers: { 'x-portcullis-approval': ticket } }));
    assert.notEqual(other, ticket);
    amount = 130;
    const changedRequest = { ...body(), messages: [{ role: 'user' as const, content: 'Pay invoice 8 instead.' }] };
    assert.notEqual(await ticketOf(client.chat.completions.create(changedRequest, { headers: { 'x-portcullis-approval': ticket } })), ticket);
    // Another key cannot use it either.
    const otherKey = await gw.newKey('default', 'other-service');
    const c2 = new OpenAI({ apiKey: otherKey, baseURL: gw.url + '/v1', maxRetries: 0 });
    await ticketOf(c2.chat.completions.create(body(), { headers: { 'x-portcullis-approval': ticket } }));
    // The original request still works with it (stream this time).
    const s = await postSse(gw.url + '/v1/chat/completions', gw.key, { ...body(), stream: true }, { 'x-portcullis-approval': ticket });
    const args = s.events.flatMap((e) => e.json?.choices?.[0]?.delta?.tool_calls ?? []).map((t: any) => t.function.arguments).join('');
    assert.deepEqual(JSON.parse(args), { to: 'supplier-oslo', amount: 130 });
  });

  test('denied with the CLI: the retry is refused with approval_denied; streams get an error event', async () => {
    amount = 140;
    const ticket = await ticketOf(client.chat.completions.create(body()));
    const listed = await cli(['approvals', 'list', '--url', gw.url, '--admin-key', owner, '--json']);
    assert.ok(JSON.parse(listed).data.some((x: any) => x.id === ticket));
    assert.match(await cli(['approvals', 'deny', ticket, '--reason', 'not expected', '--url', gw.url, '--admin-key', owner]), new RegExp(`^${ticket} denied tool=send_payment`));
    await assert.rejects(client.chat.completions.create(body(), { headers: { 'x-portcullis-approval': ticket } }), (e: any) => e.status === 403 && e.code === 'approval_denied');
    const s = await postSse(gw.url + '/v1/chat/completions', gw.key, { ...body(), stream: true });
    const err = s.events.find((e) => e.json?.error);
    assert.equal(err?.json.error.code, 'approval_required');
    assert.match(err?.json.error.message, /apr_[0-9a-f]{24}/);
    assert.ok(!s.events.some((e) => e.json?.choices?.[0]?.delta?.tool_calls), 'the held call never reached the client');
  });

  test('SQL writes on a tool with allowWrites: approval need a ticket', async () => {
    mock.handler = (req, res) => scriptedChat(req, res, [], [{ name: 'run_sql', arguments: JSON.stringify({ query: "UPDATE orders SET status = 'void' WHERE id = 7" }) }]);
    await assert.rejects(client.chat.completions.create({ ...body(), messages: [{ role: 'user', content: 'Void order 7.' }] }), (e: any) => e.code === 'approval_required' && e.error.approval.tickets[0].tool === 'run_sql');
  });
});
