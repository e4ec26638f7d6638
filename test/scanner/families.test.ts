/** Every probe family against a naive target (attacks succeed) and a refusing target (attacks fail). */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { scan, PROBE_FAMILIES, type ScanReport } from '../../src/scanner/index.js';
import { startDemoServer } from '../../src/providers/demo-server.js';
import { startNaiveMock, startRefusingMock, type Mock } from './helpers.js';

let naive: Mock;
let refusing: Mock;
before(async () => {
  naive = await startNaiveMock();
  refusing = await startRefusingMock();
});
after(async () => {
  await naive.close();
  await refusing.close();
});

function run(url: string, kind: 'openai' | 'anthropic', stream: 'plain' | 'stream' | 'both', apiKey?: string): Promise<ScanReport> {
  return scan({
    target: { url, kind, model: 'm', ...(apiKey ? { apiKey } : {}) },
    families: [...PROBE_FAMILIES],
    buffs: [],
    stream,
    maxPrompts: 0,
    concurrency: 8,
    transport: { retries: 0, timeoutMs: 10_000 },
    seed: 11,
    hugeInputKb: 96,
    formats: [],
    gates: {},
    rateBurst: 5,
  });
}

for (const kind of ['openai', 'anthropic'] as const) {
  test(`${kind}: every family succeeds against the naive target (streamed and not), with stream parity`, async () => {
    const r = await run(kind === 'openai' ? `${naive.url}/v1` : naive.url, kind, 'both');
    for (const fam of PROBE_FAMILIES) {
      const rate = r.summary.byFamily[fam];
      assert.ok(rate, `family ${fam} missing`);
      assert.equal(rate.errors, 0, `${fam} had errors: ${JSON.stringify(r.results.filter((x) => x.family === fam && x.outcome === 'error').map((x) => x.error))}`);
      assert.ok(rate.succeeded > 0, `${fam}: no attack succeeded against the naive target`);
    }
    // Every family except the API checks and DoS leaks on every chat probe against this target.
    for (const x of r.results) if (x.family !== 'api' && x.family !== 'dos') assert.equal(x.outcome, 'succeeded', `${x.key}: ${x.verdict.evidence}`);
    assert.deepEqual(r.streamParity, [], 'naive target behaves the same streamed and not');
    assert.ok(r.results.some((x) => x.mode === 'stream' && x.toolCalls.length > 0), 'streamed tool calls were reassembled');
  });

  test(`${kind}: no family succeeds against the refusing target (streamed and not)`, async () => {
    const r = await run(kind === 'openai' ? `${refusing.url}/v1` : refusing.url, kind, 'both', 'test-key');
    for (const fam of PROBE_FAMILIES) {
      const rate = r.summary.byFamily[fam];
      assert.ok(rate, `family ${fam} missing`);
      assert.equal(rate.errors, 0, `${fam} had errors`);
      assert.equal(rate.succeeded, 0, `${fam}: ${JSON.stringify(r.results.filter((x) => x.family === fam && x.outcome === 'succeeded').map((x) => `${x.key}: ${x.verdict.evidence}`))}`);
    }
    assert.ok(r.summary.byFamily.dos.blocked >= 2, 'oversized requests were bounded (blocked)');
  });
}

test('demo-vulnerable served directly: attacks succeed in every family the demo model can show', async () => {
  const demo = await startDemoServer();
  try {
    const r = await scan({
      target: { url: demo.url, kind: 'openai', model: 'demo-vulnerable' },
      families: [...PROBE_FAMILIES], buffs: [], stream: 'plain', maxPrompts: 0, concurrency: 8,
      transport: { retries: 0 }, seed: 5, hugeInputKb: 64, formats: [], gates: {}, rateBurst: 5,
    });
    // The demo model does not decode encodings or write harmful content, so those two
    // families are shown by the naive mock above instead.
    const shown = PROBE_FAMILIES.filter((f) => f !== 'encoding' && f !== 'unsafe-content');
    for (const fam of shown) assert.ok(r.summary.byFamily[fam].succeeded > 0, `${fam} shows no success against demo-vulnerable`);
    assert.equal(r.summary.overall.errors, 0);
    assert.equal(r.summary.byFamily.encoding.succeeded, 0, 'echoed encoded payloads are not counted as successes');
    assert.equal(r.summary.byFamily['unsafe-content'].succeeded, 0, 'echoed harmful asks are not counted as compliance');
  } finally {
    await demo.close();
  }
});

test('streaming parity: a target that is only guarded without streaming is reported', async () => {
  const { startMock, writeChat } = await import('./helpers.js');
  const leaky = await startMock((_req, res, body) => {
    const b = JSON.parse(body) as { stream?: boolean; messages: { content: string }[] };
    const marker = /ZQX[A-Z2-7]{7}/.exec(JSON.stringify(b.messages));
    writeChat(res, { anthropic: false, stream: b.stream === true, text: b.stream && marker ? marker[0] : "I'm sorry, but I can't help with that." });
  });
  try {
    const r = await scan({
      target: { url: `${leaky.url}/v1`, kind: 'openai', model: 'm' }, families: ['direct-injection'], buffs: [], stream: 'both', maxPrompts: 0,
      concurrency: 4, transport: { retries: 0 }, seed: 3, hugeInputKb: 8, formats: [], gates: {},
    });
    assert.equal(r.streamParity.length, 6);
    for (const p of r.streamParity) assert.deepEqual([p.plain, p.stream], ['resisted', 'succeeded']);
  } finally {
    await leaky.close();
  }
});
