/**
 * The one error type of the gateway. Every failure that can reach a client is a
 * GatewayError with a stable code from the table below; anything else is mapped to
 * a generic 500 with the request id (see server/errors.ts).
 */

/** OpenAI error `type` values used in the envelope. */
export type ErrorType =
  | 'invalid_request_error'
  | 'authentication_error'
  | 'permission_error'
  | 'not_found_error'
  | 'rate_limit_error'
  | 'insufficient_quota'
  | 'api_error'
  | 'upstream_error'
  | 'timeout_error'
  | 'overloaded_error';

interface CodeSpec {
  status: number;
  type: ErrorType;
  /** The OpenAI-compatible `code` field, where OpenAI has one. */
  publicCode: string;
  message: string;
}

/** The table of gateway error codes: status, envelope type, public code and default message. */
export const ERROR_CODES = {
  PCL_BAD_JSON: { status: 400, type: 'invalid_request_error', publicCode: 'invalid_json', message: 'The request body is not valid JSON.' },
  PCL_BAD_UTF8: { status: 400, type: 'invalid_request_error', publicCode: 'invalid_encoding', message: 'The request body is not valid UTF-8.' },
  PCL_TOO_DEEP: { status: 400, type: 'invalid_request_error', publicCode: 'invalid_json', message: 'The request body is nested too deeply.' },
  PCL_BAD_CONTENT_TYPE: { status: 415, type: 'invalid_request_error', publicCode: 'unsupported_media_type', message: 'Content-Type must be application/json.' },
  PCL_BODY_TOO_LARGE: { status: 413, type: 'invalid_request_error', publicCode: 'request_too_large', message: 'The request body is larger than this gateway accepts.' },
  PCL_INVALID_REQUEST: { status: 400, type: 'invalid_request_error', publicCode: 'invalid_request', message: 'The request is invalid.' },
  PCL_UNAUTHENTICATED: { status: 401, type: 'authentication_error', publicCode: 'invalid_api_key', message: 'Missing or invalid API key.' },
  PCL_FORBIDDEN: { status: 403, type: 'permission_error', publicCode: 'permission_denied', message: 'This key is not allowed to perform this request.' },
  PCL_NOT_FOUND: { status: 404, type: 'not_found_error', publicCode: 'not_found', message: 'Not found.' },
  PCL_ROUTE_NOT_FOUND: { status: 404, type: 'invalid_request_error', publicCode: 'unknown_url', message: 'Unknown request URL.' },
  PCL_CONFLICT: { status: 409, type: 'invalid_request_error', publicCode: 'conflict', message: 'The request conflicts with the current state.' },
  PCL_METHOD_NOT_ALLOWED: { status: 405, type: 'invalid_request_error', publicCode: 'method_not_allowed', message: 'Method not allowed for this URL.' },
  PCL_MODEL_NOT_FOUND: { status: 404, type: 'invalid_request_error', publicCode: 'model_not_found', message: 'The model does not exist or is not routed by this gateway.' },
  PCL_MODEL_UNSUPPORTED_ROUTE: { status: 400, type: 'invalid_request_error', publicCode: 'model_not_supported', message: 'The model is not available on this endpoint.' },
  PCL_RATE_LIMITED: { status: 429, type: 'rate_limit_error', publicCode: 'rate_limit_exceeded', message: 'Rate limit exceeded.' },
  PCL_QUOTA_EXCEEDED: { status: 429, type: 'insufficient_quota', publicCode: 'insufficient_quota', message: 'Budget exhausted.' },
  PCL_CONTENT_POLICY: { status: 400, type: 'invalid_request_error', publicCode: 'content_policy_violation', message: 'The request was blocked by the content policy.' },
  PCL_UPSTREAM_ERROR: { status: 502, type: 'upstream_error', publicCode: 'upstream_error', message: 'The upstream provider returned an error.' },
  PCL_UPSTREAM_UNREACHABLE: { status: 502, type: 'upstream_error', publicCode: 'upstream_unreachable', message: 'The upstream provider could not be reached.' },
  PCL_UPSTREAM_BAD_RESPONSE: { status: 502, type: 'upstream_error', publicCode: 'upstream_bad_response', message: 'The upstream provider returned a malformed response.' },
  PCL_UPSTREAM_TIMEOUT: { status: 504, type: 'timeout_error', publicCode: 'upstream_timeout', message: 'The upstream provider did not respond in time.' },
  PCL_UNAVAILABLE: { status: 503, type: 'overloaded_error', publicCode: 'service_unavailable', message: 'The gateway is temporarily unavailable.' },
  PCL_APPROVAL_REQUIRED: { status: 403, type: 'permission_error', publicCode: 'approval_required', message: 'The response proposes a tool call that needs a human approval. Retry the same request with the header x-portcullis-approval once the ticket is approved.' },
  PCL_APPROVAL_DENIED: { status: 403, type: 'permission_error', publicCode: 'approval_denied', message: 'The tool call was denied by a reviewer.' },
  PCL_GUARD_FAILED: { status: 503, type: 'api_error', publicCode: 'guard_unavailable', message: 'A required safety check could not be completed.' },
  PCL_CLIENT_CLOSED: { status: 499, type: 'invalid_request_error', publicCode: 'client_aborted', message: 'The client closed the connection before the request was sent upstream.' },
  PCL_INTERNAL: { status: 500, type: 'api_error', publicCode: 'internal_error', message: 'Internal gateway error.' },
} as const satisfies Record<string, CodeSpec>;

export type ErrorCode = keyof typeof ERROR_CODES;

/** Options for a GatewayError beyond its code. */
export interface GatewayErrorOptions {
  /** A client-safe message; defaults to the code's message. Never put secrets or upstream details here. */
  message?: string;
  /** Overrides the status (e.g. an upstream 4xx relayed with a sanitised message). */
  status?: number;
  /** Extra response headers (Retry-After, x-ratelimit-*). */
  headers?: Record<string, string>;
  /** Extra fields merged into the error object of the envelope (e.g. categories). */
  details?: Record<string, unknown>;
  /** Internal detail for logs only; never sent to clients. */
  internal?: unknown;
  /** The OpenAI `param` field. */
  param?: string;
  cause?: unknown;
}

/** A failure with a stable code; `expose` says whether its message may reach the client. */
export class GatewayError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly type: ErrorType;
  readonly publicCode: string;
  readonly expose = true;
  readonly headers: Record<string, string>;
  readonly details: Record<string, unknown> | undefined;
  readonly internal: unknown;
  readonly param: string | undefined;

  constructor(code: ErrorCode, opts: GatewayErrorOptions = {}) {
    const spec: CodeSpec = ERROR_CODES[code];
    super(opts.message ?? spec.message, opts.cause !== undefined ? { cause: opts.cause } : undefined);
    this.name = 'GatewayError';
    this.code = code;
    this.status = opts.status ?? spec.status;
    this.type = spec.type;
    this.publicCode = spec.publicCode;
    this.headers = opts.headers ?? {};
    this.details = opts.details;
    this.internal = opts.internal;
    this.param = opts.param;
  }
}

/** The OpenAI error envelope sent to clients. */
export function errorEnvelope(err: GatewayError, requestId: string): { error: Record<string, unknown> } {
  return {
    error: {
      message: `${err.message} (request id: ${requestId})`,
      type: err.type,
      param: err.param ?? null,
      code: err.publicCode,
      ...(err.details ?? {}),
    },
  };
}
