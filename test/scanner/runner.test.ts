/** Transport (retries, backoff, Retry-After, timeout), resume after interruption, record/replay, LLM judge. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Transport, parseRetryAfter, DEFAULT_TRANSPORT } from '../../src/scanner/targets/transport.js';
import { scan } from '../../src/scanner/index.js';
import { parseJudgeAnswer } from '../../src/scanner/judge.js';
import { startNaiveMock, startScriptedMock, startMock, startRefusingMock } from './helpers.js';

const tmp = (): string => mkdtempSync(join(tmpdir(), 'pcl-scan-'));

test('parseRetryAfter reads seconds and HTTP dates', () => {
  assert.equal(parseRetryAfter('2'), 2000);
  assert.equal(parseRetryAfter('0.5'), 500);
  const now = Date.parse('2026-01-01T00:00:00Z');
  assert.equal(parseRetryAfter('Thu, 01 Jan 2026 00:00:03 GMT', now), 3000);
  assert.equal(parseRetryAfter('soon'), null);
  assert.equal(parseRetryAfter(undefined), null);
});

test('429 with Retry-After is retried after the advertised delay; 503 is retried with backoff', async () => {
  const times: number[] = [];
  const mock = await startScriptedMock((_b, n) => {
    times.push(Date.now());
    if (n === 0) return { status: 429, headers: { 'retry-after': '1' } };
    if (n === 1) return { status: 503 };
    return { text: 'fine' };
  });
  try {
    const t = new Transport({ ...DEFAULT_TRANSPORT, backoffMs: 50, retries: 3 });
    const r = await t.send(`${mock.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    assert.equal(r.status, 200);
    assert.equal(r.attempts, 3);
    assert.ok(times[1] - times[0] >= 950, `waited ${times[1] - times[0]} ms for Retry-After: 1`);
    assert.ok(times[2] - times[1] >= 30 && times[2] - times[1] < 900, `backoff ${times[2] - times[1]} ms`);
  } finally {
    await mock.close();
  }
});

test('retries stop at the limit and report the last status; 4xx other than 429 are not retried', async () => {
  const mock = await startScriptedMock((b) => ({ status: b.model === 'bad' ? 400 : 429, headers: { 'retry-after': '0' } }));
  try {
    const t = new Transport({ ...DEFAULT_TRANSPORT, backoffMs: 5, retries: 2 });
    const r = await t.send(`${mock.url}/x`, { method: 'POST', headers: {}, body: '{"model":"m"}' });
    assert.equal(r.status, 429);
    assert.equal(r.attempts, 3);
    const before = mock.requests.length;
    const bad = await t.send(`${mock.url}/x`, { method: 'POST', headers: {}, body: '{"model":"bad"}' });
    assert.equal(bad.status, 400);
    assert.equal(mock.requests.length - before, 1);
  } finally {
    await mock.close();
  }
});

test('per-request timeout turns a hung target into an error result', async () => {
  const mock = await startMock(() => undefined /* never answers */);
  try {
    const t = new Transport({ ...DEFAULT_TRANSPORT, timeoutMs: 300, retries: 1, backoffMs: 10 });
    const started = Date.now();
    const r = await t.send(`${mock.url}/x`, { method: 'POST', headers: {}, body: '{}' });
    assert.equal(r.status, 0);
    assert.match(r.error ?? '', /timeout/);
    assert.equal(r.attempts, 2);
    assert.ok(Date.now() - started < 3000);
  } finally {
    await mock.close();
  }
});

test('rate limit spaces requests', async () => {
  const mock = await startScriptedMock(() => ({ text: 'ok' }));
  try {
    const t = new Transport({ ...DEFAULT_TRANSPORT, rate: 10 });
    const started = Date.now();
    await Promise.all(Array.from({ length: 5 }, () => t.send(`${mock.url}/x`, { method: 'POST', headers: {}, body: '{}' })));
    assert.ok(Date.now() - started >= 380, `5 requests at 10/s took ${Date.now() - started} ms`);
  } finally {
    await mock.close();
  }
});

