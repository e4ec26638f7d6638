/**
 * The one configuration schema. Every section is strict: unknown keys are rejected with
 * their path. Types are derived from the schema (`Config = z.infer<typeof configSchema>`).
 */
import { z } from 'zod';
import { guardsConfigSchema } from '../guards/config.js';
import { limitsConfigSchema } from '../limits/config.js';
import { auditConfigSchema } from '../audit/config.js';
import { adminConfigSchema, identityConfigSchema } from '../identity/config.js';
import { policyConfigSchema, tiersConfigSchema } from '../policy/config.js';
import { metricsConfigSchema } from '../metrics/config.js';
import { tracingConfigSchema } from '../tracing/config.js';
import { analyticsConfigSchema } from '../analytics/config.js';
import { jwtConfigSchema } from '../identity/jwt-config.js';
import { mtlsConfigSchema, tlsConfigSchema } from '../identity/mtls.js';

const ms = (def: number) => z.number().int().positive().max(3_600_000).default(def);

/** Size like 4194304, "4mb", "512kb". */
export const sizeSchema = z.union([
  z.number().int().positive(),
  z
    .string()
    .regex(/^\d+(\.\d+)?\s*(b|kb|kib|mb|mib|gb|gib)?$/i, 'expected a size such as 4mb or 4194304')
    .transform((s) => {
      const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(s.trim())!;
      const unit = (m[2] || 'b').toLowerCase();
      const mult = unit.startsWith('g') ? 1024 ** 3 : unit.startsWith('m') ? 1024 ** 2 : unit.startsWith('k') ? 1024 : 1;
      return Math.floor(Number(m[1]) * mult);
    }),
]);

