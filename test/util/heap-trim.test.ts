/** The heap trimmer: a compacting GC when the process goes idle with a grown heap, never while busy, and its metrics. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import v8 from 'node:v8';
import vm from 'node:vm';
import { setTimeout as sleep } from 'node:timers/promises';
import { heapTrimStats, PAUSE_SHARE, startHeapTrimmer } from '../../src/util/heap-trim.js';
import { createMetrics, metricsConfigSchema } from '../../src/metrics/index.js';

const MB = 1024 * 1024;
const oldCommitted = () => v8.getHeapSpaceStatistics().filter((s) => s.space_name === 'old_space' || s.space_name === 'large_object_space').reduce((a, s) => a + s.space_size, 0);

type Item = { i: number; s: string; a: number[] };

/**
 * Grows the old generation with ~`mb` MB of objects that stay reachable long enough to be promoted,
 * then drops them, except every `survivorEvery`-th one (returned): a heap left fragmented, live
 * objects spread thin over the burst's pages, which a plain full GC cannot give back.
 */
async function burst(mb: number, survivorEvery = 0): Promise<Item[]> {
  let keep: Item[] | undefined = [];
  const survivors: Item[] = [];
  for (let i = 0; i < mb * 4_000; i++) {
    const it = { i, s: `item ${i} of the burst`, a: [i, i + 1, i + 2] };
    keep.push(it);
    if (survivorEvery > 0 && i % survivorEvery === 0) survivors.push(it);
    if (i % 20_000 === 0) await sleep(0); // scavenges happen meanwhile: what is kept gets promoted
  }
  assert.ok(keep.length > 0);
  keep = undefined;
  return survivors;
}

/**
 * A burst, then idle at least as long as it took: the trimmer's busy test is the event loop's
 * utilization since its last check, and a burst takes several times longer on a loaded machine.
 */
async function burstThenIdle(mb: number): Promise<void> {
  const t0 = performance.now();
  await burst(mb);
  await sleep(Math.max(300, 1.5 * (performance.now() - t0)));
}

function spin(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    /* the event loop is busy */
  }
}

test('trims when idle after a burst, not while busy, at most once per interval, and gives the old generation back', async () => {
  const metrics = createMetrics(metricsConfigSchema.parse({ processMetrics: false }));
  const t = startHeapTrimmer({ idleUtilization: 0.5, minIntervalMs: 2_000, checkMs: 3_600_000 });
  try {
    const before = heapTrimStats().trims;
    let grown = 0;
    let survivors: Item[] | undefined;
    // Two things of the host's speed are pinned down here. The burst waits for timers between its
    // chunks: on a loaded host it idles long enough that the check after it would not count as
    // busy, so the loop spins as long as the burst took (the window is then at least half busy).
    // And V8 may finish a full GC of its own in the idle 300 ms and release the burst's pages
    // itself: nothing is left to compact, so the burst is repeated (at most 4 times).
    for (let attempt = 0; attempt < 4; attempt++) {
      const t0 = performance.now();
      survivors = await burst(100, 40);
      const afterBurst = oldCommitted();
      assert.ok(afterBurst > 50 * MB, `old generation ${Math.round(afterBurst / MB)} MB after the burst`);
      spin(Math.max(100, performance.now() - t0));
      assert.equal(t.check(), false, 'busy since the last check: no trim');
      assert.equal(heapTrimStats().trims, before);
      await sleep(300);
      grown = oldCommitted();
      if (grown > 50 * MB) break;
    }
    assert.ok(grown > 50 * MB, `old generation still ${Math.round(grown / MB)} MB at the check`);
    const pause0 = heapTrimStats().pauseMs;
    const compacting0 = heapTrimStats().compacting;
    assert.equal(t.check(), true, 'idle with a grown heap: trim');
    // A plain full GC first, then a compacting one only if the heap is still spread thin: V8's own
    // forced GC often moves the sparse pages' survivors itself, so either way is right here.
    assert.ok(heapTrimStats().compacting - compacting0 <= 1);
    assert.ok(survivors!.length > 0);
    survivors = undefined;
    const trimmedAt = Date.now();
    // The next trim waits minIntervalMs, or longer after a long pause.
    const wait = Math.max(2_000, (heapTrimStats().pauseMs - pause0) / PAUSE_SHARE);
    const after = oldCommitted();
    assert.ok(after < grown - 30 * MB, `old generation ${Math.round(grown / MB)} -> ${Math.round(after / MB)} MB`);
    assert.equal(heapTrimStats().trims, before + 1);
    assert.ok(heapTrimStats().pauseMs > 0 && heapTrimStats().freedBytes > 0, JSON.stringify(heapTrimStats()));

    await burst(100);
    assert.equal(t.check(), false, 'busy again');
    await sleep(300);
    assert.ok(Date.now() - trimmedAt < wait);
    assert.equal(t.check(), false, 'within the wait after the last trim: none');
    await sleep(trimmedAt + wait + 100 - Date.now());
    let pause = heapTrimStats().pauseMs;
    assert.equal(t.check(), true, 'after the wait: the second burst is trimmed too');

    // Nothing grows any more: at most two more trims (for a young generation V8 did not shrink yet), then none.
    // Each check comes once the trimmer may trim again: 2 s after the last trim, or its longer wait
    // after a pause over 10 ms (on a busy host the compacting trims paused 22-24 ms: 4.5 s).
    const more: boolean[] = [];
    for (let i = 0; i < 3; i++) {
      const waitMs = Math.max(2_000, (heapTrimStats().pauseMs - pause) / PAUSE_SHARE);
      pause = heapTrimStats().pauseMs;
      await sleep(waitMs + 50);
      more.push(t.check());
    }
    assert.equal(more[2], false, `checks of an idle process that allocates nothing: ${more.join(', ')}`);

    const text = await metrics.registry.metrics();
    assert.match(text, new RegExp(`^portcullis_heap_trims_total ${heapTrimStats().trims}$`, 'm'));
    assert.match(text, /^portcullis_heap_trim_pause_seconds_total \d+(\.\d+)?(e-\d+)?$/m);
  } finally {
    t.stop();
  }
});

