/** The `tracing:` config section (OpenTelemetry spans of each request). */
import { z } from 'zod';

/** Tracing options. Disabled by default: no spans are built at all. */
export const tracingConfigSchema = z
  .object({
    enabled: z.boolean().default(false),
    /**
     * `otlp`: the built-in OTLP/HTTP (JSON) exporter to `endpoint`; `global`: hand spans to the
     * tracer provider the embedding application registered with @opentelemetry/api.
     */
    exporter: z.enum(['otlp', 'global']).default('otlp'),
    /** OTLP/HTTP traces URL, e.g. http://127.0.0.1:4318/v1/traces. */
    endpoint: z.string().url().default('http://127.0.0.1:4318/v1/traces'),
    /** Extra headers sent to the collector (e.g. an auth header). */
    headers: z.record(z.string()).default({}),
    /** `service.name` resource attribute. */
    serviceName: z.string().min(1).default('portcullis'),
    /** Fraction of requests without an incoming `traceparent` traced (0–1); with one, its sampled flag decides. */
    sampleRatio: z.number().min(0).max(1).default(1),
    /** Flush a batch every this many ms, or when `maxBatch` spans are queued. */
    flushIntervalMs: z.number().int().min(10).max(60_000).default(2000),
    maxBatch: z.number().int().min(1).max(10_000).default(512),
    /** Spans kept in the queue while the collector is down; older ones are dropped. */
    maxQueue: z.number().int().min(1).max(1_000_000).default(8192),
    exportTimeoutMs: z.number().int().min(100).max(60_000).default(5000),
  })
  .strict();

/** Validated tracing options. */
export type TracingConfig = z.infer<typeof tracingConfigSchema>;
