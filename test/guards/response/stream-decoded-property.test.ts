/**
 * Property: a canary or a secret in any carrier the normaliser decodes (Unicode tags, base64,
 * hex, URL-encoding, ROT13; also zero-width padding and full-width letters), anywhere in a
 * streamed output and split at random chunk boundaries (also inside surrogate pairs), with `action: redact`: the stream releases exactly the
 * non-streamed rewrite, and never the canary — neither its carrier nor its decoded form.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseGuardsConfig } from '../../../src/guards/config.js';
import { guardBody } from '../../../src/guards/response/body.js';
import { createOutputChecker } from '../../../src/guards/response/scan.js';
import { ResponseSession } from '../../../src/guards/response/session.js';
import { streamThroughGuard } from './helpers.js';

const CANARY = 'pcl-canary-' + '5f0c1e2d3b4a69788796a5b4c3d2e1f0';
const GH = 'gh' + 'p_' + 'aB3dE6gH9jK2mN5pQ8sT1vW4yZ7bC0eF3hJ6';
const FILLER = 'Revenue grew in the third quarter and the team shipped the new billing page. ';
const TAG_CHAR = /[\uDB40]/;

const tags = (s: string) => [...s].map((c) => String.fromCodePoint(0xe0000 + c.charCodeAt(0))).join('');
const rot13 = (s: string) => s.replace(/[a-z]/gi, (c) => String.fromCharCode(((c.toLowerCase().charCodeAt(0) - 97 + 13) % 26) + (c === c.toLowerCase() ? 97 : 65)));
const pct = (s: string) => [...Buffer.from(s)].map((b) => '%' + b.toString(16).padStart(2, '0')).join('');
const xhex = (s: string) => [...Buffer.from(s)].map((b) => '\\x' + b.toString(16).padStart(2, '0')).join('');
const b64 = (s: string) => Buffer.from(s).toString('base64');
const hex = (s: string) => Buffer.from(s).toString('hex');

/** Carriers of a value: bare, and inside a sentence (so the decoded text reads as text). */
function carriers(v: string): string[] {
  const sentence = `please note the marker ${v} and tell nobody about it`;
  // Also padded with zero-width characters (longer than the hold-back) and in full-width letters.
  const zw = [...v].join('\u200b'.repeat(6));
  const full = [...v].map((c) => String.fromCharCode(c.charCodeAt(0) + 0xfee0)).join('');
  return [tags(v), tags(sentence), b64(v), b64(sentence), hex(v), xhex(v), xhex(sentence), pct(v), pct(sentence), rot13(v), rot13(sentence), zw, full];
}
const CANARY_CARRIERS = carriers(CANARY);
const SECRET_CARRIERS = carriers(GH);

function config(holdBack: number, minRelease: number) {
  return parseGuardsConfig({ response: { pii: { action: 'redact' }, secrets: { action: 'redact' }, canary: { enabled: true, action: 'redact' }, holdBack, minRelease, unsafe: { enabled: false } } });
}

function session(cfg: ReturnType<typeof config>): ResponseSession {
  return new ResponseSession({ cfg, checker: createOutputChecker(cfg, { canary: CANARY }, 'k'), state: {}, stage: 'stream' });
}

async function streamed(cfg: ReturnType<typeof config>, text: string, cuts: number[]): Promise<{ text: string; finish: string[] }> {
  return streamThroughGuard(session(cfg), text, cuts);
}

async function plain(cfg: ReturnType<typeof config>, text: string): Promise<string> {
  const body = { choices: [{ index: 0, message: { role: 'assistant', content: text }, finish_reason: 'stop' }] };
  return ((await guardBody(session(cfg), 'chat', body)).body as any).choices[0].message.content as string;
}

const cfgArb = fc.constantFrom(config(256, 256), config(64, 16), config(16, 0));

test('a canary in any decoded carrier, after any amount of prose, split anywhere: redacted in the stream as in the body', async () => {
  await fc.assert(
    fc.asyncProperty(
      cfgArb,
      fc.nat(40),
      fc.constantFrom(...CANARY_CARRIERS.keys()),
      fc.constantFrom(' ', '\n', '. '),
      fc.array(fc.nat(6000), { maxLength: 80 }),
      async (cfg, fillers, which, sep, cuts) => {
        const text = `${FILLER.repeat(fillers)}Note:${sep}${CANARY_CARRIERS[which]}${sep}That is all.`;
        const expected = await plain(cfg, text);
        const checker = createOutputChecker(cfg, { canary: CANARY }, 'k');
        assert.ok(!checker.scan(expected).some((f) => f.guard === 'response:canary'), `carrier ${which}: the body rewrite holds no canary`);
        const s = await streamed(cfg, text, cuts);
        assert.deepEqual(s.finish, ['stop']);
        assert.ok(!checker.scan(s.text).some((f) => f.guard === 'response:canary'), `carrier ${which}: the stream releases no canary: ${JSON.stringify(s.text.slice(-300))}`);
        assert.ok(!TAG_CHAR.test(s.text), `carrier ${which}: no tag character released`);
        assert.equal(s.text, expected, `carrier ${which}`);
        assert.ok(s.text.startsWith(FILLER.repeat(fillers)) && s.text.endsWith('That is all.'), 'only the carrier is redacted');
      },
    ),
    { numRuns: 300 },
  );
});

test('a secret in any decoded carrier, split anywhere: the stream releases exactly the body rewrite', async () => {
  await fc.assert(
    fc.asyncProperty(cfgArb, fc.nat(40), fc.constantFrom(...SECRET_CARRIERS.keys()), fc.array(fc.nat(6000), { maxLength: 80 }), async (cfg, fillers, which, cuts) => {
      const text = `${FILLER.repeat(fillers)}Key: ${SECRET_CARRIERS[which]} and plain ${GH} too. That is all.`;
      const expected = await plain(cfg, text);
      assert.ok(!expected.includes(GH), 'the plain secret is redacted');
      const s = await streamed(cfg, text, cuts);
      assert.equal(s.text, expected, `carrier ${which}`);
    }),
    { numRuns: 200 },
  );
});
