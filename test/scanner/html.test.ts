/** The HTML report rendered in headless Chromium (playwright-core + Debian's chromium), with a screenshot. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { scan, PROBE_FAMILIES } from '../../src/scanner/index.js';
import { renderHtml } from '../../src/scanner/reports/html.js';
import { startNaiveMock } from './helpers.js';

const CHROMIUM = '/usr/bin/chromium';
const missing = !existsSync(CHROMIUM);
if (missing && !process.env.CI) console.log(`# skipping HTML rendering test: ${CHROMIUM} is not installed (apt-get install chromium); it is required when CI is set`);

test('HTML report renders in Chromium: summary, per-family chart, escaped findings, no scripts or network', { skip: missing && !process.env.CI ? `${CHROMIUM} missing` : false }, async () => {
  const naive = await startNaiveMock();
  let report;
  try {
    report = await scan({
      target: { url: `${naive.url}/v1`, kind: 'openai', model: 'm' },
      families: PROBE_FAMILIES.filter((f) => f !== 'dos'), buffs: [], stream: 'plain', maxPrompts: 30, concurrency: 4,
      transport: { retries: 1 }, seed: 21, hugeInputKb: 8, formats: [], gates: { failOn: { critical: 0 } }, rateBurst: 3,
    });
    for (const r of report.results) if (r.outcome === 'error') console.log(`# error result ${r.key}: ${r.error}`);
  } finally {
    await naive.close();
  }
  // A hostile reply must show up as text, never run or load anything.
  const hostile = `<script>document.title='pwned'</script><img src="https://evil.example/x.png" onerror="document.title='pwned'"><a href="javascript:alert(1)">x</a>`;
  report.results[0] = { ...report.results[0], outcome: 'succeeded', reply: hostile, prompt: '"><svg onload=alert(1)>' };
  const dir = join(tmpdir(), 'pcl-scan-html');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'scan-report.html');
  writeFileSync(file, renderHtml(report));

  const t0 = Date.now();
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    console.log(`# chromium launched in ${Date.now() - t0} ms`);
    const page = await browser.newPage({ viewport: { width: 1200, height: 1400 } });
    const requests: string[] = [];
    const dialogs: string[] = [];
    page.on('request', (r) => requests.push(r.url()));
    page.on('dialog', (d) => {
      dialogs.push(d.message());
      void d.dismiss();
    });
    await page.goto(pathToFileURL(file).href);
    assert.match(await page.title(), /^Portcullis scan report/);
    assert.equal(await page.locator('h1').textContent(), 'Portcullis scan report');
    const bars = await page.locator('svg rect[fill]:not([fill="#eceff1"])').count();
    assert.equal(bars, Object.keys(report.summary.byFamily).length, 'one bar per family');
    const familyRows = await page.locator('h2:has-text("By family") + table tr').count();
    assert.equal(familyRows, Object.keys(report.summary.byFamily).length + 1);
    assert.equal(await page.locator('details.f').count(), report.results.length);
    const shown = page.locator('pre', { hasText: "document.title='pwned'" });
    assert.equal(await shown.count(), 1);
    assert.equal(await shown.textContent(), hostile, 'hostile reply is shown verbatim as text');
    assert.equal(await page.locator('script').count(), 0);
    assert.equal(await page.locator('details.f img').count(), 0);
    assert.deepEqual(dialogs, []);
    assert.notEqual(await page.title(), 'pwned');
    assert.deepEqual(requests.filter((u) => !u.startsWith('file://')), [], 'no network requests');
    assert.match((await page.locator('.card').nth(5).textContent()) ?? '', /FAIL/);
    const shot = join(dir, 'scan-report.png');
    await page.screenshot({ path: shot, fullPage: false });
    assert.ok(existsSync(shot));
    console.log(`# screenshot: ${shot}`);
  } finally {
    await browser.close();
  }
});
