/** Child processes for benchmarks: spawn, wait until ready, sample memory, stop. */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';

/** A child process started by a bench. */
export interface Child {
  name: string;
  proc: ChildProcess;
  pid: number;
  /** Last ~8 KiB of stderr/stdout, for error messages. */
  tail(): string;
  stop(): Promise<void>;
}

/**
 * Spawns `cmd args` with stdout/stderr kept only as a short tail (so a chatty child never blocks);
 * `stdout: 'ignore'` sends stdout to /dev/null instead.
 */
export function startChild(name: string, cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; stdout?: 'pipe' | 'ignore' } = {}): Child {
  const proc = spawn(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ['ignore', opts.stdout ?? 'pipe', 'pipe'] });
  let tail = '';
  const keep = (d: Buffer) => {
    tail = (tail + d.toString('utf8')).slice(-8192);
  };
  proc.stdout?.on('data', keep);
  proc.stderr!.on('data', keep);
  if (proc.pid === undefined) throw new Error(`${name}: could not spawn ${cmd}`);
  return {
    name,
    proc,
    pid: proc.pid,
    tail: () => tail,
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      const exited = once(proc, 'exit');
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    },
  };
}

/** Waits until the child prints a line containing `{"port":N}` and returns N. */
export async function waitForPortLine(child: Child, timeoutMs = 20_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const m = /\{"port":(\d+)\}/.exec(child.tail());
    if (m) return Number(m[1]);
    if (child.proc.exitCode !== null) break;
    await sleep(50);
  }
  throw new Error(`${child.name} did not start: ${child.tail().slice(-600)}`);
}

/** Polls `url` until it answers with any HTTP status (or `okStatus` when given). */
export async function waitForHttp(child: Child, url: string, opts: { timeoutMs?: number; okStatus?: number } = {}): Promise<void> {
  const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
  while (Date.now() < deadline) {
    if (child.proc.exitCode !== null) break;
    try {
      const r = await fetch(url, { signal: AbortSignal.timeout(1000) });
      await r.arrayBuffer();
      if (opts.okStatus === undefined || r.status === opts.okStatus) return;
    } catch {
      /* not yet */
    }
    await sleep(100);
  }
  throw new Error(`${child.name} not ready at ${url}: ${child.tail().slice(-600)}`);
}

/** A free TCP port on 127.0.0.1 (bound and released; fine for a bench). */
export async function freePort(): Promise<number> {
  const s = createServer();
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  const port = (s.address() as { port: number }).port;
  s.close();
  await once(s, 'close');
  return port;
}

/** Resident set size of one process in bytes (VmRSS from /proc), or 0 when it is gone. */
export function rssBytes(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** Direct child PIDs of a process (from /proc/PID/task/TID/children). */
export function childPids(pid: number): number[] {
  const out: number[] = [];
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const txt = readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim();
      if (txt) for (const c of txt.split(/\s+/)) out.push(Number(c));
    }
  } catch {
    /* gone */
  }
  return out;
}

/** Waits until `pid` has at least `n` child processes. */
export async function waitForChildren(pid: number, n: number, timeoutMs = 20_000): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const c = childPids(pid);
    if (c.length >= n) return c;
    await sleep(100);
  }
  throw new Error(`process ${pid} did not start ${n} workers`);
}

/** CPU time (user+system, ms) used so far by a process, from /proc/PID/stat. */
export function cpuMs(pid: number): number {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(rest[11]) + Number(rest[12]); // utime, stime (fields 14, 15)
    return (ticks * 1000) / 100; // USER_HZ is 100 on Linux
  } catch {
    return 0;
  }
}
