import { test } from 'node:test';
import assert from 'node:assert/strict';
import { retryAfterMs } from '../../src/util/retry-after.js';

test('Retry-After: delay-seconds (whole or fractional), HTTP dates in all three forms, capped at a day', () => {
  const now = Date.UTC(2026, 0, 1, 0, 0, 0);
  assert.equal(retryAfterMs('2'), 2000);
  assert.equal(retryAfterMs(' 120 '), 120_000);
  assert.equal(retryAfterMs('0.5'), 500);
  assert.equal(retryAfterMs('0'), 0);
  assert.equal(retryAfterMs('Thu, 01 Jan 2026 00:00:03 GMT', now), 3000, 'IMF-fixdate');
  assert.equal(retryAfterMs('Thursday, 01-Jan-26 00:00:04 GMT', now), 4000, 'RFC 850');
  assert.equal(retryAfterMs('Thu Jan  1 00:00:05 2026', now) !== undefined, true, 'asctime');
  assert.equal(retryAfterMs('Wed, 31 Dec 2025 23:00:00 GMT', now), 0, 'a date in the past: no wait');
  assert.equal(retryAfterMs('999999999999'), 86_400_000, 'an absurd delay is capped at a day');
  assert.equal(retryAfterMs('Fri, 01 Jan 2100 00:00:00 GMT', now), 86_400_000);
});

test('Retry-After: absent or unreadable values give undefined', () => {
  for (const v of [undefined, null, '', '  ', 'soon', '-5', '+5', '1e3', '1,5', '1'.repeat(13), '0x10', '5 s', 'NaN', 'Infinity']) {
    assert.equal(retryAfterMs(v as string | undefined), undefined, JSON.stringify(v));
  }
});