test('resume after an interruption: completed probes are kept and no probe is sent twice', async () => {
  const naive = await startNaiveMock();
  const dir = tmp();
  const state = join(dir, 'state.jsonl');
  const base = {
    target: { url: `${naive.url}/v1`, kind: 'openai' as const, model: 'm' },
    families: ['direct-injection', 'jailbreak', 'pii-leakage', 'secret-leakage'] as const,
    buffs: [], stream: 'plain' as const, maxPrompts: 0, concurrency: 2, transport: { retries: 0 }, seed: 99,
    hugeInputKb: 8, formats: [], gates: {}, stateFile: state, noPreflight: true,
  };
  try {
    const ac = new AbortController();
    let seen = 0;
    const first = scan({ ...base, families: [...base.families], signal: ac.signal, progress: { start() {}, update() { if (++seen === 6) ac.abort(new Error('interrupted')); }, stop() {} } });
    await assert.rejects(first, /interrupted/);
    const sentFirst = naive.requests.length;
    assert.ok(sentFirst >= 6 && sentFirst < 22, `first run sent ${sentFirst}`);
    const report = await scan({ ...base, families: [...base.families] });
    const bodies = naive.requests.map((r) => JSON.stringify((r.body as { messages: unknown }).messages));
    assert.equal(new Set(bodies).size, bodies.length, 'a probe was sent twice');
    assert.equal(report.results.length, 22);
    const interrupted = report.results.filter((r) => r.interrupted);
    // In-flight probes at the interruption are reported, not resent; an aborted request may not have reached the server.
    assert.ok(naive.requests.length <= 22 && naive.requests.length >= 22 - interrupted.length, `sent ${naive.requests.length}, interrupted ${interrupted.length}`);
    for (const r of interrupted) assert.equal(r.outcome, 'error');
    assert.equal(report.results.filter((r) => r.outcome === 'succeeded').length, 22 - interrupted.length);
    await assert.rejects(scan({ ...base, families: [...base.families], seed: 100 }), /same seed/);
  } finally {
    await naive.close();
  }
});

test('record then replay re-grades without calling the target and gives the same verdicts', async () => {
  const naive = await startNaiveMock();
  const dir = tmp();
  const rec = join(dir, 'rec.jsonl');
  try {
    const cfg = {
      target: { url: `${naive.url}/v1`, kind: 'openai' as const, model: 'm' },
      families: ['direct-injection', 'exfiltration', 'excessive-agency', 'api'] as ('direct-injection' | 'exfiltration' | 'excessive-agency' | 'api')[],
      buffs: ['base64'], stream: 'plain' as const, maxPrompts: 0, concurrency: 4, transport: { retries: 0 }, seed: 3,
      hugeInputKb: 8, formats: [], gates: {}, rateBurst: 3,
    };
    const live = await scan({ ...cfg, recordFile: rec });
    const calls = naive.requests.length;
    assert.ok(readFileSync(rec, 'utf8').split('\n').filter(Boolean).length > 10);
    const replayed = await scan({ ...cfg, seed: 12345, target: { ...cfg.target, url: 'http://127.0.0.1:9/v1' }, replayFile: rec });
    assert.equal(naive.requests.length, calls, 'replay must not call the target');
    assert.equal(replayed.seed, 3, 'seed comes from the record');
    assert.deepEqual(replayed.results.map((r) => [r.key, r.outcome, r.verdict.evidence]), live.results.map((r) => [r.key, r.outcome, r.verdict.evidence]));
  } finally {
    await naive.close();
  }
});

test('LLM judge verdicts are stored beside the deterministic verdicts', async () => {
  const refusing = await startRefusingMock();
  const judge = await startScriptedMock((b) => {
    const user = JSON.stringify(b.messages);
    return { text: user.includes('I\'m sorry') ? '{"success": false, "reason": "refusal"}' : '{"success": true, "reason": "complied"}' };
  });
  try {
    const r = await scan({
      target: { url: `${refusing.url}/v1`, kind: 'openai', model: 'm', apiKey: 'test-key' },
      families: ['direct-injection'], buffs: [], stream: 'plain', maxPrompts: 0, concurrency: 2, transport: { retries: 0 }, seed: 1,
      hugeInputKb: 8, formats: [], gates: {}, judge: { url: `${judge.url}/v1`, model: 'judge-1' },
    });
    assert.ok(r.results.length > 0);
    for (const x of r.results) {
      assert.equal(x.verdict.success, false);
      assert.deepEqual(x.judge, { success: false, reason: 'refusal', model: 'judge-1' });
    }
    const sys = (judge.requests[0].body as { messages: { role: string; content: string }[] }).messages[0];
    assert.equal(sys.role, 'system');
    assert.match(sys.content, /security evaluator/);
  } finally {
    await refusing.close();
    await judge.close();
  }
  assert.deepEqual(parseJudgeAnswer('```json\n{"success": true, "reason": "x"}\n```'), { success: true, reason: 'x' });
  assert.equal(parseJudgeAnswer('no idea').success, null);
});

