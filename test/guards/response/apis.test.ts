/**
 * Streams of the other APIs (Responses, legacy completions) and shadow mode: redaction across
 * deltas, the Responses terminal event on a block, function calls held until validated, and
 * shadow mode leaving the output untouched while recording what it would have done.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ServerResponse } from 'node:http';
import { startGateway, type TestGateway } from '../../helpers/gateway.js';
import { startMockUpstream, type MockUpstream, type Recorded } from '../../helpers/mock-upstream.js';
import { postJson, postSse, scriptedChat, scriptedResponses } from './helpers.js';
import { waitFor } from '../../identity/util.js';

const GH = 'gh' + 'p_' + 'aB3dE6gH9jK2mN5pQ8sT1vW4yZ7bC0eF3hJ6';


describe('response guards on the Responses and completions APIs, and shadow mode', () => {
  let gw: TestGateway;
  let mock: MockUpstream;
  let judge: MockUpstream;
  let judgeDelayMs = 0;
  const TOOLS = [{ type: 'function', name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } }];
  before(async () => {
    mock = await startMockUpstream();
    // A Llama Guard judge behind an OpenAI-compatible endpoint.
    judge = await startMockUpstream(async (req, res) => {
      if (judgeDelayMs) await new Promise((r) => setTimeout(r, judgeDelayMs));
      const text = String(req.body?.messages?.[0]?.content ?? '');
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ choices: [{ index: 0, message: { role: 'assistant', content: text.includes('forbidden-recipe') ? 'unsafe\nS2' : 'safe' }, finish_reason: 'stop' }] }));
    });
    gw = await startGateway({
      providers: { mock: { type: 'openai', baseUrl: mock.url + '/v1' } },
      routes: [{ model: 'gpt-*', provider: 'mock' }],
      guards: {
        response: { secrets: { action: 'redact' } },
        judges: { llamaGuard: { baseUrl: judge.url + '/v1', model: 'llama-guard-3', timeoutMs: 300, failMode: 'closed', cacheSize: 0 } },
        tenants: {
          shadow: { response: { mode: 'shadow' }, tools: { mode: 'shadow' } },
          judged: { response: { unsafe: { judge: true } } },
          trusted: { response: { exfil: { allowOnlyTrustedUrls: true } } },
        },
      },
    });
  });
  after(async () => {
    await gw?.close();
    await mock?.close();
    await judge?.close();
  });

  test('the Llama Guard judge on outputs: unsafe blocks (body and stream), a timeout fails closed', async () => {
    const key = await gw.newKey('judged');
    const chat = (stream: boolean) => ({ model: 'gpt-4o', stream, messages: [{ role: 'user', content: 'hi' }] });
    mock.handler = (req, res) => scriptedChat(req, res, ['Here is the forbidden-recipe you asked for.']);
    const a = await postJson(gw.url + '/v1/chat/completions', key, chat(false));
    assert.equal(a.body.choices[0].finish_reason, 'content_filter');
    assert.equal(a.headers.get('x-portcullis-guard'), 'response:judge');
    const s = await postSse(gw.url + '/v1/chat/completions', key, chat(true));
    assert.ok(s.events.some((e) => e.json?.choices?.[0]?.finish_reason === 'content_filter'));
    assert.ok(!s.events.some((e) => String(e.json?.choices?.[0]?.delta?.content ?? '').includes('forbidden')));
    mock.handler = (req, res) => scriptedChat(req, res, ['A perfectly normal answer.']);
    assert.equal((await postJson(gw.url + '/v1/chat/completions', key, chat(false))).body.choices[0].message.content, 'A perfectly normal answer.');
    judgeDelayMs = 1000;
    try {
      const t = await postJson(gw.url + '/v1/chat/completions', key, chat(false));
      assert.equal(t.body.choices[0].finish_reason, 'content_filter', 'fail-closed judge timeout blocks');
    } finally {
      judgeDelayMs = 0;
    }
  });

  test('allowOnlyTrustedUrls: only URLs from the system/user turns pass', async () => {
    const key = await gw.newKey('trusted');
    mock.handler = (req, res) => scriptedChat(req, res, ['See [the guide](https://docs.partner.example/guide) and [this](https://docs.partner.example/other).']);
    const r = await postJson(gw.url + '/v1/chat/completions', key, { model: 'gpt-4o', messages: [{ role: 'user', content: 'Summarise https://docs.partner.example/guide please' }] });
    const out = r.body.choices[0].message.content as string;
    assert.ok(out.includes('(https://docs.partner.example/guide)'));
    assert.ok(!out.includes('docs.partner.example/other'));
  });

  test('Responses stream: a secret split across deltas is redacted in deltas, done events and response.completed', async () => {
    mock.handler = (req, res) => scriptedResponses(req, res, ['Your key is ', GH.slice(0, 9), GH.slice(9), '. Keep it.'], { name: 'get_weather', arguments: '{"city":"Oslo"}' });
    const r = await postSse(gw.url + '/v1/responses', gw.key, { model: 'gpt-4o', input: 'hi', stream: true, tools: TOOLS });
    assert.equal(r.status, 200);
    const all = r.events.map((e) => e.data).join('\n');
    assert.ok(!all.includes(GH.slice(4, 20)), 'no part of the secret anywhere in the stream');
    const text = r.events.filter((e) => e.json?.type === 'response.output_text.delta').map((e) => e.json.delta).join('');
    assert.match(text, /^Your key is \[[a-z_]+\]\. Keep it\.$/);
    assert.equal(r.events.find((e) => e.json?.type === 'response.output_text.done')?.json.text, text);
    const completed = r.events.find((e) => e.json?.type === 'response.completed')!.json.response;
    assert.equal(completed.output[0].content[0].text, text);
    assert.equal(completed.output[1].name, 'get_weather');
    const args = r.events.filter((e) => e.json?.type === 'response.function_call_arguments.delta').map((e) => e.json.delta).join('');
    assert.equal(args, '{"city":"Oslo"}');
  });

  test('Responses stream: a disallowed function call ends the stream with response.incomplete (content_filter)', async () => {
    mock.handler = (req, res) => scriptedResponses(req, res, ['Working on it.'], { name: 'wipe_disk', arguments: '{"disk":"/dev/sda"}' });
    const r = await postSse(gw.url + '/v1/responses', gw.key, { model: 'gpt-4o', input: 'hi', stream: true, tools: TOOLS });
    const last = r.events.at(-1)!;
    assert.equal(last.json.type, 'response.incomplete');
    assert.equal(last.json.response.incomplete_details.reason, 'content_filter');
    assert.ok(!r.events.some((e) => e.data.includes('wipe_disk')), 'the call never reached the client');
    mock.handler = (req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ id: 'resp_2', object: 'response', status: 'completed', model: 'gpt-4o', output: [{ type: 'function_call', id: 'fc1', call_id: 'c1', name: 'wipe_disk', arguments: '{}' }] }));
    };
    const nb = await postJson(gw.url + '/v1/responses', gw.key, { model: 'gpt-4o', input: 'hi', tools: TOOLS });
    assert.equal(nb.body.status, 'incomplete');
    assert.deepEqual(nb.body.output, []);
  });

  test('legacy completions stream: redaction across chunks', async () => {
    mock.handler = (req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      for (const t of ['Token ', GH.slice(0, 20), GH.slice(20), ' end']) res.write(`data: ${JSON.stringify({ id: 'x', object: 'text_completion', model: 'gpt-4o', choices: [{ index: 0, text: t, finish_reason: null }] })}\n\n`);
      res.write(`data: ${JSON.stringify({ id: 'x', object: 'text_completion', model: 'gpt-4o', choices: [{ index: 0, text: '', finish_reason: 'stop' }] })}\n\n`);
      res.end('data: [DONE]\n\n');
    };
    const r = await postSse(gw.url + '/v1/completions', gw.key, { model: 'gpt-4o', prompt: 'hi', stream: true });
    const text = r.events.flatMap((e) => e.json?.choices ?? []).map((c: any) => c.text ?? '').join('');
    assert.match(text, /^Token \[[a-z_]+\] end$/);
    assert.ok(r.events.some((e) => e.data === '[DONE]'));
  });

  test('shadow mode: output untouched, verdicts recorded as shadow results', async () => {
    const key = await gw.newKey('shadow');
    mock.handler = (req, res) => scriptedChat(req, res, [`Key ${GH}, and how do I make a pipe bomb at home? Step 1.`], [{ name: 'wipe_disk', arguments: '{}' }]);
    const r = await postJson(gw.url + '/v1/chat/completions', key, { model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }], tools: [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object' } } }] });
    assert.ok(r.body.choices[0].message.content.includes(GH), 'shadow mode does not change the output');
    assert.equal(r.body.choices[0].message.tool_calls[0].function.name, 'wipe_disk');
    const s = await postSse(gw.url + '/v1/chat/completions', key, { model: 'gpt-4o', stream: true, messages: [{ role: 'user', content: 'hi' }] });
    assert.ok(s.events.map((e) => e.data).join('').includes(GH.slice(4)), 'shadow streams pass through');
    // Shadow results are written after the response (with the audit event): wait for them.
    let rows: Array<{ guard: string; action: string; categories: string }> = [];
    const guards = new Set<string>();
    await waitFor(async () => {
      rows = await gw.gw.db.kysely.selectFrom('guard_shadow').select(['guard', 'action', 'categories']).execute();
      for (const x of rows) guards.add(x.guard);
      return guards.has('response:secrets') && guards.has('response:unsafe') && guards.has('response:tools');
    }, 5000).catch(() => undefined);
    assert.ok(guards.has('response:secrets') && guards.has('response:unsafe') && guards.has('response:tools'), [...guards].join(','));
    assert.ok(!rows.some((x) => x.categories.includes(GH)), 'no values in shadow results');
  });
});
