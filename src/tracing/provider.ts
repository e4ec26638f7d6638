/**
 * A small OpenTelemetry tracer behind the @opentelemetry/api interfaces, with an in-memory
 * exporter (tests) and a batching OTLP/HTTP JSON exporter. (The official SDK packages declare a
 * peer range of @opentelemetry/api below the 1.10 this project pins, so they cannot be installed.)
 */
import { randomBytes } from 'node:crypto';
import {
  SpanKind,
  SpanStatusCode,
  TraceFlags,
  trace,
  type Attributes,
  type Context,
  type Link,
  type Span,
  type SpanAttributeValue,
  type SpanContext,
  type SpanOptions,
  type SpanStatus,
  type TimeInput,
  type Tracer,
} from '@opentelemetry/api';

/** A finished span as exporters see it. */
export interface FinishedSpan {
  name: string;
  kind: SpanKind;
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  /** Epoch nanoseconds as a bigint. */
  startNs: bigint;
  endNs: bigint;
  attributes: Attributes;
  events: Array<{ name: string; timeNs: bigint; attributes: Attributes }>;
  status: SpanStatus;
}

/** Receives finished spans. */
export interface SpanExporter {
  export(spans: FinishedSpan[]): Promise<void>;
  shutdown(): Promise<void>;
}

function toNs(t: TimeInput | undefined): bigint {
  if (t === undefined) return BigInt(Date.now()) * 1_000_000n;
  if (typeof t === 'number') return BigInt(Math.round(t * 1000)) * 1000n; // epoch ms (fractions kept to µs)
  if (t instanceof Date) return BigInt(t.getTime()) * 1_000_000n;
  return BigInt(t[0]) * 1_000_000_000n + BigInt(t[1]);
}

class RecordingSpan implements Span {
  private ended = false;
  private readonly rec: FinishedSpan;
  constructor(
    private readonly ctx: SpanContext,
    name: string,
    opts: SpanOptions,
    parentSpanId: string | undefined,
    private readonly onEnd: (s: FinishedSpan) => void,
  ) {
    this.rec = {
      name,
      kind: opts.kind ?? SpanKind.INTERNAL,
      traceId: ctx.traceId,
      spanId: ctx.spanId,
      ...(parentSpanId ? { parentSpanId } : {}),
      startNs: toNs(opts.startTime),
      endNs: 0n,
      attributes: { ...(opts.attributes ?? {}) },
      events: [],
      status: { code: SpanStatusCode.UNSET },
    };
  }
  spanContext(): SpanContext {
    return this.ctx;
  }
  setAttribute(key: string, value: SpanAttributeValue): this {
    if (!this.ended && value !== undefined) this.rec.attributes[key] = value;
    return this;
  }
  setAttributes(a: Attributes): this {
    for (const [k, v] of Object.entries(a)) if (v !== undefined) this.setAttribute(k, v);
    return this;
  }
  addEvent(name: string, a?: Attributes | TimeInput, t?: TimeInput): this {
    const isTime = typeof a === 'number' || a instanceof Date || Array.isArray(a);
    this.rec.events.push({ name, timeNs: toNs(isTime ? (a as TimeInput) : t), attributes: isTime || !a ? {} : (a as Attributes) });
    return this;
  }
  addLink(_l: Link): this {
    return this;
  }
  addLinks(_l: Link[]): this {
    return this;
  }
  setStatus(s: SpanStatus): this {
    this.rec.status = s;
    return this;
  }
  updateName(n: string): this {
    this.rec.name = n;
    return this;
  }
  end(t?: TimeInput): void {
    if (this.ended) return;
    this.ended = true;
    this.rec.endNs = toNs(t);
    if (this.rec.endNs < this.rec.startNs) this.rec.endNs = this.rec.startNs;
    this.onEnd(this.rec);
  }
  isRecording(): boolean {
    return !this.ended;
  }
  recordException(e: { message?: string; name?: string } | string, t?: TimeInput): void {
    const msg = typeof e === 'string' ? e : (e.message ?? '');
    this.addEvent('exception', { 'exception.message': msg.slice(0, 500), ...(typeof e === 'string' ? {} : { 'exception.type': e.name ?? 'Error' }) }, t);
  }
}

/** A tracer that records spans and hands them to an exporter (batched). */
export interface SimpleTracerProvider {
  tracer: Tracer;
  /** Exports what is queued now. */
  flush(): Promise<void>;
  shutdown(): Promise<void>;
  /** Spans dropped because the queue was full. */
  dropped(): number;
}

/** Options of the provider. */
export interface ProviderOptions {
  exporter: SpanExporter;
  flushIntervalMs?: number;
  maxBatch?: number;
  maxQueue?: number;
  onError?(e: unknown): void;
}

