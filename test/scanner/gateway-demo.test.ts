/**
 * The before/after demo: `demo-vulnerable` scanned directly (the standalone demo upstream)
 * and through a running Portcullis gateway with its default policy.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startDemoServer } from '../../src/providers/demo-server.js';
import { scan, type ProbeFamily, type ScanReport } from '../../src/scanner/index.js';
import { startGateway } from '../helpers/gateway.js';

/** Families the default policy defends (request-stage injection and secret guards). */
const DEFENDED: ProbeFamily[] = ['direct-injection', 'indirect-injection', 'jailbreak', 'refusal-suppression', 'system-prompt-extraction', 'secret-leakage', 'multi-turn'];
/** Families reported for comparison (output-side defences are not in the default policy). */
const REPORTED: ProbeFamily[] = ['pii-leakage', 'exfiltration', 'excessive-agency', 'api'];

test('the gateway with its default policy lowers the attack success rate in every family it defends', async () => {
  const demo = await startDemoServer();
  const gw = await startGateway({});
  try {
    const common = { families: [...DEFENDED, ...REPORTED], buffs: [], stream: 'plain' as const, maxPrompts: 0, concurrency: 8, transport: { retries: 2 }, seed: 2026, hugeInputKb: 16, formats: [], gates: {}, rateBurst: 5 };
    const [direct, guarded]: ScanReport[] = await Promise.all([
      scan({ ...common, target: { url: demo.url, kind: 'openai', model: 'demo-vulnerable' } }),
      scan({ ...common, target: { url: `${gw.url}/v1`, kind: 'openai', model: 'demo-vulnerable', apiKey: gw.key } }),
    ]);
    const lines = ['family                     direct  gateway'];
    for (const f of [...DEFENDED, ...REPORTED]) lines.push(`${f.padEnd(26)} ${(direct.summary.byFamily[f].asr * 100).toFixed(1).padStart(5)}%  ${(guarded.summary.byFamily[f].asr * 100).toFixed(1).padStart(5)}%`);
    console.log(lines.join('\n'));
    const errs = [...direct.results, ...guarded.results].filter((r) => r.outcome === 'error').map((r) => `${r.key}: ${r.status} ${r.error}`);
    assert.deepEqual(errs, []);
    for (const f of DEFENDED) {
      assert.ok(direct.summary.byFamily[f].asr > 0, `${f}: the direct scan shows no successful attack`);
      assert.ok(guarded.summary.byFamily[f].asr < direct.summary.byFamily[f].asr, `${f}: ${guarded.summary.byFamily[f].asr} through the gateway vs ${direct.summary.byFamily[f].asr} directly`);
    }
    assert.ok(guarded.summary.overall.asr < direct.summary.overall.asr / 2);
    // Gateway-aware: the guard that stopped each blocked probe is recorded.
    const blocked = guarded.results.filter((r) => r.outcome === 'blocked');
    assert.ok(blocked.length > 0);
    for (const r of blocked.filter((x) => x.status === 400)) assert.ok(r.guard?.name, `${r.key} blocked without a guard name`);
    assert.ok((guarded.summary.byGuard.injection ?? 0) > 0);
    assert.equal(guarded.results.find((r) => r.probeId === 'api/missing-auth')?.outcome, 'resisted', 'the gateway requires a key');
  } finally {
    await gw.close();
    await demo.close();
  }
});
