/**
 * Load generation: wrk (Debian package) when installed, autocannon (npm) otherwise.
 * Both return the same `LoadResult` with latencies in milliseconds.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';

/** One fixed-duration load phase. */
export interface LoadSpec {
  url: string;
  body: string;
  headers: Record<string, string>;
  connections: number;
  durationSec: number;
}

/** Result of one load phase. */
export interface LoadResult {
  tool: 'wrk' | 'autocannon';
  connections: number;
  durationSec: number;
  requests: number;
  rps: number;
  /** Latency percentiles in ms. */
  p50: number;
  p90: number;
  p99: number;
  mean: number;
  max: number;
  /** Non-2xx responses plus socket errors and timeouts. */
  errors: number;
}

let wrkChecked: boolean | undefined;
/** True when a usable `wrk` binary is on PATH. */
export function hasWrk(): boolean {
  if (wrkChecked === undefined) {
    const r = spawnSync('wrk', ['--version'], { encoding: 'utf8' });
    wrkChecked = !r.error && /wrk/.test(`${r.stdout}${r.stderr}`);
  }
  return wrkChecked;
}

/** The load generator this run uses (`PCL_BENCH_LOADGEN=autocannon` forces autocannon). */
export function loadTool(): 'wrk' | 'autocannon' {
  if (process.env.PCL_BENCH_LOADGEN === 'autocannon') return 'autocannon';
  return hasWrk() ? 'wrk' : 'autocannon';
}

function luaLong(s: string): string {
  let eq = '=';
  while (s.includes(`]${eq}]`)) eq += '=';
  return `[${eq}[${s}]${eq}]`;
}

async function runWrk(spec: LoadSpec): Promise<LoadResult> {
  const dir = mkdtempSync(join(tmpdir(), 'pcl-wrk-'));
  const script = join(dir, 'post.lua');
  const headerLines = Object.entries({ 'Content-Type': 'application/json', ...spec.headers })
    .map(([k, v]) => `wrk.headers[ ${luaLong(k)} ] = ${luaLong(v)}`)
    .join('\n');
  writeFileSync(
    script,
    `wrk.method = "POST"
wrk.body = ${luaLong(spec.body)}
${headerLines}
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("\\nWRKJSON {\\"requests\\":%d,\\"duration_us\\":%d,\\"errors\\":%d,\\"p50\\":%d,\\"p90\\":%d,\\"p99\\":%d,\\"mean\\":%f,\\"max\\":%d}\\n",
    summary.requests, summary.duration, e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean, latency.max))
end
`,
  );
  try {
    const args = ['-t1', `-c${spec.connections}`, `-d${spec.durationSec}s`, '--timeout', '10s', '-s', script, spec.url];
    const out = await new Promise<string>((resolve, reject) => {
      const p = spawn('wrk', args, { stdio: ['ignore', 'pipe', 'pipe'] });
      let s = '';
      p.stdout.on('data', (d: Buffer) => (s += d.toString('utf8')));
      p.stderr.on('data', (d: Buffer) => (s += d.toString('utf8')));
      p.on('error', reject);
      p.on('exit', (code) => (code === 0 ? resolve(s) : reject(new Error(`wrk exited ${code}: ${s.slice(-400)}`))));
    });
    const m = /WRKJSON (\{.*\})/.exec(out);
    if (!m) throw new Error(`wrk printed no summary: ${out.slice(-400)}`);
    const j = JSON.parse(m[1]!) as { requests: number; duration_us: number; errors: number; p50: number; p90: number; p99: number; mean: number; max: number };
    const us = (v: number) => Math.round(v) / 1000;
    return {
      tool: 'wrk',
      connections: spec.connections,
      durationSec: j.duration_us / 1e6,
      requests: j.requests,
      rps: j.requests / (j.duration_us / 1e6),
      p50: us(j.p50),
      p90: us(j.p90),
      p99: us(j.p99),
      mean: us(j.mean),
      max: us(j.max),
      errors: j.errors,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function runAutocannon(spec: LoadSpec): Promise<LoadResult> {
  const r = await autocannon({
    url: spec.url,
    method: 'POST',
    body: spec.body,
    headers: { 'content-type': 'application/json', ...spec.headers },
    connections: spec.connections,
    duration: spec.durationSec,
    timeout: 10,
  });
  return {
    tool: 'autocannon',
    connections: spec.connections,
    durationSec: r.duration,
    requests: r.requests.total,
    rps: r.requests.total / r.duration,
    p50: r.latency.p50,
    p90: r.latency.p90,
    p99: r.latency.p99,
    mean: r.latency.average,
    max: r.latency.max,
    errors: r.non2xx + r.errors + r.timeouts,
  };
}

/** Runs one load phase with the configured tool. */
export function runLoad(spec: LoadSpec): Promise<LoadResult> {
  return loadTool() === 'wrk' ? runWrk(spec) : runAutocannon(spec);
}
