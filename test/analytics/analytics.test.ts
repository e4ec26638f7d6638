/** Behaviour analytics: simulated week, extraction campaign vs normal workload, automated throttle/suspend and reversal, incident. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { BaselineDetector } from '../../src/analytics/baseline.js';
import { ExtractionDetector } from '../../src/analytics/extraction.js';
import { perturbRequest, roundLogprobs } from '../../src/analytics/perturb.js';
import { signWebhook } from '../../src/analytics/alerts.js';
import { lastUserText, type AnalyticsModule } from '../../src/analytics/module.js';
import * as cl100k from 'gpt-tokenizer/encoding/cl100k_base';
import type { AdminModule } from '../../src/server/admin/module.js';
import { startGateway } from '../helpers/gateway.js';

function rng(seed: number) {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}
function poisson(r: () => number, lambda: number): number {
  let l = Math.exp(-lambda), k = 0, p = 1;
  do { k++; p *= r(); } while (p > l);
  return k - 1;
}

test('anomaly: a normal key does not alert over a simulated week; a burst does', () => {
  const r = rng(7);
  const d = new BaselineDetector();
  const start = Date.UTC(2026, 0, 5);
  let alerts = 0;
  for (let m = 0; m < 7 * 1440; m++) {
    const hour = (m / 60) % 24;
    const lambda = 2 + 10 * Math.max(0, Math.sin(((hour - 6) / 24) * 2 * Math.PI)); // diurnal, 2–12 req/min
    const n = poisson(r, lambda);
    for (let i = 0; i < n; i++) alerts += d.observe('key:normal', { at: start + m * 60_000 + i, tokens: 300 + Math.floor(r() * 200), promptTokens: 200 + Math.floor(r() * 100), error: r() < 0.01, blocked: r() < 0.005, model: r() < 0.8 ? 'demo' : 'demo-2' }).length;
  }
  assert.equal(alerts, 0, 'no alerts for the normal key over a week');
  const t = start + 7 * 1440 * 60_000;
  const burst = [];
  for (let m = 0; m < 3; m++) for (let i = 0; i < 150; i++) burst.push(...d.observe('key:normal', { at: t + m * 60_000 + i, tokens: 400, promptTokens: 250, error: false, blocked: false, model: 'demo' }));
  burst.push(...d.tick(t + 4 * 60_000));
  assert.ok(burst.some((a) => a.signal === 'request_rate'), `burst alerts: ${JSON.stringify(burst.map((a) => a.signal))}`);
  // A new key never alerts during warm-up, however bursty: the 500-request minute is closed by the
  // timer's tick and compared with the key's hour of history, but that is not enough history.
  let fresh = 0;
  for (let m = 0; m < 60; m++) for (let i = 0; i < (m === 59 ? 500 : 3); i++) fresh += d.observe('key:new', { at: t + m * 60_000 + i, tokens: 10, promptTokens: 5, error: false, blocked: false }).length;
  const closed = d.tick(t + 61 * 60_000).filter((a) => a.entity === 'key:new');
  assert.equal(fresh + closed.length, 0, `alerts during warm-up: ${JSON.stringify(closed.map((a) => a.signal))}`);
  assert.equal(d.baseline('key:new')!.seen, 60, 'the burst minute was closed and folded in');
});

const req = (at: number) => ({ at, tokens: 400, promptTokens: 250, error: false, blocked: false, model: 'demo' });

test('anomaly: idle minutes do not count as warm-up — one request, hours of silence, then a burst does not alert', () => {
  const d = new BaselineDetector();
  const t0 = Date.UTC(2026, 0, 5, 8);
  const alerts = d.observe('key:new', req(t0));
  const t1 = t0 + 3 * 3_600_000;
  for (let m = 0; m < 10; m++) for (let i = 0; i < 30; i++) alerts.push(...d.observe('key:new', req(t1 + m * 60_000 + i)));
  alerts.push(...d.tick(t1 + 11 * 60_000));
  assert.deepEqual(alerts.map((a) => `${a.signal} z=${a.z.toFixed(1)}`), [], 'no alerts without real history');
  assert.equal(d.baseline('key:new')!.seen, 11, 'only the minutes with traffic count');
});

test('anomaly: a long-dormant key warms up again; an established key still alerts on a burst after an idle night', () => {
  const d = new BaselineDetector();
  const t0 = Date.UTC(2026, 0, 5, 8);
  const alerts = [];
  for (let m = 0; m < 180; m++) for (let i = 0; i < 10; i++) alerts.push(...d.observe('key:old', req(t0 + m * 60_000 + i)));
  assert.equal(alerts.length, 0);
  assert.equal(d.baseline('key:old')!.seen, 179);
  // Eight idle days (longer than dormantBuckets, 7 days), then 100 req/min: the old baseline is dropped.
  const t1 = t0 + 8 * 86_400_000;
  for (let m = 0; m < 30; m++) for (let i = 0; i < 100; i++) alerts.push(...d.observe('key:old', req(t1 + m * 60_000 + i)));
  alerts.push(...d.tick(t1 + 31 * 60_000));
  assert.deepEqual(alerts.map((a) => a.signal), [], 'no alerts while the returning key warms up again');
  assert.equal(d.baseline('key:old')!.seen, 30);
  // The same key used for 3 hours, idle for a night (16 h, within dormantBuckets), then a burst: alerts.
  const d2 = new BaselineDetector();
  for (let m = 0; m < 180; m++) for (let i = 0; i < 10; i++) d2.observe('key:est', req(t0 + m * 60_000 + i));
  const t2 = t0 + 180 * 60_000 + 16 * 3_600_000;
  const burst = [];
  for (let m = 0; m < 3; m++) for (let i = 0; i < 200; i++) burst.push(...d2.observe('key:est', req(t2 + m * 60_000 + i)));
  burst.push(...d2.tick(t2 + 4 * 60_000));
  assert.ok(burst.some((a) => a.signal === 'request_rate'), `burst after a night: ${JSON.stringify(burst.map((a) => a.signal))}`);
});

test('anomaly: an hourly job (one busy minute an hour) does not alert on each run; ten times its size does', () => {
  const d = new BaselineDetector();
  const t0 = Date.UTC(2026, 0, 5);
  const alerts = [];
  for (let h = 0; h < 7 * 24; h++) for (let i = 0; i < 40; i++) alerts.push(...d.observe('key:cron', req(t0 + h * 3_600_000 + i * 1000)));
  assert.deepEqual(alerts.map((a) => a.signal), []);
  const t = t0 + 7 * 24 * 3_600_000;
  for (let i = 0; i < 400; i++) alerts.push(...d.observe('key:cron', req(t + i * 100)));
  alerts.push(...d.tick(t + 120_000));
  assert.ok(alerts.some((a) => a.signal === 'request_rate'), JSON.stringify(alerts.map((a) => a.signal)));
});

test('anomaly: a business-hours key (idle nights and weekends) does not alert over two weeks; a burst on a workday does', () => {
  const r = rng(21);
  for (const rate of [3, 10, 30]) {
    const d = new BaselineDetector();
    const start = Date.UTC(2026, 0, 5); // a Monday
    const alerts: string[] = [];
    for (let m = 0; m < 14 * 1440; m++) {
      const hour = (m / 60) % 24;
      const day = Math.floor(m / 1440) % 7;
      if (day >= 5 || hour < 9 || hour >= 17) continue; // nights and weekends idle
      const lambda = rate * (hour < 12 || hour >= 13 ? 1 : 0.5) * (0.8 + 0.4 * r()); // quieter at lunch, day-to-day noise
      const n = poisson(r, lambda);
      for (let i = 0; i < n; i++) for (const a of d.observe('key:biz', { at: start + m * 60_000 + i, tokens: 300 + Math.floor(r() * 300), promptTokens: 200 + Math.floor(r() * 100), error: r() < 0.01, blocked: r() < 0.005, model: r() < 0.9 ? 'demo' : 'demo-2' })) alerts.push(`${new Date(a.bucket).toISOString()} ${a.signal} z=${a.z.toFixed(1)}`);
    }
    assert.deepEqual(alerts, [], `business hours at ${rate} req/min`);
    // Monday of week three, 10:00: ten times the usual rate.
    const t = start + 14 * 86_400_000 + 10 * 3_600_000;
    const burst = [];
    for (let m = 0; m < 3; m++) for (let i = 0; i < Math.max(60, rate * 10); i++) burst.push(...d.observe('key:biz', req(t + m * 60_000 + i)));
    burst.push(...d.tick(t + 4 * 60_000));
    assert.ok(burst.some((a) => a.signal === 'request_rate'), `burst at ${rate} req/min: ${JSON.stringify(burst.map((a) => a.signal))}`);
  }
});

const benign: string[] = ['self_instruct_user_oriented', 'wizardlm_testset'].flatMap((n) =>
  readFileSync(`/work/shared/datasets/${n}/${n}.jsonl`, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l).text as string),
);
const WORDS = ['apple', 'river', 'castle', 'violin', 'thunder', 'garden', 'pencil', 'mirror', 'planet', 'candle', 'forest', 'bridge', 'rocket', 'island', 'shadow', 'anchor'];
function campaign(i: number, kind: number): { text: string; logprobs: number } {
  if (kind === 0) return { text: `Classify the sentiment of review number ${1000 + i}: "The product arrived on time and works as described." Answer positive or negative.`, logprobs: 1 };
  if (kind === 1) return { text: `Translate the word "${WORDS[i % WORDS.length]}${Math.floor(i / WORDS.length) || ''}" into French and give only the translation.`, logprobs: 0 };
  return { text: `What is the probability that the next token after "The capital of country ${i} is" is Paris?`, logprobs: 0.75 };
}

test('extraction: scripted campaigns detected within a bounded number of requests; normal mixed workload is not', () => {
  const results: Record<string, number> = {};
  for (const kind of [0, 1, 2]) {
    const d = new ExtractionDetector();
    let at = -1;
    for (let i = 0; i < 300; i++) {
      const c = campaign(i, kind);
      if (d.observe('k', { at: 1_000_000 + i * 1000, ...c }).flagged) {
        at = i + 1;
        break;
      }
    }
    results[`campaign${kind}`] = at;
    assert.ok(at > 0 && at <= 60, `campaign ${kind} detected after ${at} requests`);
  }
  const r = rng(11);
  let flaggedKeys = 0;
  const keys = 40;
  for (let k = 0; k < keys; k++) {
    const d = new ExtractionDetector();
    let flagged = false;
    for (let i = 0; i < 300; i++) {
      const text = benign[Math.floor(r() * benign.length)]!;
      if (d.observe('k', { at: 1_000_000 + i * 5000, text, logprobs: r() < 0.1 ? 0.6 : 0 }).flagged) flagged = true;
    }
    if (flagged) flaggedKeys++;
  }
  console.log(`extraction: campaigns detected after ${JSON.stringify(results)} requests; normal keys flagged ${flaggedKeys}/${keys}`);
  assert.equal(flaggedKeys, 0);
});

const CITIES = ['Paris', 'London', 'Berlin', 'Madrid', 'Rome', 'Vienna', 'Prague', 'Oslo', 'Dublin', 'Lisbon', 'Athens', 'Warsaw', 'Budapest', 'Zurich', 'Brussels', 'Amsterdam', 'Stockholm', 'Helsinki', 'Copenhagen', 'Riga', 'Tallinn', 'Vilnius', 'Sofia', 'Bucharest', 'Zagreb', 'Ljubljana', 'Bratislava', 'Luxembourg', 'Valletta', 'Nicosia'];
const TICKERS = ['AAPL', 'MSFT', 'GOOG', 'AMZN', 'NVDA', 'META', 'TSLA', 'BRK.B', 'JPM', 'V', 'UNH', 'XOM', 'JNJ', 'WMT', 'MA', 'PG', 'HD', 'CVX', 'KO', 'PEP', 'ABBV', 'MRK', 'COST', 'AVGO', 'ORCL', 'ADBE', 'CRM', 'NFLX', 'AMD', 'INTC'];
const LETTERS = 'ABCDEFGHJKLMNPQRSTUVWXYZ';
/**
 * Benign apps filling one template with short values (no logprobs): the case the extraction
 * detector cannot tell from a no-logprobs template sweep when every value is new. Measured rates
 * (20 keys × 300 requests, one every 5 s), reported in the README.
 */
