import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createPipeline, GuardRegistrationError } from '../../src/guards/pipeline.js';
import { inspect, writeBack } from '../../src/guards/inspect.js';
import type { Guard, GuardInput, Verdict } from '../../src/guards/types.js';

function guard(name: string, cost: Guard['cost'], fn: (i: GuardInput) => Verdict | Promise<Verdict>, extra: Partial<Guard> = {}): Guard & { calls: number } {
  const g = { name, stages: ['request'] as const, cost, timeoutMs: 200, failMode: 'closed' as const, mode: 'enforce' as const, calls: 0, ...extra, check(i: GuardInput) { g.calls++; return fn(i); } };
  return g as any;
}
const segs = [{ id: 's0', role: 'user' as const, trust: 'trusted' as const, text: 'hello', path: ['text'] }];

test('unknown stages and duplicate names are rejected at registration', () => {
  assert.throws(() => createPipeline([guard('a', 'cheap', () => ({ action: 'allow' }), { stages: ['prerequest' as any] })]), GuardRegistrationError);
  assert.throws(() => createPipeline([guard('a', 'cheap', () => ({ action: 'allow' })), guard('a', 'cheap', () => ({ action: 'allow' }))]), /duplicate/);
});

test('cheap guards run first and the first block stops the run', async () => {
  const order: string[] = [];
  const model = guard('judge', 'model', () => { order.push('judge'); return { action: 'allow' }; });
  const blocker = guard('rules', 'cheap', () => { order.push('rules'); return { action: 'block', findings: [], categories: ['instruction_override'] }; });
  const mid = guard('mid', 'moderate', () => { order.push('mid'); return { action: 'allow' }; });
  const p = createPipeline([model, mid, blocker]);
  const state: Record<string, unknown> = {};
  const out = await p.run('request', segs, { api: 'text', state });
  assert.deepEqual(order, ['rules']);
  assert.equal(out.action, 'block');
  assert.equal(out.decidedBy, 'rules');
  assert.deepEqual(out.categories, ['instruction_override']);
  assert.equal((state.guards as any[]).length, 1);
  assert.equal(model.calls, 0);
});

test('transforms are applied in order and later guards see the rewritten text', async () => {
  const a = guard('a', 'cheap', (i) => ({ action: 'transform', findings: [], categories: ['X'], rewrites: { s0: i.segments[0]!.text.toUpperCase() } }));
  let seen = '';
  const b = guard('b', 'moderate', (i) => { seen = i.segments[0]!.text; return { action: 'flag', findings: [], categories: ['Y'] }; });
  const out = await createPipeline([b, a]).run('request', segs, { api: 'text' });
  assert.equal(seen, 'HELLO');
  assert.equal(out.action, 'transform');
  assert.equal(out.segments[0]!.text, 'HELLO');
  assert.deepEqual([...out.changed], ['s0']);
  assert.deepEqual(out.categories.sort(), ['X', 'Y']);
});

test('fail-closed timeouts block with failed=true; fail-open ones pass; both are recorded', async () => {
  const slow = (fm: 'open' | 'closed') => guard('slow-' + fm, 'model', () => new Promise<Verdict>((r) => setTimeout(() => r({ action: 'allow' }), 2000).unref()), { timeoutMs: 30, failMode: fm });
  const t0 = Date.now();
  const closed = await createPipeline([slow('closed')]).run('request', segs, { api: 'text' });
  assert.ok(Date.now() - t0 < 1000);
  assert.equal(closed.action, 'block');
  assert.equal(closed.failed, true);
  assert.equal(closed.records[0]!.error, 'timeout');
  const open = await createPipeline([slow('open')]).run('request', segs, { api: 'text' });
  assert.equal(open.action, 'allow');
  assert.equal(open.records[0]!.error, 'timeout');
  const thrower = guard('boom', 'cheap', () => { throw new Error('x'); });
  const e = await createPipeline([thrower]).run('request', segs, { api: 'text' });
  assert.equal(e.action, 'block');
  assert.equal(e.records[0]!.error, 'error');
});

