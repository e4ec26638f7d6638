/** The typed context one proxied request carries through identify → … → settle. */
import type { Principal } from '../identity/types.js';
import type { Api, Provider, UpstreamResponse, UpstreamSignal } from '../providers/types.js';
import type { OutputMeter } from './usage.js';
import type { UpstreamAbort } from '../util/abort.js';

/** Token usage reported by the provider. */
export interface TokenUsage {
  inputTokens: number;
  outputTokens: number;
  cachedInputTokens?: number;
  /** The part of `inputTokens` written to the prompt cache (Anthropic), and of it, written for an hour. */
  cacheWriteInputTokens?: number;
  cacheWrite1hInputTokens?: number;
}

/** An SSE event as relayed to the client. */
export interface SseEvent {
  event?: string;
  data: string;
}

/**
 * A per-request transformer of a streamed response: sees each upstream event (already
 * parsed) and returns the events to send on; `end` may emit final events.
 */
export interface StreamTransform {
  onEvent(ev: SseEvent, parsed: unknown): SseEvent[] | Promise<SseEvent[]>;
  end(): SseEvent[] | Promise<SseEvent[]>;
  /**
   * Set once the transform blocked the stream before releasing anything and asks for a re-ask
   * (response guards, `onBlock: reask`): the relay then makes one more upstream call through
   * `ProxySteps.reaskStream`, or sends `events` (the blocked form) when it cannot.
   */
  reaskPending?(): StreamReask | undefined;
}

/** A stream blocked before anything was released, waiting for a re-ask. */
export interface StreamReask {
  /** The blocked form to send when no re-ask happens. */
  events: SseEvent[];
  /** Output characters the upstream had streamed when it was blocked (for the token estimate). */
  outputChars: number;
}

/** Everything known about one proxied request. */
export interface RequestContext {
  requestId: string;
  api: Api;
  route: string;
  startedAt: number;
  clientIp: string;
  principal?: Principal;
  model?: string;
  provider?: Provider;
  upstreamModel?: string;
  stream: boolean;
  /** The parsed client body (after request-stage transforms, what goes upstream). */
  body: Record<string, unknown>;
  /** Response headers to add (rate-limit headers, guard decision headers). */
  responseHeaders: Record<string, string>;
  /** Time spent waiting on the upstream (first byte for streams, whole body otherwise) and in total. */
  upstreamMs?: number;
  ttfbMs?: number;
  usage?: TokenUsage;
  /**
   * What the upstream produced, counted for an output-token estimate: every event of a stream, or a
   * whole body that came without `usage`. The limits settle on it when no usage arrived, or when a
   * stream stopped before its usage did (`outputComplete` unset).
   */
  outputMeter?: OutputMeter;
  /** The request's upstream abort (the client left, the total timeout): later upstream calls of the request (a re-ask) follow it. */
  upstreamAbort?: UpstreamAbort;
  /** Set right before the upstream call is made: from then on the provider may be doing (billed) work. */
  upstreamSent?: boolean;
  /** Set when a stream reached its terminal event (its usage, if any, is final). */
  outputComplete?: boolean;
  /** Set when `usage` holds estimated parts (a re-asked call that reported none): the limits settle it as an estimate. */
  usageEstimated?: boolean;
  status?: number;
  /** Error code when the request failed. */
  errorCode?: string;
  /** Set when the client went away before the response completed. */
  aborted?: boolean;
  /** Arbitrary per-module state (tickets, verdicts, cost …), keyed by module name. */
  state: Record<string, unknown>;
}

/**
 * Optional steps the composition root plugs in as modules land. Each step may throw a
 * GatewayError to refuse the request; `done` always runs (success, error or abort).
 */
export interface ProxySteps {
  /** Authorization (operation, model, tools). */
  authorize?(ctx: RequestContext): Promise<void> | void;
  /** Admission: rate limits, concurrency, budgets (reserve). */
  admit?(ctx: RequestContext): Promise<void> | void;
  /** Request-stage guards; may rewrite ctx.body. */
  requestGuards?(ctx: RequestContext): Promise<void> | void;
  /** Response-stage guards on a whole JSON body; returns the body to send. */
  responseGuards?(ctx: RequestContext, body: Record<string, unknown>): Promise<Record<string, unknown>> | Record<string, unknown>;
  /** Stream-stage guards: a transformer per streamed request (or undefined). */
  streamGuards?(ctx: RequestContext): StreamTransform | undefined;
  /**
   * Re-ask of a stream blocked before anything was released: one more streamed upstream call with
   * `body` (the body of the first call) plus the corrective note; undefined when not possible.
   * The relay then builds fresh transforms with `streamGuards` (`ctx.state.reasked` is set).
   */
  reaskStream?(ctx: RequestContext, body: Record<string, unknown>, signal: UpstreamSignal): Promise<UpstreamResponse | undefined>;
  /**
   * Settlement of what admission reserved (limits): called once when the response has ended,
   * right away (before the next I/O), so a client's next request sees its slot released.
   */
  settle?(ctx: RequestContext): Promise<void> | void;
  /** Audit, metrics, analytics: called once at the end, after `settle`, off the response path. */
  done?(ctx: RequestContext): Promise<void> | void;
}
