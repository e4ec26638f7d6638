/**
 * Public types of the limits engine: what the gateway asks (AdmitRequest), what it gets
 * back (Admission with a Ticket), and what it reports afterwards (Usage).
 */
import type { GatewayError } from '../errors.js';

/** Limits of one scope (a key, a tenant or an end user). Absent fields mean "no limit". */
export interface LimitSet {
  /** Requests per minute (GCRA, smooth; a full minute's worth may arrive as one burst). */
  requestsPerMinute?: number;
  /** Tokens (input estimate + output cap at admission, actual after settlement) per minute. */
  tokensPerMinute?: number;
  /** Requests in flight at the same time. */
  concurrency?: number;
  /** Tokens per calendar day in the configured time zone. */
  dailyTokens?: number;
  /** Tokens per calendar month in the configured time zone. */
  monthlyTokens?: number;
  /** US dollars per calendar day. */
  dailyCostUsd?: number;
  /** US dollars per calendar month. */
  monthlyCostUsd?: number;
  /** Admitted requests per calendar day in the configured time zone (a query budget). */
  dailyRequests?: number;
  /** Admitted requests per calendar month in the configured time zone (a query budget). */
  monthlyRequests?: number;
  /** Largest input (estimated tokens) one request may carry. */
  maxInputTokens?: number;
  /** Largest output cap one request may ask for; also lowers the default cap. */
  maxOutputTokens?: number;
  /** Most messages one request may carry. */
  maxMessages?: number;
}

/** The three scopes limits apply to. */
export type Scope = 'key' | 'tenant' | 'user';

/** One request presented for admission. */
export interface AdmitRequest {
  /** Tenant of the caller; all counters of one request live under this tenant. */
  tenantId: string;
  /** API key id (not the secret); enables the key scope. */
  keyId?: string;
  /** End user (JWT subject or the request's `user` field); enables the user scope. */
  userId?: string;
  /** Model name as requested. */
  model: string;
  /** Estimated input tokens (see estimateInputTokens). */
  inputTokens: number;
  /** The client's output cap (the field its API honours: max_tokens / max_completion_tokens / max_output_tokens), if any. */
  requestedOutputTokens?: number;
  /**
   * An upper bound on the output cap set outside the limits (the policy's `maxOutputTokens`): the
   * cap reserved (and forwarded) is at most this, whether the client sent one or not.
   */
  outputCapLimit?: number;
  /** Answers the upstream generates per request (chat `n`, completions `max(n, best_of)`); each may reach the output cap. Default 1. */
  outputCount?: number;
  /** True for an API without output tokens (embeddings): the reservation is the input alone. */
  noOutput?: boolean;
  /** Number of messages in the request. */
  messages: number;
  /** Limits per scope; merged field by field over `config.defaults`. */
  limits: { key?: LimitSet; tenant?: LimitSet; user?: LimitSet };
}

/** What to hand back on settle/release. Opaque to callers apart from the documented fields. */
export interface Ticket {
  /** Unique id of this admission (also the concurrency lease id). */
  readonly id: string;
  /** Model the reservation was priced for. */
  readonly model: string;
  /** Tokens reserved (input estimate + output cap × answers). */
  readonly reservedTokens: number;
  /** Dollars reserved against money budgets. */
  readonly reservedCostUsd: number;
  /** The output cap per answer the reservation assumes; forward it upstream as max_tokens when the client sent none (0 for an API without output). */
  readonly maxOutputTokens: number;
  /** Answers reserved for (`outputCount`): the reservation's output is `maxOutputTokens × outputCount`. */
  readonly outputCount: number;
  /** True when this admission was decided by the local fallback limiter (store outage, fail-open). */
  readonly fallback: boolean;
  /** Internal: what to undo or adjust. */
  readonly plan: TicketPlan;
}

/** What a budget counts: tokens, nano-dollars, or admitted requests. */
export type BudgetKind = 'tokens' | 'cost' | 'requests';

/** Internal part of a ticket: the counters touched at admission (the admission's own operations, not copies). */
export interface TicketPlan {
  tenantId: string;
  /** Rate operations as reserved (`cost`), and the kind of each. */
  rates: RateOp[];
  rateKinds: ('requests' | 'tokens')[];
  slots: SlotOp[];
  /** Budget operations as reserved (`amount`), and the kind of each. */
  budgets: BudgetOp[];
  budgetKinds: BudgetKind[];
  /** Set once settled or released, so a second call is a no-op. */
  done: boolean;
}

/** The answer to an admission. */
export type Admission =
  | { ok: true; ticket: Ticket; headers: Record<string, string> }
  | { ok: false; error: GatewayError };

/** Actual usage reported by the provider. `cachedInputTokens` is the part of `inputTokens` read from cache. */
export interface Usage {
  inputTokens: number;
  outputTokens: number;
  cachedInputTokens?: number;
  /** The part of `inputTokens` written to the prompt cache (Anthropic `cache_creation_input_tokens`). */
  cacheWriteInputTokens?: number;
  /** Of `cacheWriteInputTokens`, the part written for an hour (Anthropic `cache_creation.ephemeral_1h_input_tokens`). */
  cacheWrite1hInputTokens?: number;
}

