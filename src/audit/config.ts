/** The `audit:` configuration section: queue, spill, hashing, payload capture, retention and sinks. */
import { z } from 'zod';

/** Largest UDP payload over IPv4 (65 535 − 8 bytes UDP header − 20 bytes IP header). */
export const MAX_UDP_PAYLOAD = 65_507;

/** `queueBytes` of a sink: default 64 MiB. */
const queueBytes = () =>
  z
    .number()
    .int()
    .min(1024)
    .max(2 ** 32)
    .default(64 * 1024 * 1024);

const webhookSink = z
  .object({
    /** Receiver URL (http or https). */
    url: z.string().url(),
    /** Env variable holding the HMAC-SHA256 signing secret. */
    secretEnv: z.string().optional(),
    /** File holding the signing secret. */
    secretFile: z.string().optional(),
    /** Events per POST. */
    batchSize: z.number().int().min(1).max(1000).default(100),
    /** Delivery attempts per batch before it is dropped (counted). */
    maxAttempts: z.number().int().min(1).max(20).default(5),
    /** First retry delay; doubles on every retry (with jitter), capped at 5 minutes. */
    backoffMs: z.number().int().min(1).max(600_000).default(500),
    /** Deadline of one POST (connect, request and response). */
    timeoutMs: z.number().int().min(100).max(120_000).default(5_000),
    /** Events held for this sink; the oldest are dropped (counted) beyond it. */
    queueSize: z.number().int().min(1).max(1_000_000).default(10_000),
    /** Bytes (serialized event length) held for this sink; the oldest are dropped (counted) beyond it. */
    queueBytes: queueBytes(),
  })
  .strict();

const syslogSink = z
  .object({
    host: z.string().default('127.0.0.1'),
    port: z.number().int().min(1).max(65535).default(514),
    protocol: z.enum(['udp', 'tcp']).default('udp'),
    /** `syslog`: RFC 5424 line with the event JSON as message; `json`: the bare JSON line. */
    format: z.enum(['syslog', 'json']).default('syslog'),
    /** Syslog facility number (16 = local0). */
    facility: z.number().int().min(0).max(23).default(16),
    /**
     * Largest message (framed line, UTF-8 bytes); a bigger event is sent as a small stub marked
     * `truncated: true` (counted). Default 8192 over UDP (at most 65 507), 1 MiB over TCP.
     */
    maxMessageBytes: z
      .number()
      .int()
      .min(512)
      .max(64 * 1024 * 1024)
      .optional(),
    /** TCP: deadline of a connect and of one batch write reaching the kernel; past it the connection is dropped and the batch retried. */
    timeoutMs: z.number().int().min(100).max(600_000).default(10_000),
    /** Events held for this sink; the oldest are dropped (counted) beyond it. */
    queueSize: z.number().int().min(1).max(1_000_000).default(10_000),
    /** Bytes (serialized event length) held for this sink; the oldest are dropped (counted) beyond it. */
    queueBytes: queueBytes(),
  })
  .strict()
  .superRefine((s, ctx) => {
    if (s.protocol === 'udp' && s.maxMessageBytes !== undefined && s.maxMessageBytes > MAX_UDP_PAYLOAD) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['maxMessageBytes'], message: `expected at most ${MAX_UDP_PAYLOAD} over UDP (the largest UDP payload)` });
    }
  });

const fileSink = z
  .object({
    /** JSON-lines file appended for log shippers (Filebeat, Vector, Fluent Bit…). */
    path: z.string().min(1),
    /** Events held for this sink; the oldest are dropped (counted) beyond it. */
    queueSize: z.number().int().min(1).max(1_000_000).default(10_000),
    /** Bytes (serialized event length) held for this sink; the oldest are dropped (counted) beyond it. */
    queueBytes: queueBytes(),
  })
  .strict();

/** Schema of the `audit:` section. */
export const auditConfigSchema = z
  .object({
    /** Record one audit event per proxied request and per admin action. */
    enabled: z.boolean().default(true),
    /** Events held in memory before they spill to the local file (never dropped). */
    queueSize: z.number().int().min(1).max(10_000_000).default(20_000),
    /** Events per database write. */
    batchSize: z.number().int().min(1).max(10_000).default(500),
    /** Longest wait before a partial batch is written. */
    flushIntervalMs: z.number().int().min(1).max(60_000).default(250),
    /** How often a down store is retried (and the spill file replayed). */
    retryIntervalMs: z.number().int().min(10).max(600_000).default(2_000),
    /** Longest wait for one batch write; past it the batch is spilled and the store taken as down. */
    writeTimeoutMs: z.number().int().min(100).max(600_000).default(10_000),
    /** Longest wait of shutdown for the store; past it what is left is spilled. */
    closeTimeoutMs: z.number().int().min(10).max(600_000).default(1_000),
    /** Directory of the append-only spill files (default `<dataDir>/audit-spill`). */
    spillDir: z.string().optional(),
    /** How often admin events are bridged into the audit trail. */
    adminPollMs: z.number().int().min(10).max(600_000).default(1_000),
    /**
     * Record reads of the trail (admin API and CLI: searches, single events, usage) as admin events
     * (`audit.search`, `audit.read`, `audit.usage`, with the filters used, never the results).
     */
    recordReads: z.boolean().default(true),
    /** Delete events older than this many days (0 = keep forever). */
    retentionDays: z.number().int().min(0).max(36_500).default(0),
    /** Keyed hashes of prompts and outputs: env variable or file with the HMAC key (else generated in the data dir). */
    hashKeyEnv: z.string().default('PORTCULLIS_AUDIT_HASH_KEY'),
    hashKeyFile: z.string().optional(),
    /** Optional forensic capture of request/response bodies, encrypted per tenant. */
    payloads: z
      .object({
        enabled: z.boolean().default(false),
        /** Tenant ids or names whose bodies are captured; `*` = all. */
        tenants: z.array(z.string().min(1)).default([]),
        /** Captured bodies are purged after this many days. */
        retentionDays: z.number().int().min(1).max(3650).default(30),
        /** Bytes kept per body (the rest is cut, and marked so). */
        maxBytes: z.number().int().min(1024).max(64 * 1024 * 1024).default(1024 * 1024),
        /** Env variable with the master key (32 bytes as 64 hex chars or base64). */
        masterKeyEnv: z.string().default('PORTCULLIS_MASTER_KEY'),
        /** File with the master key (e.g. a mounted secret). */
        masterKeyFile: z.string().optional(),
      })
      .strict()
      .default({}),
    /** Export sinks; none block the request path. */
    sinks: z
      .object({
        webhook: z.array(webhookSink).default([]),
        syslog: z.array(syslogSink).default([]),
        file: z.array(fileSink).default([]),
      })
      .strict()
      .default({}),
  })
  .strict();

/** The validated `audit:` section. */
export type AuditConfig = z.infer<typeof auditConfigSchema>;
/** A webhook sink's options. */
export type WebhookSinkConfig = z.infer<typeof webhookSink>;
/** A syslog sink's options. */
export type SyslogSinkConfig = z.infer<typeof syslogSink>;
/** A file sink's options. */
export type FileSinkConfig = z.infer<typeof fileSink>;
