/** Config loading: the example file, env-derived routes, strictness, frozen result. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { ConfigError, loadConfig } from '../../src/config/load.js';

const example = join(import.meta.dirname, '../../portcullis.example.yaml');

test('the commented example config is valid', () => {
  const c = loadConfig({ file: example, env: {} });
  assert.equal(c.server.bodyLimit, 4 * 1024 * 1024);
  assert.equal(c.routes[0]!.provider, 'demo');
});

test('no file: demo only; OPENAI_/ANTHROPIC_ env add providers and routes', () => {
  const plain = loadConfig({ env: {} });
  assert.deepEqual(Object.keys(plain.providers), ['demo']);
  const c = loadConfig({ env: { OPENAI_API_KEY: 'x', ANTHROPIC_API_KEY: 'y', OPENAI_BASE_URL: 'http://127.0.0.1:8000/v1' } });
  assert.equal(c.providers.openai!.type, 'openai');
  assert.equal((c.providers.openai as { baseUrl: string }).baseUrl, 'http://127.0.0.1:8000/v1');
  assert.ok(c.routes.some((r) => r.model === 'claude-*' && r.provider === 'anthropic'));
  assert.ok(c.routes.some((r) => r.model === 'gpt-*' && r.provider === 'openai'));
  assert.equal(c.routes.at(-1)!.model, '*', 'a custom OpenAI base URL serves any other model');
});

test('server.heapTrim: on by default, tunable, bad values named', () => {
  const c = loadConfig({ env: {} });
  assert.deepEqual({ ...c.server.heapTrim }, { enabled: true, idleUtilization: 0.25, minIntervalMs: 10_000, checkMs: 1_000 });
  assert.equal(loadConfig({ env: {}, overrides: { 'server.heapTrim.enabled': false } }).server.heapTrim.enabled, false);
  assert.throws(() => loadConfig({ env: {}, overrides: { 'server.heapTrim.idleUtilization': 2 } }), /server\.heapTrim\.idleUtilization/);
  assert.throws(() => loadConfig({ env: {}, overrides: { 'server.heapTrim.minIntervalMs': 10 } }), /server\.heapTrim\.minIntervalMs/);
  assert.equal(c.server.heapGrowthPercent, 20);
  assert.equal(loadConfig({ env: {}, overrides: { 'server.heapGrowthPercent': 0 } }).server.heapGrowthPercent, 0);
  assert.throws(() => loadConfig({ env: {}, overrides: { 'server.heapGrowthPercent': -5 } }), /server\.heapGrowthPercent/);
  assert.equal(loadConfig({ env: { PORTCULLIS_HEAP_GROWING_PERCENT: '50' } }).server.heapGrowthPercent, 50);
  assert.throws(() => loadConfig({ env: { PORTCULLIS_HEAP_GROWING_PERCENT: 'lots' } }), /PORTCULLIS_HEAP_GROWING_PERCENT/);
});

test('env overrides and frozen result', () => {
  const c = loadConfig({ env: { PORTCULLIS_PORT: '9999', PORTCULLIS_HOST: '0.0.0.0' } });
  assert.equal(c.server.port, 9999);
  assert.ok(Object.isFrozen(c) && Object.isFrozen(c.server));
  assert.throws(() => loadConfig({ env: { PORTCULLIS_PORT: 'abc' } }), /PORTCULLIS_PORT: expected an integer/);
});

test('errors name the path and the expectation', () => {
  assert.throws(() => loadConfig({ file: '/nonexistent/x.yaml', env: {} }), ConfigError);
  try {
    loadConfig({ env: {}, overrides: { 'server.bodyLimit': 'lots', 'upstream.firstByteTimeoutMs': -1 } });
    assert.fail('expected an error');
  } catch (e) {
    assert.match((e as Error).message, /server\.bodyLimit: .*expected a size such as 4mb/);
    assert.match((e as Error).message, /upstream\.firstByteTimeoutMs/);
  }
});
