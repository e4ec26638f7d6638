/** Per-thread CPU accounting of the benches (bench/lib/threads.ts). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { MAIN_THREAD, threadCpuDelta, threadCpuNs } from '../../bench/lib/threads.js';

const linux = process.platform === 'linux';

test('a named worker thread\'s CPU time is counted under its name, the event loop\'s under "main"', { skip: linux ? false : 'reads /proc (Linux only)' }, async () => {
  const spin = (ms: number) => {
    const end = performance.now() + ms;
    while (performance.now() < end);
  };
  // The worker names itself as the audit writer does, then burns ~300 ms of CPU and reports back
  // (its `on` listener keeps it alive until terminated: an ended thread leaves /proc/self/task).
  const w = new Worker(
    `const { writeFileSync } = require('node:fs'); const { parentPort } = require('node:worker_threads');
     writeFileSync('/proc/thread-self/comm', 'pcl-test-spin');
     parentPort.on('message', () => { const end = performance.now() + 300; while (performance.now() < end); parentPort.postMessage('done'); });
     parentPort.postMessage('named');`,
    { eval: true },
  );
  await new Promise((r) => w.once('message', r));
  const a = threadCpuNs()!;
  const done = new Promise((r) => w.once('message', r));
  w.postMessage('go');
  await done;
  spin(100); // the main thread's own share
  const d = threadCpuDelta(a, threadCpuNs()!);
  await w.terminate();
  const spun = (d.get('pcl-test-spin') ?? 0) / 1e6;
  const main = (d.get(MAIN_THREAD) ?? 0) / 1e6;
  // Loose bounds: a shared machine may deschedule either thread, but never counts one's time as the other's.
  assert.ok(spun > 150 && spun < 1000, `worker ${spun} ms`);
  assert.ok(main > 50 && main < 290, `main ${main} ms (the worker's 300 ms must not be in it)`);
});

test('threadCpuDelta: per group, groups that appeared count from zero', () => {
  const d = threadCpuDelta(new Map([['main', 100], ['x', 5]]), new Map([['main', 250], ['x', 5], ['new', 7]]));
  assert.deepEqual([...d], [['main', 150], ['x', 0], ['new', 7]]);
});
