import { test } from 'node:test';
import assert from 'node:assert/strict';
import { detectTopics, compileTopics } from './index.js';

const config = {
  allowed: { billing: ['invoice', 'refund', 'payment method'], shipping: ['delivery', 'tracking number'] },
  banned: { politics: ['election', 'political party'], competitors: ['Globex', 'Initech'], medical: ['diagnosis', 'prescription'] },
};

test('banned topics: word boundaries, case and accents', () => {
  const r = detectTopics('Who wins the ÉLECTION? Ask Globex.', config);
  assert.deepEqual(r.banned.sort(), ['competitors', 'politics']);
  const f = r.findings.find((x) => x.category === 'politics')!;
  assert.equal('Who wins the ÉLECTION? Ask Globex.'.slice(f.start, f.end), 'ÉLECTION');
  assert.deepEqual(detectTopics('The selection was preelection-free; globexcorp is fine', config).banned, []);
});

test('multi-word phrases match across whitespace and hyphens', () => {
  assert.deepEqual(detectTopics('which Political\n party?', config).banned, ['politics']);
  assert.deepEqual(detectTopics('update my payment-method please', config).allowed, ['billing']);
});

test('on-topic and off-topic', () => {
  const on = detectTopics('Where is my refund?', config);
  assert.equal(on.onTopic, true);
  assert.deepEqual(on.findings, []);
  const off = detectTopics('Write me a poem about the sea.', config);
  assert.equal(off.onTopic, false);
  assert.deepEqual(off.findings.map((f) => f.category), ['off_topic']);
  assert.equal(detectTopics('anything', { banned: config.banned }).onTopic, undefined);
});

test('offsets survive characters that fold to several units, and astral characters', () => {
  const text = 'ﬁ 😀 Diagnosis';
  const r = detectTopics(text, config);
  const f = r.findings[0];
  assert.equal(text.slice(f.start, f.end), 'Diagnosis');
});

test('linear time on long texts with many keywords', () => {
  const many = { banned: { big: Array.from({ length: 2000 }, (_, i) => `keyword${i}`) } };
  const m = compileTopics(many);
  const text = 'lorem ipsum '.repeat(40000) + ' keyword1999';
  const t0 = performance.now();
  const r = m.detect(text);
  assert.deepEqual(r.banned, ['big']);
  assert.ok(performance.now() - t0 < 30_000, "completes (a backtracking blow-up would take far longer)");
});

test('streaming: a banned topic split at every offset blocks the stream before it is emitted', async () => {
  const { createStreamScanner } = await import('../stream/index.js');
  const text = 'Our refund policy is simple. By the way, the Political  Party of the year is ... more text follows here.';
  for (let i = 0; i <= text.length; i++) {
    const s = createStreamScanner({
      scan: (t) => ({ findings: detectTopics(t, { banned: config.banned }).findings }),
      rewrite: () => null,
      holdBack: 64,
    });
    let out = s.push(text.slice(0, i)).emit;
    const r = s.push(text.slice(i));
    out += r.emit + s.end().emit;
    assert.ok(s.isBlocked, `cut ${i}`);
    assert.ok(!/political/i.test(out), `cut ${i}`);
  }
});