test('the guard signal: aborted by the timeout and by the outer signal, also when first read late', async () => {
  // Aborted when the guard's timeout fires.
  let seen: AbortSignal | undefined;
  const waits = guard('waits', 'model', (i) => new Promise<Verdict>((r) => { seen = i.signal; setTimeout(() => r({ action: 'allow' }), 2000).unref(); }), { timeoutMs: 30 });
  assert.equal((await createPipeline([waits]).run('request', segs, { api: 'text' })).records[0]!.error, 'timeout');
  assert.equal(seen!.aborted, true);
  // Follows the outer signal: the guard gives up as soon as the client goes away.
  const outer = new AbortController();
  const listens = guard('listens', 'model', (i) => new Promise<Verdict>((_, reject) => i.signal.addEventListener('abort', () => reject(new Error('aborted')))), { timeoutMs: 5000, failMode: 'open' });
  setTimeout(() => outer.abort(new Error('client gone')), 20).unref();
  const t0 = Date.now();
  const r = await createPipeline([listens]).run('request', segs, { api: 'text', signal: outer.signal });
  assert.ok(Date.now() - t0 < 1000);
  assert.equal(r.records[0]!.error, 'error');
  // Read for the first time after the timeout: already aborted.
  let late: Promise<boolean> | undefined;
  const lateReader = guard('late', 'model', (i) => { late = new Promise((r) => setTimeout(() => r(i.signal.aborted), 80)); return new Promise<Verdict>(() => {}); }, { timeoutMs: 30, failMode: 'open' });
  await createPipeline([lateReader]).run('request', segs, { api: 'text' });
  assert.equal(await late, true);
  // An outer signal already aborted is passed on.
  const gone = new AbortController();
  gone.abort();
  let sync: boolean | undefined;
  await createPipeline([guard('sync', 'cheap', (i) => { sync = i.signal.aborted; return { action: 'allow' }; })]).run('request', segs, { api: 'text', signal: gone.signal });
  assert.equal(sync, true);
});

test('shadow guards are recorded but never act', async () => {
  const g = guard('shadowed', 'cheap', () => ({ action: 'block', findings: [], categories: ['PII'] }), { mode: 'shadow' });
  const out = await createPipeline([g]).run('request', segs, { api: 'text' });
  assert.equal(out.action, 'allow');
  assert.equal(out.records[0]!.action, 'block');
  assert.equal(out.records[0]!.applied, false);
  const failing = guard('sf', 'cheap', () => { throw new Error('x'); }, { mode: 'shadow' });
  assert.equal((await createPipeline([failing]).run('request', segs, { api: 'text' })).action, 'allow');
});

test('inspect: roles, trust, the retrieved convention and write-back', () => {
  const body = {
    model: 'm',
    messages: [
      { role: 'system', content: 'sys' },
      { role: 'user', content: [{ type: 'text', text: 'q' }, { type: 'text', text: 'doc', portcullis_trust: 'untrusted' }] },
      { role: 'user', name: 'retrieved:kb', content: 'kb text' },
      { role: 'assistant', content: null, tool_calls: [{ id: 't', type: 'function', function: { name: 'f', arguments: '{"a":1}' } }] },
      { role: 'tool', tool_call_id: 't', content: 'tool out' },
    ],
  };
  const ins = inspect('chat', body);
  assert.deepEqual(ins.segments.map((s) => [s.role, s.trust, s.text]), [
    ['system', 'trusted', 'sys'], ['user', 'trusted', 'q'], ['retrieved', 'untrusted', 'doc'], ['retrieved', 'untrusted', 'kb text'], ['assistant', 'trusted', '{"a":1}'], ['tool', 'untrusted', 'tool out'],
  ]);
  const segsOut = ins.segments.map((s) => (s.id === 's5' ? { ...s, text: 'TOOL' } : s));
  const nb = writeBack(ins, body, segsOut, new Set(['s5']), ['NOTE']) as any;
  assert.equal(nb.messages[5].content, 'TOOL');
  assert.equal(nb.messages[1].role, 'system');
  assert.equal(nb.messages[1].content, 'NOTE');
  assert.equal('portcullis_trust' in nb.messages[2].content[1], false);
  assert.equal((body.messages[1] as any).content[1].portcullis_trust, 'untrusted', 'original untouched');

  const a = inspect('messages', { system: 'S', messages: [{ role: 'user', content: [{ type: 'tool_result', tool_use_id: 'x', content: [{ type: 'text', text: 'r' }] }, { type: 'document', source: { type: 'text', media_type: 'text/plain', data: 'D' } }] }] });
  assert.deepEqual(a.segments.map((s) => [s.role, s.text, s.path.join('.')]), [['system', 'S', 'system'], ['tool', 'r', 'messages.0.content.0.content.0.text'], ['retrieved', 'D', 'messages.0.content.1.source.data']]);
  const r = inspect('responses', { instructions: 'I', input: [{ role: 'user', content: [{ type: 'input_text', text: 'u' }] }, { type: 'function_call_output', call_id: 'c', output: 'o' }] });
  assert.deepEqual(r.segments.map((s) => [s.role, s.trust]), [['system', 'trusted'], ['user', 'trusted'], ['tool', 'untrusted']]);
  assert.deepEqual(inspect('embeddings', { input: ['a', 'b'] }).segments.map((s) => s.path.join('.')), ['input.0', 'input.1']);
  assert.deepEqual(inspect('completions', { prompt: 'p' }).segments.map((s) => s.text), ['p']);
});

