/** Worker threads started from a module of this project, compiled or from the TypeScript sources. */
import { writeFileSync } from 'node:fs';
import { Worker, type WorkerOptions } from 'node:worker_threads';

/**
 * Starts the worker module `name` next to the module at `from` (its `import.meta.url`): the
 * compiled `name.js`, or from the TypeScript sources (tsx) a bootstrap that registers tsx in the
 * thread and imports `name.ts` (without tsx the thread fails with an error event).
 */
export function siblingWorker(from: string, name: string, options: WorkerOptions): Worker {
  if (from.endsWith('.ts')) {
    const href = JSON.stringify(new URL(`./${name}.ts`, from).href);
    return new Worker(`import('tsx/esm/api').then((t) => { t.register(); return import(${href}); });`, { ...options, eval: true });
  }
  return new Worker(new URL(`./${name}.js`, from), options);
}

/**
 * Names the calling thread as `top -H`, `ps -L` and /proc/<pid>/task/<tid>/comm show it (Linux;
 * at most 15 bytes; the benches find a thread's CPU time by it). Elsewhere nothing changes.
 */
export function nameThisThread(name: string): void {
  try {
    writeFileSync('/proc/thread-self/comm', name);
  } catch {
    /* not Linux */
  }
}
