import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseLlamaGuard } from './llama-guard.js';

test('safe replies', () => {
  assert.deepEqual(parseLlamaGuard('safe'), { safe: true, categories: [] });
  assert.deepEqual(parseLlamaGuard('\n\nsafe\n'), { safe: true, categories: [] });
  assert.deepEqual(parseLlamaGuard('Safe<|eot_id|>'), { safe: true, categories: [] });
});

test('unsafe replies with categories', () => {
  assert.deepEqual(parseLlamaGuard('unsafe\nS1'), { safe: false, categories: ['S1'] });
  assert.deepEqual(parseLlamaGuard('\n\nunsafe\nS2,S14'), { safe: false, categories: ['S2', 'S14'] });
  assert.deepEqual(parseLlamaGuard('unsafe\nS10, s3, S10'), { safe: false, categories: ['S10', 'S3'] });
});

test('anything unrecognised is unsafe (fail closed)', () => {
  assert.deepEqual(parseLlamaGuard(''), { safe: false, categories: [] });
  assert.deepEqual(parseLlamaGuard('I cannot classify this'), { safe: false, categories: [] });
  assert.equal(parseLlamaGuard('unsafe').safe, false);
});
