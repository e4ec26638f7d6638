/**
 * Export sinks of audit events: webhook (HMAC-SHA256 signed, retried with backoff), syslog/JSON
 * over UDP or TCP, and a JSON-lines file for log shippers. Each sink has its own queue, bounded in
 * events and in bytes, and delivers in the background: a slow or dead receiver never blocks a
 * request, and its drops are counted (`stats()`, exported as metrics).
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { mkdir, open, stat, type FileHandle } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname } from 'node:path';
import { connect, type Socket } from 'node:net';
import type { AuditEvent } from './event.js';
import type { FileSinkConfig, SyslogSinkConfig, WebhookSinkConfig } from './config.js';
import { retryAfterMs } from '../util/retry-after.js';

/** Counters of one sink. */
export interface SinkStats {
  /** Events delivered whole. */
  delivered: number;
  /** Events lost: queue overflow (events or bytes), failed deliveries, still queued at close. */
  dropped: number;
  /** Events larger than `maxMessageBytes`, sent as a stub marked `truncated: true` (syslog). */
  truncated: number;
  /** Events waiting. */
  queued: number;
  /** Serialized length of the events waiting. */
  queuedBytes: number;
}

/** A sink of audit events. */
export interface EventSink {
  readonly name: string;
  /** Queues an event (drops the oldest, counted, when the queue is full in events or bytes). */
  push(e: AuditEvent): void;
  /** Delivered, dropped, truncated and queued counts. */
  stats(): SinkStats;
  /** Delivers what is queued until `timeoutMs`, then drops the rest (counted) and releases resources; returns within the deadline. */
  close(timeoutMs?: number): Promise<void>;
}

type Log = { warn(o: object, m: string): void; info?(o: object, m: string): void };

/** A sink's options with the ones the schema defaults left optional (direct construction in tests and tools). */
type Opt<T, K extends keyof T> = Omit<T, K> & Partial<Pick<T, K>>;

/** Default `queueBytes`. */
const QUEUE_BYTES = 64 * 1024 * 1024;
/** Serialized bytes per batch at most (a larger single event goes alone), so a batch of big events stays small. */
const BATCH_BYTES = 4 * 1024 * 1024;
/** Longest wait between retries: webhook backoff, Retry-After, reconnects (setTimeout fires at once above 2^31-1 ms). */
export const MAX_BACKOFF_MS = 300_000;
/** Longest wait between reconnects of an unreachable TCP collector or file. */
const MAX_RECONNECT_MS = 30_000;
/** The same kind of warning is logged at most once per this interval (with the number suppressed). */
const WARN_INTERVAL_MS = 60_000;
/** Default `maxMessageBytes` of a syslog sink. */
const MAX_MESSAGE_UDP = 8192;
const MAX_MESSAGE_TCP = 1024 * 1024;

/** The signature header value of a webhook body: `t=<unix s>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`. */
export function signWebhook(secret: string, body: string, t = Math.floor(Date.now() / 1000)): string {
  return `t=${t},v1=${createHmac('sha256', secret).update(`${t}.${body}`).digest('hex')}`;
}

/**
 * Verifies a webhook signature (receiver side); `toleranceS` bounds replay of old deliveries (a
 * replay inside the window verifies: drop duplicate event ids). A missing or malformed header is false.
 */
export function verifyWebhook(secret: string, body: string, header: string | undefined, toleranceS = 300, now = Date.now()): boolean {
  const m = typeof header === 'string' ? /^t=(\d{1,12}),v1=([0-9a-f]{64})$/.exec(header) : null;
  if (!m) return false;
  const t = Number(m[1]);
  if (Math.abs(now / 1000 - t) > toleranceS) return false;
  const want = createHmac('sha256', secret).update(`${t}.${body}`).digest();
  const got = Buffer.from(m[2]!, 'hex');
  return got.length === want.length && timingSafeEqual(got, want);
}

