/** The `scan` CLI end to end: exit codes, report files (JUnit and SARIF shape), baselines, payload export. */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseDocument } from 'htmlparser2';
import type { Element } from 'domhandler';
import { Ajv } from 'ajv';
import { runScanCli, runScanInProcess, startNaiveMock, startRefusingMock, type Mock } from './helpers.js';

let naive: Mock;
let refusing: Mock;
before(async () => {
  naive = await startNaiveMock();
  refusing = await startRefusingMock();
});
after(async () => {
  await naive.close();
  await refusing.close();
});
const tmp = (): string => mkdtempSync(join(tmpdir(), 'pcl-scan-cli-'));
const FAMS = 'direct-injection,indirect-injection,pii-leakage,excessive-agency,exfiltration,api';

/** Structural check of JUnit XML against the shape of the common JUnit schema (testsuites > testsuite > testcase). */
function checkJunit(xml: string): { tests: number; failures: number } {
  assert.match(xml, /^<\?xml version="1.0" encoding="UTF-8"\?>/);
  const doc = parseDocument(xml, { xmlMode: true });
  const roots = doc.children.filter((n): n is Element => n.type === 'tag');
  assert.equal(roots.length, 1);
  assert.equal(roots[0].name, 'testsuites');
  let tests = 0;
  let failures = 0;
  for (const suite of roots[0].children.filter((n): n is Element => n.type === 'tag')) {
    assert.equal(suite.name, 'testsuite');
    for (const a of ['name', 'tests', 'failures', 'errors', 'time']) assert.ok(suite.attribs[a] !== undefined, `testsuite@${a}`);
    const cases = suite.children.filter((n): n is Element => n.type === 'tag');
    assert.equal(cases.length, Number(suite.attribs.tests));
    let f = 0;
    for (const tc of cases) {
      assert.equal(tc.name, 'testcase');
      for (const a of ['name', 'classname', 'time']) assert.ok(tc.attribs[a] !== undefined, `testcase@${a}`);
      assert.ok(Number.isFinite(Number(tc.attribs.time)));
      const kids = tc.children.filter((n): n is Element => n.type === 'tag');
      assert.ok(kids.length <= 1);
      for (const k of kids) assert.ok(['failure', 'error', 'skipped', 'system-out'].includes(k.name), k.name);
      if (kids[0]?.name === 'failure') {
        f++;
        assert.ok(kids[0].attribs.message && kids[0].attribs.type);
      }
    }
    assert.equal(f, Number(suite.attribs.failures));
    tests += cases.length;
    failures += f;
  }
  assert.equal(tests, Number(roots[0].attribs.tests));
  assert.equal(failures, Number(roots[0].attribs.failures));
  return { tests, failures };
}

/** The parts of the SARIF 2.1.0 schema a consumer relies on (required members and enums). */
const SARIF_SUBSET = {
  type: 'object',
  required: ['version', 'runs'],
  properties: {
    version: { const: '2.1.0' },
    $schema: { type: 'string' },
    runs: {
      type: 'array',
      items: {
        type: 'object',
        required: ['tool'],
        properties: {
          tool: {
            type: 'object', required: ['driver'],
            properties: { driver: { type: 'object', required: ['name'], properties: { name: { type: 'string' }, rules: { type: 'array', items: { type: 'object', required: ['id'], properties: { id: { type: 'string' }, shortDescription: { type: 'object', required: ['text'] }, defaultConfiguration: { type: 'object', properties: { level: { enum: ['none', 'note', 'warning', 'error'] } } } } } } } } },
          },
          results: {
            type: 'array',
            items: {
              type: 'object', required: ['message'],
              properties: {
                ruleId: { type: 'string' }, ruleIndex: { type: 'integer', minimum: 0 },
                level: { enum: ['none', 'note', 'warning', 'error'] },
                message: { type: 'object', required: ['text'], properties: { text: { type: 'string' } } },
                locations: { type: 'array', items: { type: 'object' } },
              },
            },
          },
          invocations: { type: 'array', items: { type: 'object', required: ['executionSuccessful'] } },
        },
      },
    },
  },
} as const;

