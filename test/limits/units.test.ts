/** Config, token estimation, pricing, periods and header formatting of the limits engine. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { countTokens } from 'gpt-tokenizer/encoding/o200k_base';
import { countTokens as countCl100k } from 'gpt-tokenizer/encoding/cl100k_base';
import {
  approxTokens,
  costUsd,
  estimateInputTokens,
  formatResetDuration,
  parseLimitsConfig,
  periodsAt,
  priceFor,
  resolveLimitSets,
  retryAfterSeconds,
  tokenizerFor,
} from '../../src/limits/index.js';
import { isUtcZone, utcDay } from '../../src/limits/periods.js';
import { dayOf } from '../../src/audit/store.js';

describe('limits config', () => {
  test('safe defaults', () => {
    const c = parseLimitsConfig({});
    assert.equal(c.store, 'memory');
    assert.equal(c.failMode, 'closed');
    assert.equal(c.timeZone, 'UTC');
  });
  test('strict: unknown fields and bad values name their path', () => {
    assert.throws(() => parseLimitsConfig({ defaults: { key: { requestPerMinute: 5 } } }), /requestPerMinute/);
    assert.throws(() => parseLimitsConfig({ timeZone: 'Mars/Olympus' }), (e: Error) => /timeZone/.test(JSON.stringify(e)) && /IANA/.test(e.message));
    assert.throws(() => parseLimitsConfig({ defaults: { key: { requestsPerMinute: -1 } } }));
    assert.throws(() => parseLimitsConfig({ keyPrefix: 'a{b}' }));
  });
  test('resolveLimitSets merges a tier over the defaults field by field', () => {
    const c = parseLimitsConfig({
      defaults: { key: { requestsPerMinute: 60, tokensPerMinute: 10_000 }, tenant: { monthlyCostUsd: 100 } },
      tiers: { pro: { key: { requestsPerMinute: 600 }, user: { dailyTokens: 5000 } } },
    });
    assert.deepEqual(resolveLimitSets(c), { key: { requestsPerMinute: 60, tokensPerMinute: 10_000 }, tenant: { monthlyCostUsd: 100 } });
    assert.deepEqual(resolveLimitSets(c, 'pro'), {
      key: { requestsPerMinute: 600, tokensPerMinute: 10_000 },
      tenant: { monthlyCostUsd: 100 },
      user: { dailyTokens: 5000 },
    });
    assert.throws(() => resolveLimitSets(c, 'nope'), /unknown tier/);
  });
});

describe('token estimation', () => {
  const c = parseLimitsConfig({});
  test('OpenAI models use the real tokenizer (o200k / cl100k) plus per-message overhead', () => {
    const texts = ['You are a helpful assistant.', 'Wie spät ist es in Tōkyō? 東京の天気は？'];
    const o = texts.reduce((s, t) => s + countTokens(t), 0);
    assert.equal(estimateInputTokens('gpt-4o-mini', texts, c), o + 3 * texts.length + 3);
    assert.equal(estimateInputTokens('o3-mini', texts, c), o + 9);
    const cl = texts.reduce((s, t) => s + countCl100k(t), 0);
    assert.equal(estimateInputTokens('gpt-4-0613', texts, c), cl + 9);
    assert.equal(tokenizerFor('gpt-4o', c).kind, 'o200k');
    assert.equal(tokenizerFor('gpt-4', c).kind, 'cl100k');
  });
  test('special-token strings in user text are counted, not thrown on', () => {
    assert.ok(estimateInputTokens('gpt-4o', ['a <|endoftext|> b'], c) > 3);
  });
  test('other models use the documented approximation, configurable per glob', () => {
    assert.equal(approxTokens('abcdefg', 3.5), 2);
    assert.equal(approxTokens('日本語', 3.5), 3);
    assert.equal(approxTokens('😀', 3.5), 1);
    assert.equal(estimateInputTokens('claude-sonnet-4-5', ['a'.repeat(35)], c), 10 + 6);
    const c2 = parseLimitsConfig({ tokenizers: { 'claude-*': { kind: 'chars', charsPerToken: 5 } }, perMessageOverheadTokens: 0 });
    assert.equal(estimateInputTokens('claude-sonnet-4-5', ['a'.repeat(35)], c2), 7);
    assert.equal(estimateInputTokens('mistral-large', ['a'.repeat(35)], c2), 10);
  });
  test('recently seen texts are counted from a cache: same counts, per tokenizer, also after it rolls over', () => {
    const conv = ['You are a helpful assistant for the billing team.', 'Wie spät ist es in Tōkyō? 東京の天気は？'];
    const o = conv.reduce((s, t) => s + countTokens(t), 0);
    const cl = conv.reduce((s, t) => s + countCl100k(t), 0);
    assert.notEqual(o, cl, 'precondition: the two tokenizers count these texts differently');
    assert.equal(estimateInputTokens('gpt-4o', conv, c), o + 9);
    assert.equal(estimateInputTokens('gpt-4o', conv, c), o + 9, 'second time (cached)');
    assert.equal(estimateInputTokens('gpt-4-0613', conv, c), cl + 9, 'a cl100k model never gets o200k counts');
    for (let i = 0; i < 20_000; i++) estimateInputTokens('gpt-4o', [`message number ${i} of a long conversation`], c); // several roll-overs
    assert.equal(estimateInputTokens('gpt-4o', [`message number 19999 of a long conversation`], c), countTokens('message number 19999 of a long conversation') + 6);
    assert.equal(estimateInputTokens('gpt-4o', conv, c), o + 9);
  });
  test('large inputs are bounded in time and still roughly right', () => {
    const unit = 'The quick brown fox jumps over the lazy dog while 42 zebras watch. ';
    const big = unit.repeat(30_000); // ~2 MB
    const t0 = performance.now();
    const est = estimateInputTokens('gpt-4o', [big], c);
    const ms = performance.now() - t0;
    const exact = countTokens(unit) * 30_000;
    assert.ok(ms < 1000, `took ${ms} ms`);
    assert.ok(Math.abs(est - exact) / exact < 0.05, `estimate ${est} vs ${exact}`);
  });
});

describe('pricing', () => {
  const c = parseLimitsConfig({});
  test('shipped defaults, most specific glob wins', () => {
    assert.equal(priceFor('gpt-4o', c)?.inputPerMTok, 2.5);
    assert.equal(priceFor('gpt-4o-mini-2024-07-18', c)?.inputPerMTok, 0.15);
    assert.equal(priceFor('claude-sonnet-4-5-20250929', c)?.outputPerMTok, 15);
    assert.ok((priceFor('demo', c)?.inputPerMTok ?? 0) > 0);
    assert.equal(priceFor('unknown-model', c), undefined);
  });
  test('cost with cached input; config overrides defaults', () => {
    // gpt-4o: 1M input of which 400k cached, 100k output
    assert.equal(costUsd('gpt-4o', { inputTokens: 1_000_000, cachedInputTokens: 400_000, outputTokens: 100_000 }, c), 0.6 * 2.5 + 0.4 * 1.25 + 0.1 * 10);
    const c2 = parseLimitsConfig({ pricing: { 'gpt-4o': { inputPerMTok: 1, outputPerMTok: 1 } } });
    assert.equal(costUsd('gpt-4o', { inputTokens: 1_000_000, outputTokens: 0 }, c2), 1);
    assert.equal(costUsd('gpt-4o-mini', { inputTokens: 1_000_000, outputTokens: 0 }, c2), 0.15);
    assert.equal(costUsd('unknown', { inputTokens: 5, outputTokens: 5 }, c), 0);
  });
  test('Anthropic prompt-cache writes: 1.25× input for 5 minutes, 2× for an hour; reads at the cached rate', () => {
    const near = (a: number, b: number) => assert.ok(Math.abs(a - b) < 1e-6, `${a} ≈ ${b}`);
    // claude-sonnet-4: $3 in, $0.30 cache reads, $3.75 5-minute writes, $6 1-hour writes, $15 out.
    // 1M input: 100k fresh, 300k read, 600k written (200k of them for an hour); 10k output.
    near(costUsd('claude-sonnet-4-5', { inputTokens: 1_000_000, cachedInputTokens: 300_000, cacheWriteInputTokens: 600_000, cacheWrite1hInputTokens: 200_000, outputTokens: 10_000 }, c), 0.1 * 3 + 0.3 * 0.3 + 0.4 * 3.75 + 0.2 * 6 + 0.01 * 15);
    // Parts never exceed the input: writes beyond what is left after reads count only up to it.
    near(costUsd('claude-sonnet-4', { inputTokens: 100, cachedInputTokens: 60, cacheWriteInputTokens: 90, outputTokens: 0 }, c), (60 * 0.3 + 40 * 3.75) / 1e6);
    // A price without write rates bills writes at the input price; a configured 5-minute rate also serves 1-hour writes.
    const c3 = parseLimitsConfig({ pricing: { 'my-model': { inputPerMTok: 2, outputPerMTok: 4 }, 'my-cached': { inputPerMTok: 2, outputPerMTok: 4, cacheWritePerMTok: 3 } } });
    near(costUsd('my-model', { inputTokens: 1_000_000, cacheWriteInputTokens: 1_000_000, cacheWrite1hInputTokens: 500_000, outputTokens: 0 }, c3), 2);
    near(costUsd('my-cached', { inputTokens: 1_000_000, cacheWriteInputTokens: 1_000_000, cacheWrite1hInputTokens: 500_000, outputTokens: 0 }, c3), 3);
  });
});

describe('periods and headers', () => {
  test('calendar day and month in a time zone, DST included', () => {
    const p = periodsAt(Date.UTC(2026, 2, 8, 12), 'America/New_York'); // DST starts that day
    assert.equal(p.day, '2026-03-08');
    assert.equal(p.dayEnd - p.dayStart, 23 * 3600_000);
    const q = periodsAt(Date.UTC(2026, 11, 31, 16), 'Asia/Tokyo');
    assert.equal(q.day, '2027-01-01');
    assert.equal(q.month, '2027-01');
    assert.equal(q.monthEnd, Date.UTC(2027, 0, 31, 15));
    const s = periodsAt(Date.UTC(2026, 8, 6, 12), 'America/Santiago'); // midnight skipped by DST
    assert.equal(s.dayStart, Date.UTC(2026, 8, 6, 4));
  });
  test('UTC and its aliases take the Date path and agree with a zone computed through Intl', () => {
    const aliases = ['UTC', 'utc', 'Etc/UTC', 'GMT', 'Etc/GMT', 'GMT+0', 'GMT-0', 'GMT0', 'Etc/GMT-0', 'UCT', 'Etc/UCT', 'Universal', 'Zulu', 'Etc/Zulu', 'Greenwich', 'Etc/Greenwich'];
    for (const z of aliases) {
      assert.ok(isUtcZone(z), z);
      // Every name the fast path takes is one Intl resolves to UTC (so config accepts nothing Intl would refuse).
      assert.equal(new Intl.DateTimeFormat('en-US', { timeZone: z }).resolvedOptions().timeZone, 'UTC', z);
    }
    for (const z of ['Europe/London', 'Atlantic/Reykjavik', 'GMT+1', 'Etc/GMT+1', 'UTC+1', 'Africa/Abidjan', '']) assert.ok(!isUtcZone(z), z);
    // Atlantic/Reykjavik has been UTC+0 without DST since 1968: the same periods through Intl.
    let seed = 7;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const instants = [Date.UTC(2026, 11, 31, 23, 59, 59, 999), Date.UTC(2027, 0, 1), Date.UTC(2028, 1, 29, 12), Date.UTC(2026, 10, 30, 23, 59, 59)];
    for (let i = 0; i < 200; i++) instants.push(Date.UTC(1990, 0, 1) + Math.floor(rnd() * 60 * 365.25 * 86_400_000));
    for (const t of instants) {
      assert.deepEqual(periodsAt(t, 'UTC'), periodsAt(t, 'Atlantic/Reykjavik'), new Date(t).toISOString());
      assert.equal(dayOf(t, 'Etc/UTC'), dayOf(t, 'Atlantic/Reykjavik'));
      assert.equal(utcDay(t), new Date(t).toISOString().slice(0, 10));
    }
    assert.deepEqual(parseLimitsConfig({ timeZone: 'Etc/UTC' }).timeZone, 'Etc/UTC');
  });
  test('reset durations and Retry-After in OpenAI format', () => {
    assert.equal(formatResetDuration(17), '17ms');
    assert.equal(formatResetDuration(1000), '1s');
    assert.equal(formatResetDuration(1234), '1.234s');
    assert.equal(formatResetDuration(360_000), '6m0s');
    assert.equal(formatResetDuration(3_723_000), '1h2m3s');
    assert.equal(formatResetDuration(0), '0s');
    assert.equal(retryAfterSeconds(1), '1');
    assert.equal(retryAfterSeconds(1001), '2');
    assert.equal(retryAfterSeconds(0), '1');
  });
});

describe('GCRA arithmetic', () => {
  test('a cost of exactly the limit fits a full bucket, one more does not (any limit and period)', async () => {
    const { gcraTake, gcraAdjust } = await import('../../src/limits/gcra.js');
    const now = 1_781_000_000_000_000; // µs
    for (const periodMs of [1_000, 60_000, 3_600_000, 86_400_000]) {
      for (let limit = 1; limit <= 3000; limit++) {
        assert.equal(gcraTake(undefined, now, limit, limit, periodMs).allowed, true, `cost ${limit} of ${limit} per ${periodMs} ms`);
        assert.equal(gcraTake(undefined, now, limit + 1, limit, periodMs).allowed, false, `cost ${limit + 1} of ${limit} per ${periodMs} ms`);
        // Taking and refunding the same cost leaves nothing to track.
        const t = gcraTake(undefined, now, limit, limit, periodMs).tat;
        assert.equal(gcraAdjust(t, now, -limit, limit, periodMs), undefined);
      }
    }
  });
});
