/** The on/off profile split (bench/lib/profile-rounds.ts): samples go to the round they fall in, per request of its mode. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { attribute, frameKey, type CpuProfile } from '../../bench/lib/profile-rounds.js';

const frame = (functionName: string, url = '', lineNumber = 0) => ({ functionName, url, lineNumber });

// root -> a (dist/x.js:1) -> b (dist/y.js:5); root -> idle
const nodes: CpuProfile['nodes'] = [
  { id: 1, callFrame: frame('(root)'), children: [2, 4] },
  { id: 2, callFrame: frame('a', 'file:///srv/app/dist/x.js', 0), children: [3] },
  { id: 3, callFrame: frame('b', 'file:///srv/app/dist/y.js', 4) },
  { id: 4, callFrame: frame('(idle)') },
];

test('samples are split by round and counted per request of the round\'s mode, self and inclusive', () => {
  // Samples every 100 µs from t = 1000: 1100 … 2000 (10 samples).
  const samples = [2, 3, 3, 4, /* gap */ 2, 2, 3, 3, 3, 3];
  const p: CpuProfile = { nodes, startTime: 1000, samples, timeDeltas: samples.map(() => 100) };
  const rounds = [
    { mode: 0 as const, t0: 1050, t1: 1450, requests: 2 }, // samples at 1100, 1200, 1300, 1400
    { mode: 1 as const, t0: 1550, t1: 2000, requests: 4 }, // samples at 1600 … 2000 (1500 is between rounds)
  ];
  const s = attribute(p, rounds, 100);
  assert.deepEqual(s.requests, [2, 4]);
  const self = new Map(s.self.map((r) => [r.fn, r.us]));
  assert.deepEqual(self.get('a dist/x.js:1'), [50, 25]); // one sample in mode 0 (100 µs / 2), one in mode 1 (100 / 4)
  assert.deepEqual(self.get('b dist/y.js:5'), [100, 100]); // two in mode 0, four in mode 1
  assert.deepEqual(self.get('(idle) :1'), [50, 0]);
  const incl = new Map(s.inclusive.map((r) => [r.fn, r.us]));
  assert.deepEqual(incl.get('a dist/x.js:1'), [150, 125]);
  assert.deepEqual(s.busyUs, [150, 125], 'idle is not busy');
  assert.equal(s.self[0]!.fn, 'b dist/y.js:5', 'largest difference first');
});

test('function keys shorten build and package paths so two copies of a build compare', () => {
  assert.equal(frameKey(frame('prepare', 'file:///work/main/dist/audit/store.js', 194)), 'prepare dist/audit/store.js:195');
  assert.equal(frameKey(frame('prepare', 'file:///tmp/other/dist/audit/store.js', 194)), 'prepare dist/audit/store.js:195');
  assert.equal(frameKey(frame('', 'file:///work/main/node_modules/undici/lib/core/request.js', 47)), '(anonymous) node_modules/undici/lib/core/request.js:48');
  assert.equal(frameKey(frame('emit', 'node:internal/streams/readable', 9)), 'emit node:streams/readable:10');
});