/** Counters of a limiter, for metrics. */
export interface LimiterStats {
  /** Admissions decided by the local fallback limiter because the store failed (fail-open). */
  fallbackAdmissions: number;
  /** Admissions refused with 503 because the store failed (fail-closed). */
  unavailableRefusals: number;
  /** Store errors seen in admit/settle/release. */
  storeErrors: number;
}

/** The limits engine as the gateway uses it. */
export interface Limiter {
  /**
   * Checks every limit and reserves rate, concurrency and budget capacity in one atomic store
   * operation. A concurrency lease is renewed (every third of `concurrencyLeaseMs`) until the
   * ticket is settled or released, so long streams keep their slot.
   */
  admit(req: AdmitRequest): Promise<Admission>;
  /** Replaces the reservation by actual usage and frees the concurrency slot; returns the request's cost. Idempotent. */
  settle(ticket: Ticket, usage: Usage): Promise<{ costUsd: number }>;
  /** Gives everything back (slot, token, money and request-budget reservations); the request still counts towards requests/min. Idempotent. */
  release(ticket: Ticket): Promise<void>;
  /**
   * The same as admit, settle and release, answered without a promise when the store decides in
   * this process (memory), else with one: the gateway's per-request path.
   */
  admitNow(req: AdmitRequest): Admission | Promise<Admission>;
  settleNow(ticket: Ticket, usage: Usage): { costUsd: number } | Promise<{ costUsd: number }>;
  releaseNow(ticket: Ticket): void | Promise<void>;
  /** Counters for metrics. */
  stats(): LimiterStats;
  /** Closes the store and timers; stops lease renewals (leases not yet settled then expire). */
  close(): Promise<void>;
}

// ---- the store protocol: one admission and one settlement are each ONE atomic operation ----

/** A GCRA check: `cost` units against `limit` per `periodMs`. */
export interface RateOp {
  key: string;
  limit: number;
  periodMs: number;
  cost: number;
}

/** A concurrency slot: lease `leaseId` in `key` unless `limit` live leases exist. */
export interface SlotOp {
  key: string;
  limit: number;
  leaseId: string;
  /** The lease expires after this long unless renewed, so a crashed instance cannot hold a slot forever. */
  ttlMs: number;
}

/** A budget check: add `amount` to the counter at `key` unless it would exceed `limit`. */
export interface BudgetOp {
  key: string;
  limit: number;
  amount: number;
  /** Lifetime of the counter (end of its calendar period plus a grace). */
  ttlMs: number;
}

/** Everything one admission checks and, if all pass, applies. */
export interface AdmitPlan {
  /** Wall-clock ms used for all checks. */
  now: number;
  rates: RateOp[];
  slots: SlotOp[];
  budgets: BudgetOp[];
}

/** Result of one rate check as seen by the store (after applying, when admitted). */
export interface RateState {
  /** Time in ms until the limiter is back to its full burst (TAT − now, ≥ 0). */
  fillMs: number;
  /** Time in ms until this request would fit (only when this check failed). */
  retryMs: number;
}

/** The store's answer to an admission plan. */
export interface AdmitOutcome {
  ok: boolean;
  /** When refused: which check failed first. */
  failed?: { kind: 'rate' | 'slot' | 'budget'; index: number };
  /** One entry per RateOp, in order. */
  rates: RateState[];
  /** One entry per BudgetOp: the counter value after applying (or current value when refused). */
  budgets: number[];
}

/** Adjustments made by one settlement or release. */
export interface SettlePlan {
  now: number;
  /** Add `delta` cost units (negative = refund) to a GCRA state. */
  rates: { key: string; limit: number; periodMs: number; delta: number }[];
  /** Leases to drop. */
  slots: { key: string; leaseId: string }[];
  /** Add `delta` (negative = refund) to budget counters that still exist. */
  budgets: { key: string; delta: number; ttlMs: number }[];
}

/** Lease renewals for requests still in flight. */
export interface RenewPlan {
  now: number;
  /** Each lease that is still held (not yet dropped or reclaimed) gets expiry `now + ttlMs`. */
  slots: { key: string; leaseId: string }[];
  ttlMs: number;
}

/** Where counters live. Each method is one atomic operation (one round trip on networked stores). */
export interface CounterStore {
  /** Short name for logs and metrics: memory, redis, ipc. */
  readonly kind: string;
  /** Checks all ops of the plan; if every one passes, applies all of them, else applies none. */
  admit(plan: AdmitPlan): Promise<AdmitOutcome>;
  /** Applies all adjustments of the plan. */
  settle(plan: SettlePlan): Promise<void>;
  /**
   * Pushes the expiry of concurrency leases that are still held to `now + ttlMs`; a lease that
   * was dropped (settled, released) or reclaimed by an admission after it expired stays gone.
   * Returns how many leases were renewed.
   */
  renew(plan: RenewPlan): Promise<number>;
  /** Frees connections and timers. */
  close(): Promise<void>;
  /** Optional: `admit` answered directly, for stores that decide in this process (memory); the limiter then needs no promise. */
  admitNow?(plan: AdmitPlan): AdmitOutcome;
  /** Optional: `settle` applied directly (see admitNow). */
  settleNow?(plan: SettlePlan): void;
}