test('a young generation grown alone is trimmed without compacting the old one', async () => {
  // ~40 MB kept across scavenges: the young generation grows to hold the survivors (from whatever
  // size an earlier test left it at). The trimmer starts after it, so the old generation has not
  // grown since what the trimmer takes as live.
  await burst(40);
  const logged: Array<{ compacting?: boolean }> = [];
  const t = startHeapTrimmer({ idleUtilization: 0.5, minIntervalMs: 1_000, checkMs: 3_600_000 }, { debug: (o) => void logged.push(o), warn() {} });
  try {
    await sleep(300);
    const compacting0 = heapTrimStats().compacting;
    const trims0 = heapTrimStats().trims;
    assert.ok(v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')!.space_size > 8 * MB, 'the young generation grew');
    assert.equal(t.check(), true, 'idle with a grown young generation: trim');
    assert.equal(heapTrimStats().trims, trims0 + 1);
    assert.equal(heapTrimStats().compacting, compacting0, 'no compaction for the young generation alone');
    assert.equal(logged.at(-1)?.compacting, false);
  } finally {
    t.stop();
  }
});

test('an old generation that grows with live data in idle seconds is not compacted: full GCs of V8 there set what is live', async () => {
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc') as () => void;
  gc(); // what earlier tests left: the trimmer starts from what is live now
  const t = startHeapTrimmer({ idleUtilization: 0.5, minIntervalMs: 1_000, checkMs: 3_600_000 });
  const kept: Array<{ i: number; s: string; a: number[] }> = [];
  try {
    const compacting0 = heapTrimStats().compacting;
    // ~40 MB that stays reachable, added 5 MB at a time in idle seconds (a gateway's open streams),
    // each step followed by a full GC of V8's own: 25 MB over the size at start after the fifth.
    for (let step = 0; step < 8; step++) {
      for (let i = 0; i < 20_000; i++) {
        kept.push({ i, s: `kept ${step}.${i} of the live set`, a: [i, i + 1, i + 2] });
        if (i % 5_000 === 0) await sleep(5);
      }
      gc();
      await sleep(300); // its performance entry is delivered; the second stays idle
      t.check();
    }
    assert.equal(heapTrimStats().compacting, compacting0, 'the live old generation is not compacted');
    assert.equal(kept.length, 160_000);
  } finally {
    t.stop();
  }
});

test("a full GC of V8's in the first idle second after a busy one does not set what is live (its marking may have kept the burst's objects)", async () => {
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc') as () => void;
  gc();
  const t = startHeapTrimmer({ idleUtilization: 0.5, minIntervalMs: 1_000, checkMs: 3_600_000 });
  try {
    let keep: Item[] | undefined = [];
    const survivors: Item[] = [];
    for (let i = 0; i < 240_000; i++) {
      const it = { i, s: `burst ${i}`, a: [i, i + 1, i + 2] };
      keep.push(it);
      if (i % 40 === 0) survivors.push(it); // left spread over the burst's pages
      if (i % 20_000 === 0) await sleep(0);
    }
    spin(300);
    assert.equal(t.check(), false, 'busy');
    gc(); // finds the burst's objects still reachable, as one whose marking began during the burst
    assert.ok(keep.length > 0);
    keep = undefined;
    await sleep(300);
    const grown = oldCommitted();
    assert.equal(t.check(), true, 'idle after the burst: trim');
    const after = oldCommitted();
    assert.ok(after < grown - 20 * MB, `the burst's old generation given back: ${Math.round(grown / MB)} -> ${Math.round(after / MB)} MB`);
    assert.ok(survivors.length > 0);
  } finally {
    t.stop();
  }
});

test('an old generation grown with live data V8 did not report is not compacted: a plain full GC measures what is live first', async () => {
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc') as () => void;
  gc();
  const t = startHeapTrimmer({ idleUtilization: 0.5, minIntervalMs: 1_000, checkMs: 3_600_000 });
  try {
    // 40 MB that stay live, allocated while every check sees a busy loop: V8's full GCs meanwhile
    // are not taken as the live size, so the trimmer sees an old generation grown past it.
    const live: Item[][] = [];
    for (let round = 0; round < 4; round++) {
      const chunk: Item[] = [];
      for (let i = 0; i < 40_000; i++) chunk.push({ i, s: `live ${round} ${i}`, a: [i, i + 1, i + 2] });
      live.push(chunk);
      await sleep(0);
      spin(150);
      assert.equal(t.check(), false, 'busy');
    }
    await sleep(300);
    const compacting0 = heapTrimStats().compacting;
    const trims0 = heapTrimStats().trims;
    assert.equal(t.check(), true, 'idle with a grown old generation: a full GC');
    assert.equal(heapTrimStats().trims, trims0 + 1);
    assert.equal(heapTrimStats().compacting, compacting0, 'all of it live: not compacted (that would copy it, an RSS spike of its size)');
    assert.equal(live.length, 4);
  } finally {
    t.stop();
  }
});

test('a runtime where no GC can be started: the trimmer logs once and stops, never throws', async () => {
  const warnings: string[] = [];
  const t = startHeapTrimmer(
    {
      idleUtilization: 0.5,
      minIntervalMs: 1_000,
      checkMs: 3_600_000,
      gc: () => {
        throw new Error('gc is not available');
      },
    },
    { debug() {}, warn: (_o, m) => void warnings.push(m) },
  );
  try {
    const before = heapTrimStats().trims;
    // Until it has tried (V8 may release a burst on its own before the trimmer sees it grown).
    for (let i = 0; i < 4 && warnings.length === 0; i++) {
      await burstThenIdle(100);
      assert.equal(t.check(), false);
    }
    assert.deepEqual(warnings, ['heap trimmer stopped: a full GC cannot be started in this process']);
    await burstThenIdle(100);
    assert.equal(t.check(), false, 'stopped: no second attempt');
    assert.deepEqual(warnings, ['heap trimmer stopped: a full GC cannot be started in this process']);
    assert.equal(heapTrimStats().trims, before);
  } finally {
    t.stop();
  }
});

test('after a long pause the next trim waits longer (pauses stay under 0.5 % of wall time)', async () => {
  v8.setFlagsFromString('--expose-gc');
  const realGc = vm.runInNewContext('gc') as () => void;
  // V8's full GC plus 12 ms: the wait after it is at least 2.4 s, well over minIntervalMs.
  const t = startHeapTrimmer({ idleUtilization: 0.5, minIntervalMs: 500, checkMs: 3_600_000, gc: () => (realGc(), spin(12)) });
  try {
    let pause0 = 0;
    let trimmed = false;
    for (let i = 0; i < 4 && !trimmed; i++) {
      await burstThenIdle(100);
      pause0 = heapTrimStats().pauseMs;
      trimmed = t.check();
    }
    assert.ok(trimmed, 'idle with a grown heap: trim');
    const trimmedAt = Date.now();
    const wait = (heapTrimStats().pauseMs - pause0) / PAUSE_SHARE;
    assert.ok(wait >= 2_400, `wait ${wait} ms`);
    await burst(100);
    assert.equal(t.check(), false, 'busy');
    await sleep(Math.max(300, trimmedAt + 1_000 - Date.now())); // well past minIntervalMs
    assert.ok(Date.now() - trimmedAt < wait - 100);
    assert.equal(t.check(), false, 'idle, grown, past minIntervalMs, but within the longer wait');
    await sleep(trimmedAt + wait + 100 - Date.now());
    let again = t.check();
    // V8 may have collected the second burst on its own during the wait: grow it again.
    for (let i = 0; i < 3 && !again; i++) {
      await burstThenIdle(100);
      again = t.check();
    }
    assert.ok(again, 'after the longer wait: trim again');
  } finally {
    t.stop();
  }
});

test('server.heapGrowthPercent: the old generation stays closer to its live size, and a command-line flag wins', async () => {
  const { execFileSync } = await import('node:child_process');
  const fixture = new URL('./fixtures/heap-growth-churn.ts', import.meta.url).pathname;
  const run = (percent: number, ms: number, flags: string[] = []) =>
    JSON.parse(execFileSync(process.execPath, [...flags, '--import', 'tsx', fixture, String(percent), String(ms)], { encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' } })) as { from: string; oldPeakMB: number };
  // The comparison is with a fixed 4x growth given on the command line (which the config's 20 %
  // must not override): V8's adaptive default depends on the machine's speed, and with another
  // test file running beside this one it peaked at 32.7 MB once (44.7-48.2 MB alone).
  const wide = run(20, 5_000, ['--heap-growing-percent=300']);
  const capped = run(20, 5_000);
  assert.equal(wide.from, 'command line');
  assert.equal(capped.from, 'config');
  // Measured 45.5-47.7 MB at 300 % (on the command line) and 27.2-28.5 MB at 20 % (from the config), beside a busy core.
  assert.ok(capped.oldPeakMB < wide.oldPeakMB * 0.8, `old space peak ${capped.oldPeakMB} MB at 20 % vs ${wide.oldPeakMB} MB at 300 %`);
  assert.equal(run(0, 100).from, 'v8 default');
});
