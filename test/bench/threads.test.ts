/** Per-thread CPU accounting of the benches (bench/lib/threads.ts). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { MAIN_THREAD, threadCpuDelta, threadCpuNs } from '../../bench/lib/threads.js';

const linux = process.platform === 'linux';

test('a named worker thread\'s CPU time is counted under its name, the event loop\'s under "main"', { skip: linux ? false : 'reads /proc (Linux only)' }, async () => {
  // Each thread spins until it has used a set amount of CPU time by its own clock
  // (/proc/thread-self/schedstat, ns), not of wall time: on a loaded machine a thread spinning for
  // 300 ms of wall time may get a fraction of that on a CPU, and the bounds below must hold anyway.
  const spinCpu = (ms: number) => {
    const cpu = () => Number(readFileSync('/proc/thread-self/schedstat', 'utf8').split(' ')[0]);
    const end = cpu() + ms * 1e6;
    while (cpu() < end) for (let i = 0; i < 1e4; i++);
  };
  // The worker names itself as the audit writer does, then burns 300 ms of CPU and reports back
  // (its `on` listener keeps it alive until terminated: an ended thread leaves /proc/self/task).
  const w = new Worker(
    `const { readFileSync, writeFileSync } = require('node:fs'); const { parentPort } = require('node:worker_threads');
     writeFileSync('/proc/thread-self/comm', 'pcl-test-spin');
     const cpu = () => Number(readFileSync('/proc/thread-self/schedstat', 'utf8').split(' ')[0]);
     parentPort.on('message', () => { const end = cpu() + 300e6; while (cpu() < end) for (let i = 0; i < 1e4; i++); parentPort.postMessage('done'); });
     parentPort.postMessage('named');`,
    { eval: true },
  );
  await new Promise((r) => w.once('message', r));
  const a = threadCpuNs()!;
  const done = new Promise((r) => w.once('message', r));
  w.postMessage('go');
  await done;
  spinCpu(100); // the main thread's own share
  const d = threadCpuDelta(a, threadCpuNs()!);
  await w.terminate();
  const spun = (d.get('pcl-test-spin') ?? 0) / 1e6;
  const main = (d.get(MAIN_THREAD) ?? 0) / 1e6;
  // One thread's time is never counted as the other's: the worker's 300 ms are under its name, and
  // the main thread's 100 ms (plus reading /proc and waiting) do not include them.
  assert.ok(spun >= 300 && spun < 1000, `worker ${spun} ms`);
  assert.ok(main >= 100 && main < 290, `main ${main} ms (the worker's 300 ms must not be in it)`);
});

test('threadCpuDelta: per group, groups that appeared count from zero', () => {
  const d = threadCpuDelta(new Map([['main', 100], ['x', 5]]), new Map([['main', 250], ['x', 5], ['new', 7]]));
  assert.deepEqual([...d], [['main', 150], ['x', 0], ['new', 7]]);
});