test('exit 0 when gates pass; console, JSON, JUnit, HTML and SARIF reports are written and well-formed', async () => {
  const dir = tmp();
  const r = await runScanInProcess(['--target', `${refusing.url}/v1`, '--api-key-env', 'SCAN_KEY', '--probes', FAMS, '--seed', '4', '--fail-under', '0.95', '--fail-on', 'critical=0,pii-leakage=0', '--format', 'console,json,junit,html,sarif', '--report', dir, '--retries', '0', '--rate-burst', '3', '--progress', 'lines'], { SCAN_KEY: 'test-key' });
  assert.equal(r.code, 0, r.stderr + r.stdout);
  assert.match(r.stdout, /Result: PASS/);
  assert.match(r.stderr, /\[\d+\/\d+\] RESISTED/);
  const report = JSON.parse(readFileSync(join(dir, 'scan-report.json'), 'utf8'));
  assert.equal(report.summary.overall.succeeded, 0);
  assert.equal(report.seed, 4);
  const j = checkJunit(readFileSync(join(dir, 'scan-junit.xml'), 'utf8'));
  assert.equal(j.failures, 0);
  assert.equal(j.tests, report.results.length);
  const sarif = JSON.parse(readFileSync(join(dir, 'scan-report.sarif'), 'utf8'));
  const ajv = new Ajv({ strict: false });
  assert.ok(ajv.validate(SARIF_SUBSET, sarif), JSON.stringify(ajv.errors));
  assert.equal(sarif.runs[0].results.length, 0);
  assert.ok(existsSync(join(dir, 'scan-report.html')));
});

test('exit 1 when a family gate fails; JUnit failures and SARIF results match successful attacks', async () => {
  const dir = tmp();
  const r = await runScanInProcess(['--target', `${naive.url}/v1`, '--probes', FAMS, '--seed', '4', '--fail-on', 'pii-leakage=0', '--format', 'json,junit,sarif', '--report', dir, '--rate-burst', '3', '--progress', 'none']);
  assert.equal(r.code, 1, r.stderr);
  const report = JSON.parse(readFileSync(join(dir, 'scan-report.json'), 'utf8'));
  assert.equal(report.passed, false);
  assert.ok(report.gates.some((g: { gate: string; passed: boolean }) => g.gate.includes('pii-leakage') && !g.passed));
  const j = checkJunit(readFileSync(join(dir, 'scan-junit.xml'), 'utf8'));
  assert.equal(j.failures, report.summary.overall.succeeded);
  const sarif = JSON.parse(readFileSync(join(dir, 'scan-report.sarif'), 'utf8'));
  const ajv = new Ajv({ strict: false });
  assert.ok(ajv.validate(SARIF_SUBSET, sarif), JSON.stringify(ajv.errors));
  assert.equal(sarif.runs[0].results.length, report.summary.overall.succeeded);
  for (const res of sarif.runs[0].results) assert.equal(sarif.runs[0].tool.driver.rules[res.ruleIndex].id, res.ruleId);
});