/** An upstream base URL: http(s), no query string, fragment or credentials (calls append their path to it). */
const baseUrlSchema = z
  .string()
  .url()
  .refine((u) => /^https?:\/\/[^/?#@]+(\/[^?#]*)?$/i.test(u), 'baseUrl must be an http(s) URL without a query string, fragment or credentials (e.g. https://api.openai.com/v1)');

export const providerSchema = z.discriminatedUnion('type', [
  z
    .object({
      type: z.literal('openai'),
      /** Base URL including the version path, e.g. https://api.openai.com/v1 or http://127.0.0.1:8000/v1 */
      baseUrl: baseUrlSchema,
      /** Name of the env variable holding the upstream key. */
      apiKeyEnv: z.string().optional(),
      /** Path of a file holding the upstream key (e.g. a mounted secret). */
      apiKeyFile: z.string().optional(),
      /** Azure OpenAI: adds `api-version` to every URL and sends the key as `api-key`. */
      azure: z.object({ apiVersion: z.string().min(1) }).strict().optional(),
      /** Extra static headers sent upstream (never from the client). */
      headers: z.record(z.string()).default({}),
    })
    .strict(),
  z
    .object({
      type: z.literal('anthropic'),
      baseUrl: baseUrlSchema.default('https://api.anthropic.com'),
      apiKeyEnv: z.string().optional(),
      apiKeyFile: z.string().optional(),
      version: z.string().default('2023-06-01'),
      headers: z.record(z.string()).default({}),
    })
    .strict(),
  z.object({ type: z.literal('demo') }).strict(),
]);

export const routeSchema = z
  .object({
    /** Model name or glob (`gpt-*`). */
    model: z.string().min(1).max(256),
    /** Provider name from `providers`. */
    provider: z.string().min(1),
    /** Rewrite the model name sent upstream (e.g. an Azure deployment name). */
    upstreamModel: z.string().min(1).optional(),
  })
  .strict();

export const configSchema = z
  .object({
    server: z
      .object({
        host: z.string().default('127.0.0.1'),
        port: z.number().int().min(0).max(65535).default(8080),
        /** Largest accepted request body (default 4 MiB → 413 above). */
        bodyLimit: sizeSchema.default(4 * 1024 * 1024),
        /** Deepest accepted JSON nesting. */
        maxJsonDepth: z.number().int().min(2).max(1000).default(64),
        /** Worker processes (node:cluster); 1 = single process. */
        workers: z.number().int().min(1).max(64).default(1),
        /** Trust X-Forwarded-For from these proxies (fastify trustProxy). */
        trustProxy: z.union([z.boolean(), z.string(), z.array(z.string())]).default(false),
        requestTimeoutMs: ms(600_000),
        /** Terminate TLS in the gateway (and optionally ask for client certificates); see docs/sections/jwt-mtls-objects.md. */
        tls: tlsConfigSchema.optional(),
        /**
         * Full GC once the old generation has grown this many percent past what the last one left
         * (V8's adaptive default lets it reach up to 4×); 0 = V8's default. See applyHeapGrowth.
         */
        heapGrowthPercent: z.number().int().min(0).max(1000).default(20),
        /** Full GC when the process goes idle after a burst, so the heap grown by the burst goes back to the system (src/util/heap-trim.ts). */
        heapTrim: z
          .object({
            enabled: z.boolean().default(true),
            /** Event-loop utilisation (0-1) over the last check below which the process counts as idle. */
            idleUtilization: z.number().min(0.01).max(1).default(0.25),
            /** Least time between two trims. */
            minIntervalMs: z.number().int().min(1_000).max(86_400_000).default(10_000),
            /** How often the heap is looked at. */
            checkMs: z.number().int().min(100).max(60_000).default(1_000),
          })
          .strict()
          .default({}),
      })
      .strict()
      .default({}),
    /** Where the embedded default keeps its SQLite file and generated secrets. */
    dataDir: z.string().default('./data'),
    store: z
      .object({
        kind: z.enum(['embedded', 'cluster']).default('embedded'),
        postgresUrl: z.string().optional(),
        redisUrl: z.string().optional(),
      })
      .strict()
      .default({}),
    providers: z.record(providerSchema).default({ demo: { type: 'demo' } }),
    /** Model → provider routes, first match wins. */
    routes: z.array(routeSchema).default([{ model: 'demo*', provider: 'demo' }]),
    upstream: z
      .object({
        connectTimeoutMs: ms(5_000),
        /** Time until the upstream's response headers arrive. */
        firstByteTimeoutMs: ms(60_000),
        /** Whole non-streamed exchange, or a whole stream. */
        totalTimeoutMs: ms(600_000),
        /** Longest silence between two chunks of a stream. */
        streamIdleTimeoutMs: ms(60_000),
        /** Largest non-streamed upstream body accepted. */
        maxResponseBytes: sizeSchema.default(64 * 1024 * 1024),
        /** Keep-alive connections per upstream origin. */
        connections: z.number().int().min(1).max(10_000).default(128),
      })
      .strict()
      .default({}),
    log: z
      .object({
        level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
      })
      .strict()
      .default({}),
    /** Identification: key cache, revocation propagation, failed-auth limits. */
    identity: identityConfigSchema,
    /** Other credentials besides API keys: bearer JWTs (`jwt`) and client certificates (`mtls`, needs server.tls). */
    auth: z
      .object({ jwt: jwtConfigSchema.optional(), mtls: mtlsConfigSchema.optional() })
      .strict()
      .default({}),
    /** Admin API. */
    admin: adminConfigSchema,
    /** Named scope templates (tiers) keys and tenants refer to. */
    tiers: tiersConfigSchema,
    /** Authorization defaults, data boundaries, optional Cedar policies. */
    policy: policyConfigSchema,
    /** Request-stage guards: injection, PII, secrets, regexes, spotlighting, judges, vault (see docs/sections/guards.md). */
    guards: guardsConfigSchema.default({}),
    /** Rate limits, concurrency, token and money budgets, pricing (see the Limits section of the README). */
    limits: limitsConfigSchema.default({}),
    /** Prometheus /metrics: access (token or loopback port), per-key labels, cardinality cap (see docs/sections/observability.md). */
    metrics: metricsConfigSchema.default({}),
    /** OpenTelemetry tracing of each request (OTLP/HTTP exporter). */
    tracing: tracingConfigSchema.default({}),
    /** Behaviour analytics: anomaly baselines, extraction detection, logprobs perturbation, automated response, alerts. */
    analytics: analyticsConfigSchema.default({}),
    /** Audit trail: durable events, payload capture, sinks (see docs/sections/audit.md). */
    audit: auditConfigSchema.default({}),
  })
  .strict();

/** The validated, frozen configuration. */
export type Config = z.infer<typeof configSchema>;
/** Configuration as written by a user (before defaults). */
export type ConfigInput = z.input<typeof configSchema>;
export type ProviderConfig = z.infer<typeof providerSchema>;
export type RouteConfig = z.infer<typeof routeSchema>;
