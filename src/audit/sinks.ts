/**
 * Export sinks of audit events: webhook (HMAC-SHA256 signed, retried with backoff), syslog/JSON
 * over UDP or TCP, and a JSON-lines file for log shippers. Each sink has its own bounded queue
 * and delivers in the background: a slow or dead receiver never blocks a request.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createWriteStream, mkdirSync, readFileSync, type WriteStream } from 'node:fs';
import { hostname } from 'node:os';
import { dirname } from 'node:path';
import { connect, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { AuditEvent } from './event.js';
import type { FileSinkConfig, SyslogSinkConfig, WebhookSinkConfig } from './config.js';

/** A sink of audit events. */
export interface EventSink {
  readonly name: string;
  /** Queues an event (drops the oldest, counted, when the queue is full). */
  push(e: AuditEvent): void;
  /** Delivered and dropped counts. */
  stats(): { delivered: number; dropped: number; queued: number };
  /** Delivers what is queued (bounded wait) and releases resources. */
  close(timeoutMs?: number): Promise<void>;
}

type Log = { warn(o: object, m: string): void };

/** The signature header value of a webhook body: `t=<unix s>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`. */
export function signWebhook(secret: string, body: string, t = Math.floor(Date.now() / 1000)): string {
  return `t=${t},v1=${createHmac('sha256', secret).update(`${t}.${body}`).digest('hex')}`;
}

/** Verifies a webhook signature (receiver side); `toleranceS` bounds replay of old deliveries. */
export function verifyWebhook(secret: string, body: string, header: string, toleranceS = 300, now = Date.now()): boolean {
  const m = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(header);
  if (!m) return false;
  const t = Number(m[1]);
  if (Math.abs(now / 1000 - t) > toleranceS) return false;
  const want = createHmac('sha256', secret).update(`${t}.${body}`).digest();
  const got = Buffer.from(m[2]!, 'hex');
  return got.length === want.length && timingSafeEqual(got, want);
}

/** A bounded queue drained by one background loop per sink. */
abstract class QueuedSink implements EventSink {
  protected q: AuditEvent[] = [];
  protected delivered = 0;
  protected dropped = 0;
  private running: Promise<void> | undefined;
  protected closing = false;
  constructor(
    readonly name: string,
    private readonly max: number,
    protected readonly log?: Log,
  ) {}
  push(e: AuditEvent): void {
    if (this.q.length >= this.max) {
      this.q.shift();
      this.dropped++;
    }
    this.q.push(e);
    if (!this.running) this.running = this.drain().finally(() => (this.running = undefined));
  }
  stats() {
    return { delivered: this.delivered, dropped: this.dropped, queued: this.q.length };
  }
  private async drain(): Promise<void> {
    await Promise.resolve();
    while (this.q.length) {
      const batch = this.q.splice(0, this.batchSize());
      try {
        await this.deliver(batch);
        this.delivered += batch.length;
      } catch (e) {
        this.dropped += batch.length;
        this.log?.warn({ sink: this.name, events: batch.length, err: (e as Error)?.message }, 'audit sink dropped events');
      }
    }
  }
  protected batchSize(): number {
    return 100;
  }
  protected abstract deliver(batch: AuditEvent[]): Promise<void>;
  protected async release(): Promise<void> {}
  async close(timeoutMs = 5000): Promise<void> {
    this.closing = true;
    const deadline = Date.now() + timeoutMs;
    while ((this.running || this.q.length) && Date.now() < deadline) await (this.running ? Promise.race([this.running, sleep(50)]) : sleep(10));
    await this.release();
  }
}

/** POSTs batches of events as JSON `{events:[…]}` with `x-portcullis-signature`. */
export class WebhookSink extends QueuedSink {
  private readonly secret: string;
  constructor(
    private readonly c: WebhookSinkConfig,
    env: Record<string, string | undefined>,
    log?: Log,
  ) {
    super(`webhook:${new URL(c.url).host}`, c.queueSize, log);
    const s = c.secretEnv ? env[c.secretEnv] : c.secretFile ? readFileSync(c.secretFile, 'utf8').trim() : undefined;
    if (!s) throw new Error(`audit.sinks.webhook: a signing secret is required (secretEnv${c.secretEnv ? ` ${c.secretEnv} is empty` : ''} or secretFile)`);
    this.secret = s;
  }
  protected override batchSize(): number {
    return this.c.batchSize;
  }
  protected async deliver(batch: AuditEvent[]): Promise<void> {
    const body = JSON.stringify({ events: batch });
    let last: unknown;
    for (let attempt = 1; attempt <= this.c.maxAttempts; attempt++) {
      try {
        const res = await fetch(this.c.url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-portcullis-signature': signWebhook(this.secret, body), 'user-agent': 'portcullis-audit' },
          body,
          signal: AbortSignal.timeout(this.c.timeoutMs),
        });
        await res.arrayBuffer().catch(() => undefined);
        if (res.ok) return;
        last = new Error(`HTTP ${res.status}`);
        if (res.status >= 400 && res.status < 500 && res.status !== 408 && res.status !== 429) break; // the receiver refuses it: retrying will not help
      } catch (e) {
        last = e;
      }
      if (attempt < this.c.maxAttempts) {
        const base = this.c.backoffMs * 2 ** (attempt - 1);
        await sleep(this.closing ? Math.min(base, 100) : base * (0.5 + Math.random() * 0.5));
      }
    }
    throw last instanceof Error ? last : new Error(String(last));
  }
}

