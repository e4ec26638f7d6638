/** The CLI: first-start key printing, `keys create --json`, `config check`. Real processes. */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../helpers/services.js';

const CLI = ['--import', 'tsx', join(import.meta.dirname, '../../src/cli/index.ts')];
/** The Node flags `npm start` runs the gateway with (package.json): `serve` is tested under them. */
const START_FLAGS = (() => {
  const start = (JSON.parse(readFileSync(join(import.meta.dirname, '../../package.json'), 'utf8')) as { scripts: { start: string } }).scripts.start.split(/\s+/);
  assert.equal(start[0], 'node');
  const flags: string[] = [];
  for (const w of start.slice(1)) if (w.startsWith('--')) flags.push(w);
  else break;
  return flags;
})();
const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'pcl-cli-'));
  dirs.push(d);
  return d;
};

/** Starts `serve` on port 0-ish, waits for "listening", returns stdout and kills it. */
async function serveOnce(dataDir: string, port: number): Promise<string> {
  const child = spawn(process.execPath, [...START_FLAGS, ...CLI, 'serve', '--data-dir', dataDir, '--port', String(port)], { env: { ...process.env, PORTCULLIS_LOG_LEVEL: 'warn' } });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const exited = new Promise((r) => child.once('exit', r));
  try {
    const t0 = Date.now();
    while (!/listening on/.test(out) && Date.now() - t0 < 60_000) await new Promise((r) => setTimeout(r, 50));
    assert.match(out, /listening on http:\/\/127\.0\.0\.1:/);
    const key = /(pcl_[A-Za-z0-9]{12}_[A-Za-z0-9_-]{43})/.exec(out)?.[1];
    if (key) {
      const res = await fetch(`http://127.0.0.1:${port}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'demo', messages: [{ role: 'user', content: 'hi' }] }) });
      assert.equal(res.status, 200, `the printed key works: ${await res.text()}`);
    }
  } finally {
    child.kill('SIGTERM');
    await exited;
  }
  return out;
}

test('first start prints the bootstrap key once; later starts do not', async () => {
  const dir = tmp();
  const first = await serveOnce(dir, await freePort());
  assert.match(first, /Bootstrap API key for tenant "default"/);
  assert.match(first, /pcl_[A-Za-z0-9]{12}_[A-Za-z0-9_-]{43}/);
  const second = await serveOnce(dir, await freePort());
  assert.doesNotMatch(second, /pcl_[A-Za-z0-9]{12}_/);
});

test('keys create --json works offline and the key authenticates against a gateway on the same data dir', async () => {
  const dir = tmp();
  const r = spawnSync(process.execPath, [...CLI, 'keys', 'create', '--tenant', 'acme', '--name', 'checkout', '--json', '--data-dir', dir], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const k = JSON.parse(r.stdout);
  assert.deepEqual(Object.keys(k).sort(), ['id', 'key', 'tenant']);
  assert.equal(k.tenant, 'acme');
  assert.match(k.key, new RegExp(`^pcl_${k.id}_[A-Za-z0-9_-]{43}$`));
  const port = await freePort();
  const child = spawn(process.execPath, [...CLI, 'serve', '--data-dir', dir, '--port', String(port)], { env: { ...process.env, PORTCULLIS_LOG_LEVEL: 'warn' } });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  const exited = new Promise((r) => child.once('exit', r));
  try {
    const t0 = Date.now();
    while (!/listening on/.test(out) && Date.now() - t0 < 60_000) await new Promise((r) => setTimeout(r, 50));
    const res = await fetch(`http://127.0.0.1:${port}/v1/models`, { headers: { authorization: `Bearer ${k.key}` } });
    assert.equal(res.status, 200);
  } finally {
    child.kill('SIGTERM');
    await exited;
  }
});

test('config check: valid file exits 0, invalid names the path and expectation', () => {
  const dir = tmp();
  const good = join(dir, 'good.yaml');
  writeFileSync(good, 'server:\n  port: 9000\nproviders:\n  demo: { type: demo }\nroutes:\n  - { model: "demo*", provider: demo }\n');
  const ok = spawnSync(process.execPath, [...CLI, 'config', 'check', good], { encoding: 'utf8' });
  assert.equal(ok.status, 0, ok.stderr);
  assert.match(ok.stdout, /valid/);
  const bad = join(dir, 'bad.yaml');
  writeFileSync(bad, 'server:\n  port: "eighty"\n  colour: blue\nproviders:\n  x: { type: nope }\nroutes:\n  - { model: "a", provider: missing }\n');
  const r = spawnSync(process.execPath, [...CLI, 'config', 'check', bad], { encoding: 'utf8' });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /server\.port: Expected number/);
  assert.match(r.stderr, /server: unknown key\(s\) "colour"/);
  assert.match(r.stderr, /providers\.x\.type: expected one of openai\|anthropic\|demo/);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
});