const SHORT_FILLER_APPS: Array<{ name: string; gen: (r: () => number, i: number) => string; flagged: number }> = [
  { name: 'order status, random 6-digit order numbers', gen: (r) => `Please give me the current status of order number ${100000 + Math.floor(r() * 900000)} for my account.`, flagged: 20 },
  { name: 'support summary, increasing customer ids', gen: (r, i) => `Summarise the open support tickets of customer ${20000 + i * 3 + Math.floor(r() * 3)}.`, flagged: 20 },
  { name: 'stock summary, 30 tickers', gen: (r) => `Give me a one-line summary of today's price movement for ${TICKERS[Math.floor(r() * TICKERS.length)]}.`, flagged: 0 },
  { name: 'weather, 30 cities', gen: (r) => `What is the weather in ${CITIES[Math.floor(r() * CITIES.length)]} today?`, flagged: 0 },
  { name: 'flight status, random flight numbers', gen: (r) => `Is flight ${LETTERS[Math.floor(r() * 24)]}${LETTERS[Math.floor(r() * 24)]} ${100 + Math.floor(r() * 9000)} on time today?`, flagged: 0 },
];

test('extraction: benign templated apps with short fillers — measured false-positive rates (documented, not hidden)', () => {
  const rows: string[] = [];
  const got: number[] = [];
  for (const [n, app] of SHORT_FILLER_APPS.entries()) {
    const r = rng(100 + n);
    let flaggedKeys = 0;
    let max = 0;
    for (let k = 0; k < 20; k++) {
      const d = new ExtractionDetector();
      let flagged = false;
      for (let i = 0; i < 300; i++) {
        const s = d.observe('k', { at: 1_000_000 + i * 5000, text: app.gen(r, i), logprobs: 0 });
        max = Math.max(max, s.score);
        if (s.flagged) flagged = true;
      }
      if (flagged) flaggedKeys++;
    }
    got.push(flaggedKeys);
    rows.push(`${app.name}: ${flaggedKeys}/20 keys flagged, max score ${max}`);
  }
  console.log(`extraction, benign short-filler templated apps (default threshold 0.5):\n  ${rows.join('\n  ')}`);
  // The README's table states these numbers: a change to the detector must update both.
  assert.deepEqual(got, SHORT_FILLER_APPS.map((a) => a.flagged), rows.join('; '));
});