const SEVERITY = (e: AuditEvent) => (e.guardAction === 'block' || (e.status ?? 0) >= 500 ? 4 : (e.status ?? 0) >= 400 ? 5 : 6);

/** Formats an event as an RFC 5424 syslog line (the message is the event JSON). */
export function syslogLine(e: AuditEvent, facility: number, host = hostname()): string {
  const pri = facility * 8 + SEVERITY(e);
  const ts = new Date(e.ts).toISOString();
  return `<${pri}>1 ${ts} ${host.replace(/\s/g, '') || '-'} portcullis ${process.pid} ${e.kind === 'admin' ? 'admin' : 'request'} - ${JSON.stringify(e)}`;
}

/** Sends each event as one syslog (or bare JSON) line over UDP or TCP (newline-framed). */
export class SyslogSink extends QueuedSink {
  private udp: UdpSocket | undefined;
  private tcp: Socket | undefined;
  private readonly host = hostname();
  constructor(
    private readonly c: SyslogSinkConfig,
    log?: Log,
  ) {
    super(`syslog:${c.protocol}:${c.host}:${c.port}`, c.queueSize, log);
  }
  private line(e: AuditEvent): string {
    return this.c.format === 'json' ? JSON.stringify(e) : syslogLine(e, this.c.facility, this.host);
  }
  protected async deliver(batch: AuditEvent[]): Promise<void> {
    if (this.c.protocol === 'udp') {
      this.udp ??= createSocket(this.c.host.includes(':') ? 'udp6' : 'udp4').on('error', () => {});
      for (const e of batch) {
        const msg = Buffer.from(this.line(e), 'utf8');
        await new Promise<void>((res, rej) => this.udp!.send(msg.length > 65000 ? msg.subarray(0, 65000) : msg, this.c.port, this.c.host, (err) => (err ? rej(err) : res())));
      }
      return;
    }
    const sock = await this.connection();
    const data = batch.map((e) => this.line(e) + '\n').join('');
    await new Promise<void>((res, rej) => {
      sock.write(data, (err) => (err ? rej(err) : res()));
    }).catch((e) => {
      this.tcp?.destroy();
      this.tcp = undefined;
      throw e;
    });
  }
  private async connection(): Promise<Socket> {
    if (this.tcp && !this.tcp.destroyed) return this.tcp;
    const s = connect({ host: this.c.host, port: this.c.port });
    s.setNoDelay(true);
    await new Promise<void>((res, rej) => {
      s.once('connect', () => res());
      s.once('error', rej);
    });
    s.on('error', () => s.destroy());
    s.on('close', () => {
      if (this.tcp === s) this.tcp = undefined;
    });
    this.tcp = s;
    return s;
  }
  protected override async release(): Promise<void> {
    this.udp?.close();
    this.udp = undefined;
    if (this.tcp) await new Promise<void>((r) => this.tcp!.end(r));
    this.tcp = undefined;
  }
}

/** Appends events as JSON lines to a file (rotate it with copytruncate or by renaming: the sink reopens on close). */
export class FileSink extends QueuedSink {
  private out: WriteStream | undefined;
  constructor(
    private readonly c: FileSinkConfig,
    log?: Log,
  ) {
    super(`file:${c.path}`, c.queueSize, log);
  }
  protected override batchSize(): number {
    return 1000;
  }
  protected async deliver(batch: AuditEvent[]): Promise<void> {
    if (!this.out) {
      mkdirSync(dirname(this.c.path), { recursive: true });
      this.out = createWriteStream(this.c.path, { flags: 'a', mode: 0o600 });
      this.out.on('error', (e) => this.log?.warn({ sink: this.name, err: e.message }, 'audit file sink error'));
    }
    const ok = this.out.write(batch.map((e) => JSON.stringify(e) + '\n').join(''));
    if (!ok) await new Promise<void>((r) => this.out!.once('drain', () => r()));
  }
  protected override async release(): Promise<void> {
    if (this.out) await new Promise<void>((r) => this.out!.end(r));
    this.out = undefined;
  }
}

/** Creates the configured sinks. */
export function createSinks(c: { webhook: WebhookSinkConfig[]; syslog: SyslogSinkConfig[]; file: FileSinkConfig[] }, env: Record<string, string | undefined>, log?: Log): EventSink[] {
  return [...c.webhook.map((w) => new WebhookSink(w, env, log)), ...c.syslog.map((s) => new SyslogSink(s, log)), ...c.file.map((f) => new FileSink(f, log))];
}