test('inspect: unfamiliar parts are read by their text fields, binary and ids are not; token ids go through the codec', async () => {
  const png = 'iVBORw0KGgo' + 'A'.repeat(64);
  const a = inspect('messages', {
    model: 'm',
    messages: [
      { role: 'user', content: [{ type: 'image', source: { type: 'base64', media_type: 'image/png', data: png } }, { type: 'search_result', source: 'https://kb/1', title: 'T', content: [{ type: 'text', text: 'R' }], citations: { enabled: true } }] },
      { role: 'assistant', content: [{ type: 'web_search_tool_result', tool_use_id: 'w', content: [{ type: 'web_search_result', url: 'https://x', title: 'W', encrypted_content: png }] }, { type: 'redacted_thinking', data: png }] },
    ],
  });
  assert.deepEqual(a.segments.map((s) => [s.role, s.trust, s.text, s.path.join('.')]), [
    ['retrieved', 'untrusted', 'https://kb/1', 'messages.0.content.1.source'],
    ['retrieved', 'untrusted', 'T', 'messages.0.content.1.title'],
    ['retrieved', 'untrusted', 'R', 'messages.0.content.1.content.0.text'],
    ['tool', 'untrusted', 'W', 'messages.1.content.0.content.0.title'],
  ]);

  // Server tool results are tool output wherever they sit (here in an assistant turn); a fetched
  // page's text source is read, a base64 one is not.
  const w = inspect('messages', {
    messages: [
      { role: 'assistant', content: [
        { type: 'server_tool_use', id: 'st', name: 'web_fetch', input: { url: 'https://x' } },
        { type: 'web_fetch_tool_result', tool_use_id: 'st', content: { type: 'web_fetch_result', url: 'https://x', content: { type: 'document', source: { type: 'text', media_type: 'text/plain', data: 'page text' }, title: 'Page' } } },
        { type: 'mcp_tool_result', tool_use_id: 'm', is_error: false, content: [{ type: 'text', text: 'mcp out' }] },
        { type: 'code_execution_tool_result', tool_use_id: 'c', content: { type: 'code_execution_result', stdout: 'out', stderr: '', return_code: 0, content: [{ type: 'code_execution_output', file_id: 'f' }] } },
        { type: 'web_fetch_tool_result', tool_use_id: 'st2', content: { type: 'web_fetch_result', url: 'https://y', content: { type: 'document', source: { type: 'base64', media_type: 'application/pdf', data: png } } } },
      ] },
    ],
  });
  assert.deepEqual(w.segments.map((s) => [s.role, s.text]), [
    ['assistant', 'web_fetch'], ['tool', 'page text'], ['tool', 'Page'], ['tool', 'mcp out'], ['tool', 'out'],
  ]);

  // A toy codec: one id per character code (undefined for ids outside its vocabulary, as the real one).
  const codec = { decode: (ids: readonly number[]) => (ids.every((i) => i <= 0xffff) ? String.fromCharCode(...ids) : undefined), encode: (t: string) => [...t].map((c) => c.charCodeAt(0)) };
  const ids = (t: string) => codec.encode(t);
  const body = { model: 'm', prompt: [ids('ab'), ids('secret'), [70_000]], suffix: 'tail' };
  const c = inspect('completions', body, { tokenCodec: (m) => (m === 'm' ? codec : undefined) });
  assert.deepEqual(c.segments.map((s) => [s.text, s.path.join('.')]), [['ab', 'prompt.0'], ['secret', 'prompt.1'], ['tail', 'suffix']]);
  assert.deepEqual(c.undecodedTokens, [['prompt', 2]]);
  const out = writeBack(c, body, c.segments.map((s) => (s.text === 'secret' ? { ...s, text: '[X]' } : s)), new Set(['s1'])) as any;
  assert.deepEqual(out.prompt[1], ids('[X]'), 'written back as token ids');
  assert.deepEqual(out.prompt[0], ids('ab'));
  assert.deepEqual(inspect('embeddings', { model: 'other', input: ids('xy') }).undecodedTokens, [['input']], 'no codec for the model');
  assert.deepEqual(inspect('embeddings', { model: 'm', input: ids('xy') }, { tokenCodec: () => codec }).segments.map((s) => s.text), ['xy']);
  const r = inspect('responses', {
    input: [
      { type: 'reasoning', id: 'rs_1', summary: [{ type: 'summary_text', text: 'plan' }], encrypted_content: 'gAAA' },
      { type: 'mcp_call', id: 'mc_1', server_label: 'kb', name: 'lookup', arguments: '{"q":1}', output: 'tool said' },
      { type: 'file_search_call', id: 'fs_1', queries: ['q'], results: [{ file_id: 'f', filename: 'a.txt', text: 'doc text' }] },
      { type: 'local_shell_call_output', id: 'ls_1', output: 'shell out' },
      { type: 'image_generation_call', id: 'ig_1', result: 'iVBORw0KGgo' },
      { type: 'item_reference', id: 'msg_1' },
      { type: 'constructor', text: 'unknown item' },
    ],
  });
  assert.deepEqual(r.segments.map((s) => [s.role, s.text]), [
    ['assistant', 'plan'], ['assistant', 'kb'], ['assistant', 'lookup'], ['assistant', '{"q":1}'], ['tool', 'tool said'],
    ['assistant', 'q'], ['retrieved', 'a.txt'], ['retrieved', 'doc text'], ['tool', 'shell out'], ['tool', 'unknown item'],
  ]);
  assert.deepEqual(inspect('chat', { messages: [{ role: 'user', content: 'q' }], prediction: { type: 'content', content: [{ type: 'text', text: 'draft' }] } }).segments.map((s) => s.path.join('.')), ['messages.0.content', 'prediction.content.0.text']);
  // Responses prompt-template variables: texts and input items are user input; images and file ids are not text.
  const pv = { prompt: { id: 'pmpt_1', variables: { name: 'Ada', doc: { type: 'input_text', text: 'the doc' }, pic: { type: 'input_image', image_url: 'https://img.example/a.png' } } }, input: 'hi' };
  const pr = inspect('responses', pv);
  assert.deepEqual(pr.segments.map((s) => [s.role, s.path.join('.'), s.text]), [['user', 'prompt.variables.name', 'Ada'], ['user', 'prompt.variables.doc.text', 'the doc'], ['user', 'input', 'hi']]);
  const pw = writeBack(pr, pv, pr.segments.map((s) => (s.text === 'Ada' ? { ...s, text: '[NAME]' } : s)), new Set([pr.segments[0]!.id])) as any;
  assert.equal(pw.prompt.variables.name, '[NAME]', 'a redacted variable is written back in place');
});

test('engine: undecodable token ids are refused by default and forwarded unscanned with limits.undecodableTokens: pass', async () => {
  const { createGuardEngine, GuardInputError } = await import('../../src/guards/engine.js');
  const refuse = createGuardEngine({});
  await assert.rejects(refuse.runRequest('completions', { model: 'x', prompt: [1, 2, 3] }, {}), (e: unknown) => e instanceof GuardInputError && (e as InstanceType<typeof GuardInputError>).path.join('.') === 'prompt');
  const pass = createGuardEngine({ limits: { undecodableTokens: 'pass' } });
  const run = await pass.runRequest('completions', { model: 'x', prompt: [1, 2, 3] }, {});
  assert.equal(run.outcome.action, 'allow');
  assert.deepEqual(run.body.prompt, [1, 2, 3]);
  await refuse.close();
  await pass.close();
});
