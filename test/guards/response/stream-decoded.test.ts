/**
 * A canary hidden in an encoding the normaliser decodes (Unicode tag characters, "ASCII
 * smuggling") with `canary.action: redact`, streamed through a real gateway from a mock upstream
 * after more than one scan window of prose, split at every offset of its carrier: the client never
 * receives the carrier nor the decoded canary, and the prose around it is kept.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway, type TestGateway } from '../../helpers/gateway.js';
import { startMockUpstream, type MockUpstream, type Recorded } from '../../helpers/mock-upstream.js';
import { chatText, postJson, postSse, scriptedChat, piecesOf } from './helpers.js';

const FILLER = 'The quarterly report covers revenue, staffing and the new office plans for next year. ';
const PROSE = FILLER.repeat(24); // ~2 000 characters: several scan windows before the canary
const TAIL = ' That is all for this quarter.';
const TAG_CHAR = /[\u{E0000}-\u{E007F}]|[\uDB40]/u;

/** Encodes ASCII text as Unicode tag characters (U+E0000 + code). */
function tags(s: string): string {
  return [...s].map((c) => String.fromCodePoint(0xe0000 + c.charCodeAt(0))).join('');
}


describe('a canary in decoded carriers, streamed with canary.action redact', () => {
  let gw: TestGateway;
  let mock: MockUpstream;
  const chatUrl = () => gw.url + '/v1/chat/completions';
  const ask = (stream: boolean) => ({ model: 'gpt-4o', stream, messages: [{ role: 'system', content: 'You are a helpful assistant for the reporting team.' }, { role: 'user', content: 'Summarise the report.' }] });
  const tokenOf = (req: Recorded) => /pcl-canary-[0-9a-f]{32}/.exec(String(req.body.messages.find((m: any) => m.role === 'system')?.content ?? ''))?.[0] ?? '';

  before(async () => {
    mock = await startMockUpstream();
    gw = await startGateway({
      providers: { mock: { type: 'openai', baseUrl: mock.url + '/v1' } },
      routes: [{ model: 'gpt-*', provider: 'mock' }],
      guards: { response: { canary: { enabled: true, action: 'redact' } } },
    });
  });
  after(async () => {
    await gw?.close();
    await mock?.close();
  });

  test('tag characters carrying the canary after the first window are redacted at every chunk offset', async () => {
    // Non-streamed: the carrier is removed and the prose is kept.
    let token = '';
    mock.handler = (req, res) => {
      token = tokenOf(req);
      scriptedChat(req, res, [`${PROSE}${tags(token)}${TAIL}`]);
    };
    const plain = await postJson(chatUrl(), gw.key, ask(false));
    assert.ok(token, 'the upstream saw a canary');
    const body = plain.body.choices[0].message.content as string;
    assert.ok(!TAG_CHAR.test(body) && !body.includes(token.slice(11, 27)), 'non-streamed: no carrier, no canary');
    assert.ok(body.startsWith(PROSE) && body.endsWith(TAIL), 'non-streamed: only the carrier is redacted');
    const carrierLength = tags(token).length;
    for (let k = 0; k <= carrierLength; k++) {
      let tok = '';
      mock.handler = (req, res) => {
        tok = tokenOf(req);
        const text = `${PROSE}${tags(tok)}${TAIL}`;
        scriptedChat(req, res, piecesOf(text, PROSE.length + k));
      };
      const s = chatText((await postSse(chatUrl(), gw.key, ask(true))).events);
      assert.ok(tok, 'the upstream saw a canary');
      assert.ok(!TAG_CHAR.test(s.text), `offset ${k}: no tag character reached the client`);
      assert.ok(!s.text.toLowerCase().includes(tok.slice(11, 27)), `offset ${k}: no decoded canary`);
      assert.deepEqual(s.finish, ['stop'], `offset ${k}`);
      assert.ok(s.text.startsWith(PROSE) && s.text.endsWith(TAIL), `offset ${k}: the prose streams unchanged`);
      assert.equal(s.text, body.replace(token, tok), `offset ${k}: the stream equals the non-streamed rewrite`);
    }
  });
});
