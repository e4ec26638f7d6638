/** UpstreamAbort: the EventEmitter-style abort signal the proxy gives undici and the providers. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MockAgent } from 'undici';
import { UpstreamAbort } from '../../src/util/abort.js';

test('abort sets reason once and calls each listener once; removed listeners are not called', () => {
  const s = new UpstreamAbort();
  const calls: string[] = [];
  const a = () => calls.push('a');
  const b = () => calls.push('b');
  s.once('abort', a).on('abort', b);
  s.once('other', () => calls.push('other'));
  assert.equal(s.listenerCount, 2);
  s.removeListener('abort', a);
  assert.equal(s.listenerCount, 1);
  const reason = new Error('client gone');
  s.abort(reason);
  s.abort(new Error('second'));
  assert.deepEqual(calls, ['b']);
  assert.equal(s.aborted, true);
  assert.equal(s.reason, reason);
  assert.equal(s.listenerCount, 0);
  s.once('abort', a); // after the abort: never called
  assert.equal(s.listenerCount, 0);
  assert.deepEqual(calls, ['b']);
  const d = new UpstreamAbort();
  d.abort();
  assert.ok(d.reason instanceof Error, 'a default reason');
});

test('undici accepts it as a signal: an abort rejects the request with the given reason, a finished request leaves no listener', async () => {
  const agent = new MockAgent();
  agent.disableNetConnect();
  const pool = agent.get('http://upstream.test');
  pool.intercept({ path: '/slow', method: 'POST' }).reply(200, 'late').delay(5000);
  pool.intercept({ path: '/fast', method: 'POST' }).reply(200, 'ok');
  const done = new UpstreamAbort();
  const res = await agent.request({ origin: 'http://upstream.test', path: '/fast', method: 'POST', body: '{}', signal: done as unknown as AbortSignal });
  assert.equal(await res.body.text(), 'ok');
  await new Promise((r) => setImmediate(r)); // the body's 'close' comes after its end
  assert.equal(done.listenerCount, 0, 'undici removed its listener when the body closed');
  const s = new UpstreamAbort();
  const why = new Error('total timeout');
  const p = agent.request({ origin: 'http://upstream.test', path: '/slow', method: 'POST', body: '{}', signal: s as unknown as AbortSignal });
  setTimeout(() => s.abort(why), 20);
  await assert.rejects(p, (e) => e === why);
  await agent.close();
});
