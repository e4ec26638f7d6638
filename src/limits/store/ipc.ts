/**
 * Counters shared by `serve --workers N` (node:cluster) without Redis: the primary holds
 * the one real store and answers admission/settlement messages from workers, so limits
 * stay exact across worker processes (never N× the limit). Each admission, settlement or
 * lease renewal is one message round trip and runs atomically in the primary.
 */
import cluster from 'node:cluster';
import type { AdmitOutcome, AdmitPlan, CounterStore, RenewPlan, SettlePlan } from '../types.js';

const TAG = '__pclLimits';

interface IpcRequest {
  [TAG]: 1;
  id: number;
  op: 'admit' | 'settle' | 'renew';
  plan: AdmitPlan | SettlePlan | RenewPlan;
}
interface IpcReply {
  [TAG]: 1;
  id: number;
  ok: boolean;
  result?: AdmitOutcome | number | null;
  error?: string;
}

/** Anything with a Node IPC channel: a cluster Worker, a forked ChildProcess, or `process` in a child. */
export interface IpcPeer {
  send(message: unknown, callback?: (error: Error | null) => void): boolean;
  on(event: 'message', listener: (message: unknown) => void): unknown;
  off(event: 'message', listener: (message: unknown) => void): unknown;
}

/** The primary's side: answers counter operations from workers. */
export interface CounterHost {
  /** Serves one more peer (e.g. a child from child_process.fork); cluster workers are served automatically. */
  attach(peer: IpcPeer): void;
  /** Stops answering (does not close the store). */
  close(): void;
}

function isRequest(m: unknown): m is IpcRequest {
  return typeof m === 'object' && m !== null && (m as Record<string, unknown>)[TAG] === 1 && 'op' in m;
}

/**
 * Starts answering counter operations with `store` (normally a memory store) from every
 * cluster worker (when called in a cluster primary) and from peers passed to `attach`.
 */
export function startCounterHost(store: CounterStore, opts: { cluster?: boolean } = {}): CounterHost {
  const detachers: (() => void)[] = [];

  const failed = (msg: IpcRequest, err: unknown): IpcReply => ({ [TAG]: 1, id: msg.id, ok: false, error: err instanceof Error ? err.message : String(err) });
  function answer(msg: IpcRequest, reply: (r: IpcReply) => void): void {
    // Admissions and settlements are answered right away when the store decides synchronously (memory).
    if (msg.op !== 'renew' && (msg.op === 'admit' ? store.admitNow : store.settleNow)) {
      let r: IpcReply;
      try {
        r = { [TAG]: 1, id: msg.id, ok: true, result: msg.op === 'admit' ? store.admitNow!(msg.plan as AdmitPlan) : (store.settleNow!(msg.plan as SettlePlan), null) };
      } catch (err) {
        r = failed(msg, err);
      }
      reply(r);
      return;
    }
    const job: Promise<AdmitOutcome | number | null> =
      msg.op === 'admit' ? store.admit(msg.plan as AdmitPlan) : msg.op === 'renew' ? store.renew(msg.plan as RenewPlan) : store.settle(msg.plan as SettlePlan).then(() => null);
    job.then(
      (result) => reply({ [TAG]: 1, id: msg.id, ok: true, result }),
      (err: unknown) => reply(failed(msg, err)),
    );
  }
  const sendSafe = (peer: { send: IpcPeer['send'] }) => (r: IpcReply) => {
    try {
      peer.send(r, () => {}); // a worker that died meanwhile just misses its answer
    } catch {
      /* channel closed */
    }
  };

  if ((opts.cluster ?? true) && cluster.isPrimary) {
    const onMessage = (worker: { send: IpcPeer['send'] }, msg: unknown) => {
      if (isRequest(msg)) answer(msg, sendSafe(worker));
    };
    cluster.on('message', onMessage);
    detachers.push(() => cluster.off('message', onMessage));
  }

  return {
    attach(peer: IpcPeer) {
      const onMessage = (msg: unknown) => {
        if (isRequest(msg)) answer(msg, sendSafe(peer));
      };
      peer.on('message', onMessage);
      detachers.push(() => peer.off('message', onMessage));
    },
    close() {
      for (const d of detachers.splice(0)) d();
    },
  };
}

/** Options of the worker-side IPC store. */
export interface IpcStoreOptions {
  /** How long to wait for the primary's answer (ms). Default 1000. */
  timeoutMs?: number;
  /** The channel to the primary; default `process` (a cluster worker or forked child). */
  channel?: IpcPeer;
}

/**
 * Request ids, unique in this process: several IPC stores may share the one channel (the limits
 * and the failed-authentication buckets), and each sees every reply.
 */
let nextId = 1;

/** A CounterStore in a worker process that forwards every operation to the primary's CounterHost. */
export function createIpcCounterStore(opts: IpcStoreOptions = {}): CounterStore {
  const channel = opts.channel ?? (process as unknown as IpcPeer);
  if (!opts.channel && typeof process.send !== 'function') throw new Error('limits: IPC store needs an IPC channel (run under cluster or fork)');
  const timeoutMs = opts.timeoutMs ?? 1000;
  // Calls in flight in the order sent; all have the same timeout, so the first is always the
  // next to expire and one timer (armed for it) serves them all, instead of one per call.
  const pending = new Map<number, { resolve(v: AdmitOutcome | number | null): void; reject(e: Error): void; deadline: number }>();
  let timer: NodeJS.Timeout | undefined;
  function arm(): void {
    if (timer || pending.size === 0) return;
    const first = pending.values().next().value!;
    timer = setTimeout(expire, Math.max(0, Math.ceil(first.deadline - performance.now())));
    timer.unref(); // the IPC channel keeps the process alive while a call waits; an idle timer should not
  }
  function expire(): void {
    timer = undefined;
    const now = performance.now();
    for (const [id, p] of pending) {
      if (p.deadline > now) break;
      pending.delete(id);
      p.reject(new Error('limits host did not answer in time'));
    }
    arm();
  }

  const onMessage = (msg: unknown) => {
    if (typeof msg !== 'object' || msg === null || (msg as Record<string, unknown>)[TAG] !== 1 || 'op' in msg) return;
    const r = msg as IpcReply;
    const p = pending.get(r.id);
    if (!p) return;
    pending.delete(r.id);
    if (r.ok) p.resolve(r.result ?? null);
    else p.reject(new Error(`limits host: ${r.error}`));
  };
  channel.on('message', onMessage);

  function call(op: IpcRequest['op'], plan: IpcRequest['plan']): Promise<AdmitOutcome | number | null> {
    return new Promise((resolve, reject) => {
      const id = nextId++;
      pending.set(id, { resolve, reject, deadline: performance.now() + timeoutMs });
      arm();
      const req: IpcRequest = { [TAG]: 1, id, op, plan };
      try {
        channel.send(req, (err) => {
          if (err && pending.delete(id)) reject(err);
        });
      } catch (err) {
        pending.delete(id);
        reject(err instanceof Error ? err : new Error(String(err)));
      }
    });
  }

  return {
    kind: 'ipc',
    async admit(plan) {
      return (await call('admit', plan)) as AdmitOutcome;
    },
    async settle(plan) {
      await call('settle', plan);
    },
    async renew(plan) {
      return (await call('renew', plan)) as number;
    },
    async close() {
      channel.off('message', onMessage);
      if (timer) clearTimeout(timer);
      timer = undefined;
      for (const [id, p] of pending) {
        p.reject(new Error('limits IPC store closed'));
        pending.delete(id);
      }
    },
  };
}
