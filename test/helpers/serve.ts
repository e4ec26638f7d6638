/** Test helper: `portcullis serve --workers N` as a child process on the embedded default, ready for requests. */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './services.js';

/** A running `serve --workers N`. */
export interface ServedWorkers {
  url: string;
  /** The bootstrap key the first start printed. */
  key: string;
  /** Everything the process printed so far. */
  output(): string;
  /** SIGTERM, wait for exit, remove the data dir. */
  stop(): Promise<void>;
}

/**
 * Starts `serve --workers <workers>` from the TypeScript sources with `configYaml` (a data dir in a
 * fresh temp folder is added) and waits until /healthz answers, the bootstrap key was printed and
 * every worker had time to listen.
 */
export async function serveWorkers(configYaml: string, workers = 2): Promise<ServedWorkers> {
  const dir = mkdtempSync(join(tmpdir(), 'pcl-workers-'));
  const port = await freePort();
  const cfg = join(dir, 'c.yaml');
  writeFileSync(cfg, `dataDir: ${JSON.stringify(join(dir, 'data'))}\n${configYaml}`);
  const child = spawn(process.execPath, ['--import', 'tsx', join(import.meta.dirname, '../../src/cli/index.ts'), 'serve', '--config', cfg, '--port', String(port), '--workers', String(workers)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const exited = new Promise((r) => child.once('exit', r));
  const stop = async () => {
    child.kill('SIGTERM');
    await exited;
    rmSync(dir, { recursive: true, force: true });
  };
  const url = `http://127.0.0.1:${port}`;
  const key = () => /(pcl_[A-Za-z0-9]{12}_[A-Za-z0-9_-]{43})/.exec(out)?.[1];
  const t0 = Date.now();
  let ready = false;
  while (!ready && Date.now() - t0 < 90_000) {
    await new Promise((r) => setTimeout(r, 200));
    if (!key()) continue;
    ready = await fetch(`${url}/healthz`).then(
      (r) => r.ok,
      () => false,
    );
  }
  if (!ready) {
    await stop();
    throw new Error(`serve --workers ${workers} did not start: ${out}`);
  }
  await new Promise((r) => setTimeout(r, 1500)); // let the other workers come up too
  return { url, key: key()!, output: () => out, stop };
}