/** Resolves after `ms` (clamped to what setTimeout supports) or when `signal` aborts; never rejects. */
function delay(ms: number, signal?: AbortSignal, ref = true): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, Math.min(Math.max(0, Math.ceil(ms)), MAX_BACKOFF_MS));
    if (!ref) t.unref();
    function done(): void {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** A FIFO with O(1) push, shift and unshift: a ring buffer that grows (and shrinks) by powers of two. */
class Ring<T> {
  private buf: (T | undefined)[] = new Array<T | undefined>(16);
  private head = 0;
  size = 0;
  push(x: T): void {
    if (this.size === this.buf.length) this.resize(this.buf.length * 2);
    this.buf[(this.head + this.size) & (this.buf.length - 1)] = x;
    this.size++;
  }
  unshift(x: T): void {
    if (this.size === this.buf.length) this.resize(this.buf.length * 2);
    this.head = (this.head - 1) & (this.buf.length - 1);
    this.buf[this.head] = x;
    this.size++;
  }
  shift(): T | undefined {
    if (this.size === 0) return undefined;
    const x = this.buf[this.head];
    this.buf[this.head] = undefined;
    this.head = (this.head + 1) & (this.buf.length - 1);
    this.size--;
    if (this.buf.length > 1024 && this.size < this.buf.length >>> 2) this.resize(this.buf.length >>> 1);
    return x;
  }
  peek(): T | undefined {
    return this.size ? this.buf[this.head] : undefined;
  }
  clear(): void {
    this.buf = new Array<T | undefined>(16);
    this.head = this.size = 0;
  }
  private resize(n: number): void {
    const next = new Array<T | undefined>(n);
    const mask = this.buf.length - 1;
    for (let i = 0; i < this.size; i++) next[i] = this.buf[(this.head + i) & mask];
    this.buf = next;
    this.head = 0;
  }
}

/** A queued event: its JSON and what the sink needs beside it. */
interface Item<M> {
  s: string;
  m: M;
}

/** Outcome of one batch that did not throw: how many were sent as stubs or lost (the rest are delivered). */
interface BatchResult {
  truncated?: number;
  dropped?: number;
}

/** A delivery failure that may pass (receiver unreachable): the batch goes back to the head of the queue and is retried with backoff. */
class RetryLater extends Error {}

/** The JSON of an event, computed once for all sinks (they get the same object). */
const JSON_OF = new WeakMap<AuditEvent, string>();
function eventJson(e: AuditEvent): string {
  let s = JSON_OF.get(e);
  if (s === undefined) {
    s = JSON.stringify(e);
    JSON_OF.set(e, s);
  }
  return s;
}

/** Warnings of one sink, at most one per kind per WARN_INTERVAL_MS (with the number suppressed since). */
class Warnings {
  private readonly last = new Map<string, { at: number; suppressed: number }>();
  constructor(private readonly log: Log | undefined) {}
  warn(kind: string, o: object, m: string): void {
    const now = Date.now();
    const l = this.last.get(kind);
    if (l && now - l.at < WARN_INTERVAL_MS) {
      l.suppressed++;
      return;
    }
    this.log?.warn(l?.suppressed ? { ...o, suppressed: l.suppressed } : o, m);
    this.last.set(kind, { at: now, suppressed: 0 });
  }
}

const errMsg = (e: unknown) => (e instanceof Error ? e.message : String(e));

/** A queue bounded in events and bytes, drained by one background loop per sink. */
abstract class QueuedSink<M = undefined> implements EventSink {
  private readonly q = new Ring<Item<M>>();
  private bytes = 0;
  protected delivered = 0;
  protected dropped = 0;
  protected truncated = 0;
  private running: Promise<void> | undefined;
  /** close() was called: waits are shortened. */
  protected closing = false;
  private closed = false;
  private closeP: Promise<void> | undefined;
  /** Aborted at the close deadline: ends waits, requests and writes in progress. */
  protected readonly stop = new AbortController();
  protected readonly warnings: Warnings;
  /** Current wait before retrying a batch that failed with RetryLater. */
  private retryMs = 0;
  /** The receiver has been unreachable since, and the drop count then (logged once when it comes back). */
  private outage: { since: number; dropped: number } | undefined;
  constructor(
    readonly name: string,
    private readonly maxEvents: number,
    private readonly maxBytes: number,
    protected readonly log?: Log,
  ) {
    this.warnings = new Warnings(log);
  }
  push(e: AuditEvent): void {
    if (this.closed) {
      this.dropped++;
      return;
    }
    let s: string;
    try {
      s = eventJson(e);
    } catch (err) {
      this.dropped++;
      this.warnings.warn('serialize', { sink: this.name, err: errMsg(err) }, 'audit sink: an event could not be serialized and was dropped');
      return;
    }
    this.q.push({ s, m: this.meta(e) });
    this.bytes += s.length;
    this.trim();
    if (!this.running) this.running = this.drain().finally(() => (this.running = undefined));
  }
  stats(): SinkStats {
    return { delivered: this.delivered, dropped: this.dropped, truncated: this.truncated, queued: this.q.size, queuedBytes: this.bytes };
  }
  /** What the sink keeps beside the JSON of a queued event. */
  protected meta(_e: AuditEvent): M {
    return undefined as M;
  }
  /** Drops the oldest events while the queue is over its bounds. */
  private trim(): void {
    let n = 0;
    while (this.q.size > this.maxEvents || (this.bytes > this.maxBytes && this.q.size > 0)) {
      this.bytes -= this.q.shift()!.s.length;
      n++;
    }
    if (n === 0) return;
    this.dropped += n;
    this.warnings.warn('overflow', { sink: this.name, queued: this.q.size, queuedBytes: this.bytes, totalDropped: this.dropped }, 'audit sink queue full: oldest events dropped');
  }
  /** Takes up to `batchSize()` events and about BATCH_BYTES (at least one event). */
  private take(): Item<M>[] {
    const out: Item<M>[] = [];
    const max = this.batchSize();
    let b = 0;
    while (out.length < max && this.q.size > 0) {
      const next = this.q.peek()!;
      if (out.length > 0 && b + next.s.length > BATCH_BYTES) break;
      this.q.shift();
      b += next.s.length;
      this.bytes -= next.s.length;
      out.push(next);
    }
    return out;
  }
  private async drain(): Promise<void> {
    await Promise.resolve();
    while (this.q.size > 0 && !this.stop.signal.aborted) {
      const batch = this.take();
      try {
        const r = await this.deliver(batch);
        const truncated = r?.truncated ?? 0;
        const dropped = r?.dropped ?? 0;
        this.truncated += truncated;
        this.dropped += dropped;
        this.delivered += batch.length - truncated - dropped;
        this.retryMs = 0;
        if (this.outage) {
          const o = this.outage;
          this.outage = undefined;
          (this.log?.info ?? this.log?.warn)?.call(this.log, { sink: this.name, downMs: Date.now() - o.since, droppedMeanwhile: this.dropped - o.dropped }, 'audit sink available again: delivering');
        }
      } catch (e) {
        if (e instanceof RetryLater && !this.stop.signal.aborted) {
          // Back at the head of the queue, oldest first; what overflows the bounds is dropped.
          for (let i = batch.length - 1; i >= 0; i--) {
            this.q.unshift(batch[i]!);
            this.bytes += batch[i]!.s.length;
          }
          this.trim();
          if (!this.outage) {
            this.outage = { since: Date.now(), dropped: this.dropped };
            this.log?.warn({ sink: this.name, err: e.message, queued: this.q.size }, 'audit sink unavailable: events are held (up to queueSize/queueBytes) and sent when it is back');
          }
          this.retryMs = Math.min(MAX_RECONNECT_MS, this.retryMs ? this.retryMs * 2 : 100);
          await delay(this.retryMs * (0.75 + Math.random() * 0.25), this.stop.signal, false);
          continue;
        }
        this.dropped += batch.length;
        this.warnings.warn('failed', { sink: this.name, events: batch.length, err: errMsg(e), totalDropped: this.dropped }, 'audit sink dropped events');
      }
    }
  }
  protected batchSize(): number {
    return 100;
  }
  /** Delivers a batch; throws RetryLater to keep it queued, any other error to drop it. */
  protected abstract deliver(batch: Item<M>[]): Promise<BatchResult | void>;
  /** Releases sockets and files, by `deadline` (epoch ms) at the latest. */
  protected async release(_deadline: number): Promise<void> {}
  close(timeoutMs = 5000): Promise<void> {
    return (this.closeP ??= this.shutdown(timeoutMs));
  }
  private async shutdown(timeoutMs: number): Promise<void> {
    this.closing = true;
    const deadline = Date.now() + timeoutMs;
    const timer = new AbortController();
    const idle = async () => {
      while (this.running && !timer.signal.aborted) await this.running;
    };
    await Promise.race([idle(), delay(timeoutMs, timer.signal)]);
    timer.abort();
    this.closed = true;
    // Ends backoff waits, requests and stalled writes; the batch in flight is then counted.
    this.stop.abort();
    const finish = async () => {
      await this.running;
      await this.release(deadline).catch(() => undefined);
    };
    const grace = new AbortController();
    await Promise.race([finish(), delay(deadline - Date.now() + 50, grace.signal)]);
    grace.abort();
    // What could not be delivered in time is lost: count it.
    this.dropped += this.q.size;
    this.q.clear();
    this.bytes = 0;
  }
}

/** POSTs batches of events as JSON `{events:[…]}` with `x-portcullis-signature`. */
export class WebhookSink extends QueuedSink {
  private readonly secret: string;
  constructor(
    private readonly c: Opt<WebhookSinkConfig, 'queueBytes'>,
    env: Record<string, string | undefined>,
    log?: Log,
  ) {
    super(`webhook:${new URL(c.url).host}`, c.queueSize, c.queueBytes ?? QUEUE_BYTES, log);
    const s = c.secretEnv ? env[c.secretEnv] : c.secretFile ? readFileSync(c.secretFile, 'utf8').trim() : undefined;
    if (!s) throw new Error(`audit.sinks.webhook: a signing secret is required (secretEnv${c.secretEnv ? ` ${c.secretEnv} is empty` : ''} or secretFile)`);
    this.secret = s;
  }
  protected override batchSize(): number {
    return this.c.batchSize;
  }
  protected async deliver(batch: Item<undefined>[]): Promise<void> {
    let body = '{"events":[';
    for (let i = 0; i < batch.length; i++) body += (i ? ',' : '') + batch[i]!.s;
    body += ']}';
    let last: unknown;
    for (let attempt = 1; attempt <= this.c.maxAttempts; attempt++) {
      let retryAfter: number | undefined;
      try {
        const res = await fetch(this.c.url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-portcullis-signature': signWebhook(this.secret, body), 'user-agent': 'portcullis-audit' },
          body,
          // A redirect would hand the signed events to another URL (possibly another origin).
          redirect: 'error',
          signal: AbortSignal.any([AbortSignal.timeout(this.c.timeoutMs), this.stop.signal]),
        });
        await res.arrayBuffer().catch(() => undefined);
        if (res.ok) return;
        last = new Error(`HTTP ${res.status}`);
        if (res.status >= 400 && res.status < 500 && res.status !== 408 && res.status !== 429) break; // the receiver refuses it: retrying will not help
        if (res.status === 429 || res.status === 503) retryAfter = retryAfterMs(res.headers.get('retry-after'));
      } catch (e) {
        const cause = (e as { cause?: { message?: string } })?.cause?.message;
        if (cause === 'unexpected redirect') {
          last = new Error('the receiver answered with a redirect, which is not followed (configure the final URL)');
          break;
        }
        last = e;
      }
      if (this.stop.signal.aborted) break;
      if (attempt < this.c.maxAttempts) {
        const base = Math.min(this.c.backoffMs * 2 ** (attempt - 1), MAX_BACKOFF_MS);
        let wait = this.closing ? Math.min(base, 100) : base * (0.5 + Math.random() * 0.5);
        if (retryAfter !== undefined && !this.closing) wait = Math.max(wait, Math.min(retryAfter, MAX_BACKOFF_MS));
        await delay(wait, this.stop.signal, false);
      }
    }
    throw last instanceof Error ? last : new Error(String(last));
  }
}

