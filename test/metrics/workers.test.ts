/**
 * /metrics of a real `portcullis serve --workers 2`: whichever worker takes the scrape answers
 * with every worker's metrics (aggregated by the primary), on the gateway port behind the token
 * and on a separate metrics port; counters survive a worker being killed and restarted.
 */
import { test } from 'node:test';
import { metricValue } from '../helpers/metrics.js';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../helpers/services.js';

const TOKEN = 'metrics-' + 'workers-token';
const CLI = join(import.meta.dirname, '../../src/cli/index.ts');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Served {
  child: ChildProcess;
  port: number;
  key: string;
  out(): string;
  /** Log lines (JSON) of the workers. */
  lines(): Array<Record<string, any>>;
  /** Pids of workers that logged `portcullis listening`. */
  listening(): Set<number>;
  stop(): Promise<void>;
}

async function serve(metricsYaml: string): Promise<Served> {
  const dir = mkdtempSync(join(tmpdir(), 'pcl-metrics-workers-'));
  const port = await freePort();
  const cfg = join(dir, 'c.yaml');
  writeFileSync(cfg, `dataDir: ${JSON.stringify(join(dir, 'data'))}\nlog: { level: info }\nmetrics:\n${metricsYaml}\n`);
  const child = spawn(process.execPath, ['--import', 'tsx', CLI, 'serve', '--config', cfg, '--port', String(port), '--workers', '2'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, PORTCULLIS_METRICS_TOKEN: TOKEN },
  });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise((r) => child.once('exit', r));
  const lines = () =>
    out
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => {
        try {
          return JSON.parse(l) as Record<string, any>;
        } catch {
          return {};
        }
      });
  const listening = () => new Set(lines().filter((l) => l.msg === 'portcullis listening').map((l) => l.pid as number));
  const s: Served = {
    child,
    port,
    key: '',
    out: () => out,
    lines,
    listening,
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
  const t0 = Date.now();
  while (Date.now() - t0 < 120_000) {
    if (child.exitCode !== null) break;
    const key = /(pcl_[A-Za-z0-9]{12}_[A-Za-z0-9_-]{43})/.exec(out)?.[1];
    if (key && listening().size >= 2) {
      s.key = key;
      return s;
    }
    await sleep(200);
  }
  await s.stop();
  throw new Error(`workers did not start: ${out}`);
}

async function chat(s: Served, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    // connection: close → a new connection each time, so the primary hands them to both workers.
    const res = await fetch(`http://127.0.0.1:${s.port}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${s.key}`, 'content-type': 'application/json', connection: 'close' },
      body: JSON.stringify({ model: 'demo', messages: [{ role: 'user', content: `hello ${i}` }] }),
    });
    assert.equal(res.status, 200, await res.text());
  }
}

/** Chat requests logged per worker pid (waits until `total` are logged). */
async function servedBy(s: Served, total: number): Promise<Map<number, number>> {
  for (let i = 0; ; i++) {
    const per = new Map<number, number>();
    for (const l of s.lines()) if (l.msg === 'request' && l.route === '/v1/chat/completions') per.set(l.pid, (per.get(l.pid) ?? 0) + 1);
    const sum = [...per.values()].reduce((a, b) => a + b, 0);
    if (sum >= total || i > 50) return per;
    await sleep(100);
  }
}

async function scrape(url: string, token?: string): Promise<{ status: number; text: string }> {
  const res = await fetch(url, { headers: { connection: 'close', ...(token ? { authorization: `Bearer ${token}` } : {}) } });
  return { status: res.status, text: await res.text() };
}

const value = metricValue;

const CHAT = { route: '/v1/chat/completions', status: '200', model: 'demo' };

test('serve --workers 2: /metrics on the gateway port (token) aggregates both workers and survives a worker restart', { timeout: 240_000 }, async () => {
  const s = await serve(`  tokenEnv: PORTCULLIS_METRICS_TOKEN`);
  try {
    const N = 24;
    await chat(s, N);
    const per = await servedBy(s, N);
    assert.equal([...per.values()].reduce((a, b) => a + b, 0), N);
    assert.equal(per.size, 2, `both workers served requests: ${JSON.stringify([...per])}`);
    assert.ok(Math.max(...per.values()) < N);
    const url = `http://127.0.0.1:${s.port}/metrics`;
    assert.equal((await scrape(url)).status, 401);
    for (let i = 0; i < 2; i++) {
      const r = await scrape(url, TOKEN);
      assert.equal(r.status, 200, r.text);
      assert.equal(value(r.text, 'portcullis_requests_total', CHAT), N, 'request counter = every request, not one worker’s share');
      assert.equal(value(r.text, 'portcullis_request_duration_seconds_count', { route: CHAT.route }), N);
      assert.equal(value(r.text, 'portcullis_request_duration_seconds_bucket', { route: CHAT.route, le: '+Inf' }), N);
      assert.equal(value(r.text, 'portcullis_prompt_tokens_count', { model: 'demo' }), N);
      // One family per name (merged, not concatenated); process gauges aggregated, start time omitted.
      assert.equal(r.text.split('\n').filter((l) => l === '# TYPE portcullis_requests_total counter').length, 1);
      assert.equal(r.text.split('\n').filter((l) => l.startsWith('portcullis_process_resident_memory_bytes')).length, 1);
      assert.ok(value(r.text, 'portcullis_process_resident_memory_bytes', {}) > 0);
    }

    // Kill one worker: the primary restarts it; the totals keep its counts from the last scrape.
    const victim = [...per.keys()][0]!;
    process.kill(victim, 'SIGKILL');
    const t0 = Date.now();
    while (Date.now() - t0 < 90_000 && s.listening().size < 3) await sleep(200);
    assert.equal(s.listening().size, 3, `worker restarted: ${s.out().slice(-2000)}`);
    await sleep(300);
    for (let i = 0; i < 2; i++) {
      const r = await scrape(url, TOKEN);
      assert.equal(r.status, 200, r.text);
      assert.equal(value(r.text, 'portcullis_requests_total', CHAT), N, 'counts of the killed worker kept');
      assert.equal(value(r.text, 'portcullis_request_duration_seconds_count', { route: CHAT.route }), N);
    }
    await chat(s, 6);
    await servedBy(s, N + 6);
    const r = await scrape(url, TOKEN);
    assert.equal(value(r.text, 'portcullis_requests_total', CHAT), N + 6);
  } finally {
    await s.stop();
  }
});

test('serve --workers 2: a separate metrics port (with token) serves the aggregate too', { timeout: 180_000 }, async () => {
  const mport = await freePort();
  const s = await serve(`  port: ${mport}\n  tokenEnv: PORTCULLIS_METRICS_TOKEN`);
  try {
    const N = 12;
    await chat(s, N);
    const per = await servedBy(s, N);
    assert.equal(per.size, 2, `both workers served requests: ${JSON.stringify([...per])}`);
    assert.equal((await scrape(`http://127.0.0.1:${s.port}/metrics`, TOKEN)).status, 404, 'not on the gateway port');
    const url = `http://127.0.0.1:${mport}/metrics`;
    assert.equal((await scrape(url)).status, 401);
    for (let i = 0; i < 3; i++) {
      const r = await scrape(url, TOKEN);
      assert.equal(r.status, 200);
      assert.equal(value(r.text, 'portcullis_requests_total', CHAT), N);
      assert.ok(value(r.text, 'portcullis_guard_verdicts_total', {}) >= N);
    }
  } finally {
    await s.stop();
  }
});