test('extraction: prompts sent as token ids or prompt arrays are compared too (lastUserText)', () => {
  assert.equal(lastUserText({ prompt: ['a', 'b'] }), 'b');
  assert.equal(lastUserText({ prompt: [9906, 1917] }), '9906 1917');
  assert.equal(lastUserText({ prompt: [[1, 2], [3, 4]] }), '3 4');
  assert.equal(lastUserText({ input: [5, 6] }), '5 6');
  assert.equal(lastUserText({ input: [[7], [8, 9]] }), '8 9');
  assert.equal(lastUserText({ messages: [{ role: 'user', content: 'q' }] }), 'q');
  // The scripted campaigns sent as cl100k token ids, decoded as the gateway does for a model with a
  // known tokenizer, are detected as soon as the text ones; the normal workload is not flagged.
  const decode = (ids: number[]) => cl100k.decode(ids);
  for (const kind of [0, 1, 2]) {
    const d = new ExtractionDetector();
    let at = -1;
    for (let i = 0; i < 300 && at < 0; i++) {
      const c = campaign(i, kind);
      if (d.observe('k', { at: 1_000_000 + i * 1000, text: lastUserText({ prompt: cl100k.encode(c.text) }, decode), logprobs: c.logprobs }).flagged) at = i + 1;
    }
    assert.ok(at > 0 && at <= 60, `token-id campaign ${kind} detected after ${at} requests`);
  }
  const r = rng(11);
  for (let k = 0; k < 10; k++) {
    const d = new ExtractionDetector();
    for (let i = 0; i < 300; i++) {
      const text = lastUserText({ prompt: [cl100k.encode(benign[Math.floor(r() * benign.length)]!)] }, decode);
      assert.equal(d.observe('k', { at: 1_000_000 + i * 5000, text, logprobs: r() < 0.1 ? 0.6 : 0 }).flagged, false, `normal key ${k} flagged at ${i}`);
    }
  }
  // Without a tokenizer the ids themselves are compared: the near-duplicate signal still sees the
  // campaign (the systematic-variation signal is weaker, fillers change the token boundaries).
  const d = new ExtractionDetector();
  let last;
  for (let i = 0; i < 60; i++) last = d.observe('k', { at: 1_000_000 + i * 1000, text: lastUserText({ prompt: cl100k.encode(campaign(i, 1).text) }), logprobs: 0 });
  assert.ok(last!.signals.duplicates > 0.9, JSON.stringify(last));
});