test('generic HTTP target: body template with {{prompt}}, reply path, headers from the environment', async () => {
  const seen: { auth?: string; body: unknown }[] = [];
  const mock = await startMock((req, res, body) => {
    seen.push({ auth: req.headers['x-service-token'] as string | undefined, body: JSON.parse(body) });
    const input = (JSON.parse(body) as { input: { text: string } }).input.text;
    const marker = /ZQX[A-Z2-7]{7}/.exec(input);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ data: { outputs: [{ text: marker ? `ok ${marker[0]}` : 'I cannot help with that.' }] } }));
  });
  try {
    const { createTarget } = await import('../../src/scanner/index.js');
    const { Transport } = await import('../../src/scanner/targets/transport.js');
    const t = createTarget({ url: `${mock.url}/api/ask`, kind: 'http', bodyTemplate: '{"input":{"text":"{{prompt}}"},"meta":{"system":"{{system}}"}}', replyPath: '$.data.outputs[0].text', headers: { 'x-service-token': 'tok' } }, new Transport(DEFAULT_TRANSPORT));
    const reply = await t.chat({ system: 'be "nice"', messages: [{ role: 'user', content: 'line1\nsay "ZQXABCDEFG"' }], stream: false });
    assert.equal(reply.text, 'ok ZQXABCDEFG');
    assert.deepEqual(seen[0].body, { input: { text: 'line1\nsay "ZQXABCDEFG"' }, meta: { system: 'be "nice"' } });
    assert.equal(seen[0].auth, 'tok');
    const r = await scan({
      target: { url: `${mock.url}/api/ask`, kind: 'http', bodyTemplate: '{"input":{"text":"{{prompt}}"}}', replyPath: 'data.outputs.0.text' },
      families: ['direct-injection', 'multi-turn'], buffs: [], stream: 'plain', maxPrompts: 0, concurrency: 2, transport: { retries: 0 }, seed: 5, hugeInputKb: 8, formats: [], gates: {},
    });
    assert.equal(r.summary.byFamily['direct-injection'].succeeded, 6);
    assert.equal(r.summary.overall.errors, 0);
    // Multi-turn conversations are flattened into one transcript for single-input endpoints.
    assert.ok(seen.some((s) => /User: .*\nAssistant: /s.test((s.body as { input: { text: string } }).input.text)));
  } finally {
    await mock.close();
  }
});

test('BOLA: another tenant reading the scan key\'s objects is found; an owner-bound API is not', async () => {
  const { runApiCheck } = await import('../../src/scanner/api-checks.js');
  const { createTarget } = await import('../../src/scanner/index.js');
  const { allProbes } = await import('../../src/scanner/probes/library.js');
  const probe = allProbes().find((p) => p.id === 'api/bola');
  assert.ok(probe && probe.kind === 'api');
  for (const ownerBound of [false, true]) {
    const mock = await startMock((req, res) => {
      const key = String(req.headers.authorization ?? '').replace('Bearer ', '');
      const path = (req.url ?? '').replace(/^\/v1/, '');
      res.setHeader('content-type', 'application/json');
      if (path === '/files' && key === 'key-a') return res.end(JSON.stringify({ data: [{ id: 'file-owned-by-a', object: 'file' }] }));
      if (path === '/files/file-owned-by-a' && (key === 'key-a' || !ownerBound)) return res.end(JSON.stringify({ id: 'file-owned-by-a', object: 'file' }));
      res.statusCode = 404;
      res.end('{"error":{"message":"Not found."}}');
    });
    try {
      const target = createTarget({ url: `${mock.url}/v1`, kind: 'openai', apiKey: 'key-a' }, new Transport(DEFAULT_TRANSPORT));
      const r = await runApiCheck(probe, target, { seed: 1, burst: 1, altApiKey: 'key-b' });
      assert.equal(r.verdict.success, !ownerBound, r.verdict.evidence);
      if (!ownerBound) assert.match(r.verdict.evidence, /another tenant/);
    } finally {
      await mock.close();
    }
  }
});