const SEVERITY = (e: AuditEvent) => (e.guardAction === 'block' || (e.status ?? 0) >= 500 ? 4 : (e.status ?? 0) >= 400 ? 5 : 6);

/** The syslog header fields of an event, and the fields of its stub when it is too large. */
interface SyslogMeta {
  pri: number;
  ts: number;
  kind: AuditEvent['kind'];
  id: string;
  tenantId: string | undefined;
  keyId: string | undefined;
  requestId: string | undefined;
  status: number | undefined;
}

/** The RFC 5424 header of a line; the message follows. */
function syslogHeader(pri: number, ts: number, kind: string, host: string): string {
  return `<${pri}>1 ${new Date(ts).toISOString()} ${host.replace(/\s/g, '') || '-'} portcullis ${process.pid} ${kind === 'admin' ? 'admin' : 'request'} - `;
}

/** Formats an event as an RFC 5424 syslog line (the message is the event JSON). */
export function syslogLine(e: AuditEvent, facility: number, host = hostname()): string {
  return syslogHeader(facility * 8 + SEVERITY(e), e.ts, e.kind, host) + JSON.stringify(e);
}

/**
 * Sends each event as one syslog (or bare JSON) line over UDP, or over TCP newline-framed (no octet
 * counting, no TLS). Events over `maxMessageBytes` go as a stub `{id, ts, kind, tenantId, keyId,
 * requestId, status, truncated: true, bytes}`. TCP: an unreachable collector keeps the batch queued
 * and is retried with capped backoff; a write that does not reach the kernel within `timeoutMs`
 * (a collector that stopped reading) drops the connection and retries the batch on a new one.
 */
