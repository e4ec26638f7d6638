/** The `analytics:` config section: baselines, extraction detection, perturbation, automated response, alerts. */
import { z } from 'zod';

const action = z.enum(['alert', 'throttle', 'suspend']);

/** Analytics options; every threshold has a default measured in test/analytics. */
export const analyticsConfigSchema = z
  .object({
    enabled: z.boolean().default(true),
    anomaly: z
      .object({
        enabled: z.boolean().default(true),
        bucketMs: z.number().int().min(1000).max(3_600_000).default(60_000),
        alpha: z.number().gt(0).lt(1).default(0.01),
        zThreshold: z.number().positive().default(6),
        /** Buckets with traffic (idle ones do not count) before a key or tenant can alert. */
        warmupBuckets: z.number().int().min(0).default(120),
        /** Idle buckets after which an entity's baseline is dropped and it warms up again (default 7 days). */
        dormantBuckets: z.number().int().min(1).default(7 * 1440),
        minRequests: z.number().int().min(1).default(20),
        minStdRatio: z.number().min(0).default(0.25),
        maxEntities: z.number().int().min(1).default(100_000),
      })
      .strict()
      .default({}),
    extraction: z
      .object({
        enabled: z.boolean().default(true),
        window: z.number().int().min(10).max(10_000).default(200),
        windowMs: z.number().int().min(1000).default(3_600_000),
        minRequests: z.number().int().min(5).default(30),
        similarity: z.number().gt(0).max(1).default(0.5),
        volumePerHour: z.number().int().min(1).default(2000),
        threshold: z.number().gt(0).max(1).default(0.5),
        maxKeys: z.number().int().min(1).default(50_000),
      })
      .strict()
      .default({}),
    /** Output perturbation against extraction. */
    perturb: z
      .object({
        /** `allow` passes logprobs requests through, `cap` limits top_logprobs, `strip` removes them. */
        logprobs: z.enum(['allow', 'cap', 'strip']).default('cap'),
        maxTopLogprobs: z.number().int().min(0).max(20).default(5),
        /** Round returned log-probabilities to this many decimals (unset: unchanged). */
        roundDecimals: z.number().int().min(0).max(10).optional(),
      })
      .strict()
      .default({}),
    /** What happens automatically when a key is flagged. */
    response: z
      .object({
        onAnomaly: action.default('alert'),
        // Alert only by default: templated apps with short, ever-new fillers ("status of order N")
        // score like an extraction campaign (README: Behaviour analytics), and throttling them by
        // default would take legitimate pipelines down. Enforcement is the operator's choice.
        onExtraction: action.default('alert'),
        /** Requests per minute a throttled key keeps. */
        throttleRpm: z.number().int().min(0).default(10),
        throttleMs: z.number().int().min(1000).default(3_600_000),
        /** Automatic suspensions end after this long; unset = until an operator clears them. */
        suspendMs: z.number().int().min(1000).optional(),
        /** After an operator clears a key, automatic actions skip it for this long. */
        cooldownMs: z.number().int().min(0).default(3_600_000),
        /** How often other instances' (and the CLI's) actions are re-read from the store. */
        refreshMs: z.number().int().min(100).default(5000),
        /**
         * Keys (ids) and tenants (names or ids) that are only alerted on, never throttled or
         * suspended automatically: batch pipelines and templated apps the extraction detector
         * cannot tell from a campaign (see the README's measured false-positive rates).
         */
        alertOnly: z
          .object({ keys: z.array(z.string().min(1)).default([]), tenants: z.array(z.string().min(1)).default([]) })
          .strict()
          .default({}),
      })
      .strict()
      .default({}),
    alerts: z
      .object({
        /** Webhook receiving alerts as JSON, signed with HMAC-SHA256 (`x-portcullis-signature`). */
        webhookUrl: z.string().url().optional(),
        webhookSecretEnv: z.string().default('PORTCULLIS_ALERT_WEBHOOK_SECRET'),
        timeoutMs: z.number().int().min(100).default(5000),
        /** The same alert (entity + kind + signal) is sent at most once per this period. */
        dedupMs: z.number().int().min(0).default(3_600_000),
        /** Alerts kept in memory for the admin API. */
        keep: z.number().int().min(1).default(1000),
      })
      .strict()
      .default({}),
  })
  .strict();

/** Validated analytics options. */
export type AnalyticsConfig = z.infer<typeof analyticsConfigSchema>;
