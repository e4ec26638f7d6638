/** readBounded: an upstream body read whole, up to a limit, through a node stream or any async iterable. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough, Readable } from 'node:stream';
import { readBounded } from '../../src/server/upstream-errors.js';
import { GatewayError } from '../../src/errors.js';

test('a stream in several chunks, and an async iterable, read whole', async () => {
  const s = new PassThrough();
  const p = readBounded(s, 100);
  s.write('{"a":');
  setImmediate(() => s.end(new Uint8Array(Buffer.from('1}'))));
  assert.equal((await p).toString(), '{"a":1}');
  async function* gen() {
    yield new Uint8Array(Buffer.from('ab'));
    yield new Uint8Array(Buffer.from('cd'));
  }
  assert.equal((await readBounded(gen(), 10)).toString(), 'abcd');
  assert.equal((await readBounded(Readable.from([]), 10)).length, 0);
});

test('over the limit: PCL_UPSTREAM_BAD_RESPONSE and the stream destroyed', async () => {
  const s = new PassThrough();
  const p = readBounded(s, 8);
  s.write('12345');
  s.write('67890');
  await assert.rejects(p, (e) => e instanceof GatewayError && e.code === 'PCL_UPSTREAM_BAD_RESPONSE');
  assert.ok(s.destroyed);
  async function* gen() {
    yield new Uint8Array(20);
  }
  await assert.rejects(readBounded(gen(), 8), (e) => e instanceof GatewayError && e.code === 'PCL_UPSTREAM_BAD_RESPONSE');
});

test('an error, a close before the end, or a body already failed reject (never hang)', async () => {
  const a = new PassThrough();
  const pa = readBounded(a, 100);
  a.write('x');
  a.destroy(new Error('socket reset'));
  await assert.rejects(pa, /socket reset/);

  const b = new PassThrough();
  const pb = readBounded(b, 100);
  b.write('x');
  b.destroy();
  await assert.rejects(pb, (e: any) => e.code === 'ERR_STREAM_PREMATURE_CLOSE');

  const c = new PassThrough();
  c.on('error', () => {});
  c.destroy(new Error('gone before read'));
  await new Promise((r) => setImmediate(r));
  await assert.rejects(readBounded(c, 100), /gone before read/);

  const d = new PassThrough();
  d.destroy();
  await new Promise((r) => setImmediate(r));
  await assert.rejects(readBounded(d, 100), (e: any) => e.code === 'ERR_STREAM_PREMATURE_CLOSE');
});