export class SyslogSink extends QueuedSink<SyslogMeta> {
  private udp: UdpSocket | undefined;
  private tcp: Socket | undefined;
  private readonly host = hostname().replace(/\s/g, '') || '-';
  private readonly maxMessage: number;
  private readonly timeoutMs: number;
  constructor(
    private readonly c: Opt<SyslogSinkConfig, 'queueBytes' | 'timeoutMs'>,
    log?: Log,
  ) {
    super(`syslog:${c.protocol}:${c.host}:${c.port}`, c.queueSize, c.queueBytes ?? QUEUE_BYTES, log);
    this.maxMessage = c.maxMessageBytes ?? (c.protocol === 'udp' ? MAX_MESSAGE_UDP : MAX_MESSAGE_TCP);
    this.timeoutMs = c.timeoutMs ?? 10_000;
  }
  protected override meta(e: AuditEvent): SyslogMeta {
    return { pri: this.c.facility * 8 + SEVERITY(e), ts: e.ts, kind: e.kind, id: e.id, tenantId: e.tenantId, keyId: e.keyId, requestId: e.requestId, status: e.status };
  }
  private frame(m: SyslogMeta, json: string): string {
    return this.c.format === 'json' ? json : syslogHeader(m.pri, m.ts, m.kind, this.host) + json;
  }
  /** The line of an event, its stub when over maxMessageBytes, or undefined when even the stub is. */
  private message(it: Item<SyslogMeta>): { line: string; bytes: number; stub: boolean } | undefined {
    const line = this.frame(it.m, it.s);
    // A UTF-8 byte is at most 3 per UTF-16 unit: short lines need no count.
    const bytes = line.length * 3 <= this.maxMessage ? line.length : Buffer.byteLength(line, 'utf8');
    if (bytes <= this.maxMessage) return { line, bytes, stub: false };
    const m = it.m;
    const stub = this.frame(m, JSON.stringify({ id: m.id, ts: m.ts, kind: m.kind, tenantId: m.tenantId, keyId: m.keyId, requestId: m.requestId, status: m.status, truncated: true, bytes }));
    this.warnings.warn('truncated', { sink: this.name, id: m.id, bytes, maxMessageBytes: this.maxMessage }, 'audit syslog sink: event larger than maxMessageBytes sent as a stub (truncated: true)');
    const sb = Buffer.byteLength(stub, 'utf8');
    return sb <= this.maxMessage ? { line: stub, bytes: sb, stub: true } : undefined;
  }
  protected async deliver(batch: Item<SyslogMeta>[]): Promise<BatchResult> {
    let truncated = 0;
    let dropped = 0;
    if (this.c.protocol === 'udp') {
      const udp = (this.udp ??= createSocket(this.c.host.includes(':') ? 'udp6' : 'udp4').on('error', () => {}));
      for (const it of batch) {
        const msg = this.message(it);
        if (!msg) {
          dropped++;
          continue;
        }
        const err = await new Promise<Error | null>((res) => udp.send(Buffer.from(msg.line, 'utf8'), this.c.port, this.c.host, (e) => res(e)));
        if (err) {
          dropped++;
          this.warnings.warn('send', { sink: this.name, err: err.message }, 'audit syslog sink: datagram not sent (dropped)');
        } else if (msg.stub) truncated++;
      }
      return { truncated, dropped };
    }
    let data = '';
    for (const it of batch) {
      const msg = this.message(it);
      if (!msg) dropped++;
      else {
        if (msg.stub) truncated++;
        data += msg.line + '\n';
      }
    }
    if (data) await this.write(await this.connection(), data);
    return { truncated, dropped };
  }
  private async connection(): Promise<Socket> {
    if (this.tcp && !this.tcp.destroyed && this.tcp.writable) return this.tcp;
    const s = connect({ host: this.c.host, port: this.c.port });
    try {
      await new Promise<void>((res, rej) => {
        // Every way out clears both the timer and the abort listener (a timed-out connect used to
        // leave its listener, and the socket it holds, on the sink's signal for good).
        const done = () => {
          clearTimeout(t);
          this.stop.signal.removeEventListener('abort', onAbort);
        };
        const t = setTimeout(() => {
          done();
          rej(new Error(`connect timed out after ${this.timeoutMs} ms`));
        }, this.timeoutMs);
        const onAbort = () => {
          done();
          rej(new Error('sink closed'));
        };
        this.stop.signal.addEventListener('abort', onAbort, { once: true });
        s.once('connect', () => {
          done();
          res();
        });
        s.once('error', (e) => {
          done();
          rej(e);
        });
      });
    } catch (e) {
      s.destroy();
      throw new RetryLater(`connect ${this.c.host}:${this.c.port}: ${errMsg(e)}`);
    }
    s.setNoDelay(true);
    // Dead peers without a FIN (host gone, NAT state dropped) are found by keepalive probes.
    s.setKeepAlive(true, 30_000);
    s.on('error', () => s.destroy());
    // The collector closed its side: never write into a half-closed connection.
    s.on('end', () => s.destroy());
    s.on('close', () => {
      if (this.tcp === s) this.tcp = undefined;
    });
    s.resume(); // discard what the collector sends, and see its FIN
    this.tcp = s;
    return s;
  }
  /** Writes `data`; a write that is not flushed to the kernel within timeoutMs, or fails, drops the connection (RetryLater). */
  private write(s: Socket, data: string): Promise<void> {
    return new Promise<void>((res, rej) => {
      let settled = false;
      const finish = (err?: Error | null) => {
        if (settled) return;
        settled = true;
        clearTimeout(t);
        this.stop.signal.removeEventListener('abort', onAbort);
        if (!err) return res();
        s.destroy();
        if (this.tcp === s) this.tcp = undefined;
        rej(new RetryLater(`write to ${this.c.host}:${this.c.port}: ${err.message}`));
      };
      const onAbort = () => finish(new Error('sink closed'));
      const t = setTimeout(() => finish(new Error(`no progress within ${this.timeoutMs} ms (the collector is not reading)`)), this.timeoutMs);
      this.stop.signal.addEventListener('abort', onAbort, { once: true });
      s.write(data, (err) => finish(err));
    });
  }
  protected override async release(deadline: number): Promise<void> {
    this.udp?.close();
    this.udp = undefined;
    const s = this.tcp;
    this.tcp = undefined;
    if (!s || s.destroyed) return;
    // A clean FIN once everything is flushed, but never past the deadline.
    const timer = new AbortController();
    await Promise.race([new Promise<void>((r) => s.end(() => r())), delay(deadline - Date.now(), timer.signal)]);
    timer.abort();
    s.destroy();
  }
}

