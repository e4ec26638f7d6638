/** The on/off benches' paired statistic (bench/lib/on-off.ts): each "on" round against its neighbouring "off" rounds. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pairedMedianPercent, type PairedRound } from '../../bench/lib/on-off.js';

const onOverOff = (on: number, off: number) => on / off;
const offOverOn = (on: number, off: number) => off / on;

test('each "on" round is compared with the mean of its neighbouring "off" rounds, and the median pair ratio is reported', () => {
  // The machine slows down over the run; every "on" round is 90 % of the "off" rounds around it.
  const rounds: PairedRound[] = [
    { mode: 'off', value: 1000 },
    { mode: 'on', value: 0.9 * ((1000 + 800) / 2) },
    { mode: 'off', value: 800 },
    { mode: 'on', value: 0.9 * ((800 + 600) / 2) },
    { mode: 'off', value: 600 },
  ];
  assert.equal(pairedMedianPercent(rounds, onOverOff), 90);
  // Best round against best round would say otherwise: 810 / 1000.
  assert.equal(Math.max(...rounds.filter((r) => r.mode === 'on').map((r) => r.value)) / 1000, 0.81);
});

test('a round without an "off" neighbour is compared with the median "off" round; one outlier pair does not move the median', () => {
  const rounds: PairedRound[] = [
    { mode: 'on', value: 60 }, // its right neighbour is "on": against the median "off" round (100; the mean would be 103.3)
    { mode: 'on', value: 90 }, // against 100
    { mode: 'off', value: 100 },
    { mode: 'on', value: 10 }, // an outlier round, against (100 + 130) / 2
    { mode: 'off', value: 130 },
    { mode: 'off', value: 80 },
  ];
  // Pair ratios 0.6, 0.9 and 0.043: the median is the first round's.
  assert.equal(pairedMedianPercent(rounds, onOverOff), 60);
  // CPU per request: lower is better, so the ratio is off ÷ on.
  assert.equal(pairedMedianPercent([{ mode: 'off', value: 100 }, { mode: 'on', value: 125 }, { mode: 'off', value: 100 }], offOverOn), 80);
});

test('no "on" or no "off" round: no ratio (NaN), not a made-up one', () => {
  assert.ok(Number.isNaN(pairedMedianPercent([{ mode: 'off', value: 1 }], onOverOff)));
  assert.ok(Number.isNaN(pairedMedianPercent([{ mode: 'on', value: 1 }], onOverOff)));
});