test('extraction: repeats are found across the window for prompts of any length, through evictions by count and by age', () => {
  // Each key keeps its window's signatures and token hashes in one ring buffer: a record written over
  // a live one, or read at a stale offset, shows as a repeat not found or a fresh prompt taken for one.
  const r = rng(5);
  const word = () => Array.from({ length: 6 }, () => String.fromCharCode(97 + Math.floor(r() * 26))).join('');
  for (const window of [2, 3, 7]) {
    const d = new ExtractionDetector({ window, windowMs: 50, minRequests: 1 });
    let live: Array<{ at: number; text: string; dup: boolean }> = [];
    let at = 1_000_000;
    for (let i = 0; i < 5000; i++) {
      at += r() < 0.01 ? 60 : 1; // now and then every earlier request is older than the window
      live = live.filter((e) => e.at >= at - 50).slice(-(window - 1));
      const repeat = live.length > 0 && r() < 0.4;
      const text = repeat ? live[r() < 0.5 ? 0 : Math.floor(r() * live.length)]!.text : Array.from({ length: 1 + Math.floor(r() * (r() < 0.2 ? 300 : 40)) }, word).join(' ');
      live.push({ at, text, dup: repeat });
      const s = d.observe('k', { at, text, logprobs: 0 });
      assert.equal(s.requests, live.length, `window ${window}, step ${i}`);
      assert.equal(Math.round(s.signals.duplicates * s.requests), live.filter((e) => e.dup).length, `window ${window}, step ${i}: near-duplicates in the window`);
    }
  }
});