/** Creates the provider with its batching span processor. */
export function createTracerProvider(o: ProviderOptions): SimpleTracerProvider {
  const maxBatch = o.maxBatch ?? 512;
  const maxQueue = o.maxQueue ?? 8192;
  let queue: FinishedSpan[] = [];
  let dropped = 0;
  let flushing: Promise<void> = Promise.resolve();
  const timer = setInterval(() => void flush(), o.flushIntervalMs ?? 2000);
  timer.unref();

  function flush(): Promise<void> {
    flushing = flushing.then(async () => {
      while (queue.length) {
        const batch = queue.slice(0, maxBatch);
        queue = queue.slice(batch.length);
        try {
          await o.exporter.export(batch);
        } catch (e) {
          dropped += batch.length;
          o.onError?.(e);
        }
      }
    });
    return flushing;
  }
  function onEnd(s: FinishedSpan): void {
    if (queue.length >= maxQueue) {
      dropped++;
      return;
    }
    queue.push(s);
    if (queue.length >= maxBatch) void flush();
  }
  const tracer: Tracer = {
    startSpan(name: string, opts: SpanOptions = {}, ctx?: Context): Span {
      const parent = ctx ? trace.getSpanContext(ctx) : undefined;
      const traceId = parent?.traceId ?? randomBytes(16).toString('hex');
      const spanId = randomBytes(8).toString('hex');
      return new RecordingSpan({ traceId, spanId, traceFlags: TraceFlags.SAMPLED }, name, opts, parent?.spanId, onEnd);
    },
    startActiveSpan(name: string, ...rest: unknown[]): never {
      const fn = rest[rest.length - 1] as (s: Span) => unknown;
      const opts = (rest.length >= 2 ? rest[0] : {}) as SpanOptions;
      const ctx = (rest.length >= 3 ? rest[1] : undefined) as Context | undefined;
      return fn(this.startSpan(name, opts, ctx)) as never;
    },
  };
  return {
    tracer,
    flush,
    async shutdown() {
      clearInterval(timer);
      await flush();
      await o.exporter.shutdown();
    },
    dropped: () => dropped,
  };
}

/** Keeps finished spans in memory (tests). */
export class InMemorySpanExporter implements SpanExporter {
  readonly spans: FinishedSpan[] = [];
  async export(spans: FinishedSpan[]): Promise<void> {
    this.spans.push(...spans);
  }
  async shutdown(): Promise<void> {}
}

function otlpValue(v: unknown): Record<string, unknown> {
  if (typeof v === 'string') return { stringValue: v };
  if (typeof v === 'boolean') return { boolValue: v };
  if (typeof v === 'number') return Number.isInteger(v) ? { intValue: String(v) } : { doubleValue: v };
  if (Array.isArray(v)) return { arrayValue: { values: v.map(otlpValue) } };
  return { stringValue: String(v) };
}

const attrs = (a: Attributes) => Object.entries(a).filter(([, v]) => v !== undefined).map(([key, value]) => ({ key, value: otlpValue(value) }));

/** The OTLP/HTTP JSON body (ExportTraceServiceRequest) for a batch of spans. */
export function otlpJson(spans: FinishedSpan[], serviceName: string): unknown {
  return {
    resourceSpans: [
      {
        resource: { attributes: attrs({ 'service.name': serviceName }) },
        scopeSpans: [
          {
            scope: { name: 'portcullis' },
            spans: spans.map((s) => ({
              traceId: s.traceId,
              spanId: s.spanId,
              ...(s.parentSpanId ? { parentSpanId: s.parentSpanId } : {}),
              name: s.name,
              kind: s.kind + 1, // OTLP enum: 1 = internal, 2 = server, 3 = client …
              startTimeUnixNano: s.startNs.toString(),
              endTimeUnixNano: s.endNs.toString(),
              attributes: attrs(s.attributes),
              events: s.events.map((e) => ({ name: e.name, timeUnixNano: e.timeNs.toString(), attributes: attrs(e.attributes) })),
              status: { code: s.status.code, ...(s.status.message ? { message: s.status.message } : {}) },
            })),
          },
        ],
      },
    ],
  };
}

/** Posts spans to an OTLP/HTTP collector as JSON. */
export class OtlpHttpExporter implements SpanExporter {
  constructor(private readonly o: { endpoint: string; headers?: Record<string, string>; serviceName: string; timeoutMs?: number }) {}
  async export(spans: FinishedSpan[]): Promise<void> {
    const res = await fetch(this.o.endpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(this.o.headers ?? {}) },
      body: JSON.stringify(otlpJson(spans, this.o.serviceName)),
      signal: AbortSignal.timeout(this.o.timeoutMs ?? 5000),
    });
    await res.arrayBuffer().catch(() => undefined);
    if (!res.ok) throw new Error(`OTLP collector answered ${res.status}`);
  }
  async shutdown(): Promise<void> {}
}