/**
 * Appends events as JSON lines to a file (mode 0600). Rotation: with `copytruncate` the appends
 * continue at the new end; after a rename (logrotate's default) or a deletion the sink reopens the
 * path before the next batch (it compares the path's inode with the open file's once per batch).
 * A failed write (disk full) drops that batch (counted), closes the file and reopens it for the
 * next batch after a backoff (100 ms doubling to 30 s).
 */
export class FileSink extends QueuedSink {
  private fh: FileHandle | undefined;
  private ino: { dev: number; ino: number } | undefined;
  private failures = 0;
  private reopenAt = 0;
  constructor(
    private readonly c: Opt<FileSinkConfig, 'queueBytes'>,
    log?: Log,
  ) {
    super(`file:${c.path}`, c.queueSize, c.queueBytes ?? QUEUE_BYTES, log);
  }
  protected override batchSize(): number {
    return 1000;
  }
  protected async deliver(batch: Item<undefined>[]): Promise<void> {
    const fh = await this.file();
    let text = '';
    for (const it of batch) text += it.s + '\n';
    const buf = Buffer.from(text, 'utf8');
    try {
      for (let off = 0; off < buf.length; ) {
        const { bytesWritten } = await fh.write(buf, off, buf.length - off);
        if (bytesWritten <= 0) throw new Error('no bytes written');
        off += bytesWritten;
      }
      this.failures = 0;
    } catch (e) {
      // Dropped and logged by the queue; the next batch reopens the file after the backoff.
      await this.discard();
      this.backoff();
      throw e;
    }
  }
  private backoff(): void {
    this.failures++;
    this.reopenAt = Date.now() + Math.min(MAX_RECONNECT_MS, 100 * 2 ** Math.min(this.failures - 1, 20));
  }
  /** The open file, reopened when the path names another file (rotated) or none. */
  private async file(): Promise<FileHandle> {
    if (this.fh) {
      const cur = await stat(this.c.path).catch(() => undefined);
      if (cur && this.ino && cur.ino === this.ino.ino && cur.dev === this.ino.dev) return this.fh;
      await this.discard();
    }
    const wait = this.reopenAt - Date.now();
    if (wait > 0) await delay(wait, this.stop.signal, false);
    if (this.stop.signal.aborted) throw new Error('sink closed');
    let fh: FileHandle | undefined;
    try {
      await mkdir(dirname(this.c.path), { recursive: true });
      fh = await open(this.c.path, 'a', 0o600);
      const st = await fh.stat();
      this.fh = fh;
      this.ino = { dev: st.dev, ino: st.ino };
      return fh;
    } catch (e) {
      await fh?.close().catch(() => undefined);
      throw new RetryLater(`open ${this.c.path}: ${errMsg(e)}`);
    }
  }
  private async discard(): Promise<void> {
    const fh = this.fh;
    this.fh = undefined;
    this.ino = undefined;
    await fh?.close().catch(() => undefined);
  }
  protected override async release(): Promise<void> {
    await this.discard();
  }
}

/** Creates the configured sinks. */
export function createSinks(c: { webhook: WebhookSinkConfig[]; syslog: SyslogSinkConfig[]; file: FileSinkConfig[] }, env: Record<string, string | undefined>, log?: Log): EventSink[] {
  return [...c.webhook.map((w) => new WebhookSink(w, env, log)), ...c.syslog.map((s) => new SyslogSink(s, log)), ...c.file.map((f) => new FileSink(f, log))];
}