test('perturbation: cap/strip logprobs, round returned log-probabilities; webhook signature', () => {
  assert.deepEqual(perturbRequest({ logprobs: true, top_logprobs: 20 }, { logprobs: 'cap', maxTopLogprobs: 5 }), { logprobs: true, top_logprobs: 5 });
  assert.deepEqual(perturbRequest({ model: 'x', logprobs: true, top_logprobs: 3 }, { logprobs: 'strip', maxTopLogprobs: 5 }), { model: 'x' });
  const body = { choices: [{ index: 0, logprobs: { content: [{ token: 'a', logprob: -0.123456, top_logprobs: [{ token: 'a', logprob: -0.123456 }, { token: 'b', logprob: -2.987654 }] }] } }] };
  const out = roundLogprobs(body, 2) as any;
  assert.equal(out.choices[0].logprobs.content[0].logprob, -0.12);
  assert.equal(out.choices[0].logprobs.content[0].top_logprobs[1].logprob, -2.99);
  assert.match(signWebhook('s', '1', '{}'), /^sha256=[0-9a-f]{64}$/);
});

async function adminKey(gw: { modules: ReadonlyMap<string, unknown> }): Promise<string> {
  const lc = (gw.modules.get('admin') as AdminModule).lifecycle;
  return (await lc.createAdminKey({ id: 'test' }, { name: 'ops', role: 'owner' })).key;
}

