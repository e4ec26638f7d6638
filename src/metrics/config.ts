/** The `metrics:` config section: what /metrics exposes and who may read it. */
import { z } from 'zod';

/** Options of the Prometheus endpoint. */
export const metricsConfigSchema = z
  .object({
    /** Collect and serve metrics at all. */
    enabled: z.boolean().default(true),
    /** Path of the scrape endpoint. */
    path: z.string().regex(/^\/[A-Za-z0-9/_-]*$/).default('/metrics'),
    /**
     * Serve on a separate port (bound to `host`, loopback by default) instead of the gateway's
     * port. 0 picks a free port (tests). Unset: served on the gateway's port behind the token.
     */
    port: z.number().int().min(0).max(65535).optional(),
    /** Bind address of the separate metrics port. */
    host: z.string().default('127.0.0.1'),
    /** Env variable holding the bearer token scrapers must send (`Authorization: Bearer …`). */
    tokenEnv: z.string().default('PORTCULLIS_METRICS_TOKEN'),
    /** File holding the bearer token (a mounted secret); wins over tokenEnv. */
    tokenFile: z.string().optional(),
    /**
     * Allow scraping without a token. Without a token and without this, /metrics on the gateway
     * port answers 404 (a separate loopback port is always allowed).
     */
    public: z.boolean().default(false),
    /** Add a `key` label (API key id) to request and token counters. Off by default (cardinality). */
    perKeyLabels: z.boolean().default(false),
    /** Most distinct values kept per label (tenant, model, key…); further values become `other`. */
    maxLabelValues: z.number().int().min(1).max(100_000).default(200),
    /**
     * Most series (label combinations) kept per request metric; further combinations are counted
     * in one series whose labels are all `other` (bounds memory and scrape size whatever the traffic).
     */
    maxSeriesPerMetric: z.number().int().min(1).max(1_000_000).default(10_000),
    /** Histogram buckets (seconds) of latency metrics. */
    latencyBuckets: z.array(z.number().positive()).min(1).default([0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]),
    /** Add Node.js process metrics (CPU, memory, event-loop lag) with the `portcullis_` prefix (portcullis_process_*, portcullis_nodejs_*). */
    processMetrics: z.boolean().default(true),
  })
  .strict();

/** Validated metrics options. */
export type MetricsConfig = z.infer<typeof metricsConfigSchema>;