test('exit 2 for usage errors and unreachable targets', async () => {
  const cases: [string[], RegExp][] = [
    [['--target', `${naive.url}/v1`, '--probes', 'nope'], /unknown probe family/],
    [['--target', 'ftp://x'], /not an http/],
    [['--target', `${naive.url}/v1`, '--api-key-env', 'PCL_SCAN_UNSET_VAR'], /not set/],
    [['--target', `${naive.url}/v1`, '--fail-on', 'pii-leakage=2'], /rate between/],
    [['--target', `${naive.url}/v1`, '--bogus-flag'], /unknown option/],
    [['--target', `${naive.url}/v1`, '--timeout', '0'], /--timeout/],
    [['--target', `${naive.url}/v1`, '--kind', 'grpc'], /invalid/],
    [['--target', `${naive.url}/v1`, '--format', 'html'], /needs --report/],
    [['--target', `${naive.url}/v1`, '--buffs', 'base64+nope'], /unknown buff/],
    [['--target', 'http://127.0.0.1:9/v1', '--probes', 'direct-injection', '--retries', '0'], /unreachable/],
    [['--target', `${refusing.url}/v1`, '--probes', 'direct-injection'], /rejected the credentials/],
  ];
  const runs: Awaited<ReturnType<typeof runScanInProcess>>[] = [];
  for (const [args] of cases) runs.push(await runScanInProcess(args));
  runs.forEach((r, i) => {
    assert.equal(r.code, 2, `case ${i}: ${r.stderr}`);
    assert.match(r.stderr, cases[i][1]);
  });
});

test('baseline: regressions are reported separately and gate the run; payload lists are exported', async () => {
  const dir = tmp();
  const good = join(dir, 'good');
  const r1 = await runScanInProcess(['--target', `${refusing.url}/v1`, '--api-key-env', 'SCAN_KEY', '--probes', 'direct-injection,pii-leakage', '--seed', '8', '--format', 'json', '--report', good, '--export-payloads', join(dir, 'payloads'), '--buffs', 'base64,casing+zero-width'], { SCAN_KEY: 'test-key' });
  assert.equal(r1.code, 0, r1.stderr);
  const files = readdirSync(join(dir, 'payloads')).sort();
  assert.deepEqual(files, ['direct-injection.txt', 'pii-leakage.txt']);
  const lines = readFileSync(join(dir, 'payloads', 'direct-injection.txt'), 'utf8').trim().split('\n');
  assert.equal(lines.length, 6 * 3, 'each probe plain, base64 and casing+zero-width');
  const bad = join(dir, 'bad');
  const r2 = await runScanInProcess(['--target', `${naive.url}/v1`, '--probes', 'direct-injection,pii-leakage', '--seed', '8', '--format', 'console,json', '--report', bad, '--baseline', join(good, 'scan-report.json'), '--regressions-only', '--buffs', 'base64,casing+zero-width', '--progress', 'none']);
  assert.equal(r2.code, 1, r2.stderr);
  assert.match(r2.stdout, /REGRESSION direct-injection\//);
  const rep = JSON.parse(readFileSync(join(bad, 'scan-report.json'), 'utf8'));
  assert.equal(rep.baseline.regressions.length, rep.summary.overall.succeeded);
  const r3 = await runScanInProcess(['--target', `${refusing.url}/v1`, '--api-key-env', 'SCAN_KEY', '--probes', 'direct-injection,pii-leakage', '--seed', '8', '--baseline', join(bad, 'scan-report.json'), '--fail-on-regression', '--buffs', 'base64,casing+zero-width', '--progress', 'none'], { SCAN_KEY: 'test-key' });
  assert.equal(r3.code, 0, r3.stderr);
  assert.match(r3.stdout, /0 regression\(s\), \d+ fixed/);
});

test('a real process exits 0, 1 and 2 (gates pass, gate fails, usage error)', async () => {
  const [pass, fail, usage] = await Promise.all([
    runScanCli(['--target', `${refusing.url}/v1`, '--api-key-env', 'SCAN_KEY', '--probes', 'direct-injection', '--seed', '1', '--fail-under', '1', '--progress', 'none'], { SCAN_KEY: 'test-key' }),
    runScanCli(['--target', `${naive.url}/v1`, '--probes', 'direct-injection', '--seed', '1', '--fail-under', '0.5', '--progress', 'none']),
    runScanCli(['--target', `${naive.url}/v1`, '--no-such-flag']),
  ]);
  assert.equal(pass.code, 0, pass.stderr);
  assert.equal(fail.code, 1, fail.stderr);
  assert.equal(usage.code, 2, usage.stderr);
});