test('automated throttle on an extraction campaign through the gateway, operator reversal, suspend, incident revoke-tenant', async () => {
  const t = await startGateway({ analytics: { response: { onExtraction: 'throttle', throttleRpm: 0 }, perturb: { logprobs: 'cap', maxTopLogprobs: 2 } } });
  try {
    const key = await t.newKey('acme', 'svc');
    const keyId = key.split('_')[1]!;
    const admin = await adminKey(t.gw);
    const send = async (content: string, extra: Record<string, unknown> = {}) => {
      const res = await fetch(`${t.url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'demo', messages: [{ role: 'user', content }], ...extra }) });
      await res.text();
      return res.status;
    };
    const mod = t.gw.modules.get('analytics') as AnalyticsModule;
    let throttledAt = -1;
    for (let i = 0; i < 80; i++) {
      const s = await send(campaign(i, 0).text, { logprobs: true, top_logprobs: 20 });
      await mod.settle();
      if (s === 429) {
        throttledAt = i + 1;
        break;
      }
      assert.equal(s, 200);
    }
    assert.ok(throttledAt > 0 && throttledAt <= 61, `throttled after ${throttledAt}`);
    const events = (await (await fetch(`${t.url}/admin/v1/events?action=analytics.throttle`, { headers: { authorization: `Bearer ${admin}` } })).json()) as any;
    assert.equal(events.data.length, 1, 'the automatic action is audited');
    const alerts = (await (await fetch(`${t.url}/admin/v1/analytics/alerts`, { headers: { authorization: `Bearer ${admin}` } })).json()) as any;
    assert.equal(alerts.data[0].kind, 'extraction');
    // Operator reverses it.
    const clear = await fetch(`${t.url}/admin/v1/analytics/keys/${keyId}/clear`, { method: 'POST', headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' }, body: JSON.stringify({ reason: 'false positive' }) });
    assert.equal(clear.status, 200);
    assert.equal(await send('hello again'), 200);
    // Manual suspend and its reversal.
    const sus = await fetch(`${t.url}/admin/v1/analytics/keys/${keyId}/suspend`, { method: 'POST', headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' }, body: '{}' });
    assert.equal(sus.status, 200);
    assert.equal(await send('am I in?'), 403);
    await fetch(`${t.url}/admin/v1/analytics/keys/${keyId}/clear`, { method: 'POST', headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' }, body: '{}' });
    assert.equal(await send('back'), 200);
    // Incident: revoke and reissue the tenant's keys.
    await (t.gw.modules.get('audit') as { flush?(): Promise<void> } | undefined)?.flush?.();
    const inc = await fetch(`${t.url}/admin/v1/incident/revoke-tenant/acme`, { method: 'POST', headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' }, body: JSON.stringify({ reason: 'leaked in a repo' }) });
    assert.equal(inc.status, 200);
    const r = (await inc.json()) as any;
    assert.deepEqual(r.revoked, [keyId]);
    assert.equal(r.reissued.length, 1);
    assert.ok(r.usage.requests >= 3, JSON.stringify(r.usage));
    assert.ok(r.usage.keys[keyId] >= 3);
    console.log(`incident summary source: ${r.usage.source}`);
    assert.equal(await send('old key'), 401);
    const res = await fetch(`${t.url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${r.reissued[0].key}`, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'demo', messages: [{ role: 'user', content: 'new key' }] }) });
    assert.equal(res.status, 200);
  } finally {
    await t.close();
  }
});

test('alerts: HMAC-signed webhook, deduplicated, logged', async () => {
  const { Alerter } = await import('../../src/analytics/alerts.js');
  const { createServer } = await import('node:http');
  const { createHmac } = await import('node:crypto');
  const got: Array<{ sig: string; ts: string; body: string }> = [];
  const srv = createServer((req, res) => {
    let b = '';
    req.on('data', (c) => (b += c));
    req.on('end', () => {
      got.push({ sig: String(req.headers['x-portcullis-signature']), ts: String(req.headers['x-portcullis-timestamp']), body: b });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const logs: object[] = [];
  const secret = 'hook-' + 'secret';
  const al = new Alerter({ webhookUrl: `http://127.0.0.1:${(srv.address() as { port: number }).port}/hook`, webhookSecret: secret, timeoutMs: 2000, dedupMs: 60_000, keep: 10, log: { warn: (o) => logs.push(o) } });
  try {
    const a = { at: 1_000_000, kind: 'extraction' as const, entity: 'key:k1', tenantId: 't1', keyId: 'k1', signal: 'score', value: 40, score: 0.8, reasons: ['x'], action: 'throttle' as const };
    assert.ok(al.emit(a));
    assert.equal(al.emit({ ...a, at: a.at + 1000 }), null, 'duplicate within the dedup period');
    assert.ok(al.emit({ ...a, at: a.at + 61_000 }), 'sent again after the period');
    await al.flush();
    assert.equal(got.length, 2);
    const g = got[0]!;
    assert.equal(g.sig, 'sha256=' + createHmac('sha256', secret).update(`${g.ts}.${g.body}`).digest('hex'));
    assert.equal(JSON.parse(g.body).alert.keyId, 'k1');
    assert.equal(logs.length, 2);
    assert.equal(al.list({ tenantIds: ['other'] }).length, 0);
  } finally {
    srv.close();
  }
});
