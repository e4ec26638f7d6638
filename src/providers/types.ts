/** Provider adapters: what the gateway needs to call an upstream LLM API. */
import type { Readable } from 'node:stream';
import type { UpstreamSignal } from '../util/abort.js';

export type { UpstreamSignal };

/** The client-facing APIs the gateway serves. */
export type Api = 'chat' | 'completions' | 'embeddings' | 'responses' | 'messages';

/** Upstream path (relative to the provider's base URL) for each API. */
export const API_PATHS: Record<Api, string> = {
  chat: '/chat/completions',
  completions: '/completions',
  embeddings: '/embeddings',
  responses: '/responses',
  messages: '/messages',
};

/** One call to an upstream. */
export interface UpstreamRequest {
  api: Api;
  /** The JSON body to send (already rewritten by the gateway). */
  body: Record<string, unknown>;
  stream: boolean;
  /** Aborted when the client goes away or a timeout fires. */
  signal: UpstreamSignal;
  requestId: string;
  /**
   * Called when the upstream's status and headers arrive, for a provider that resolves only
   * once it has read the whole body (non-stream calls): the gateway's time to first byte.
   */
  onHeaders?(): void;
}

/** An upstream answer; `body` yields raw bytes (JSON or SSE). */
export interface UpstreamResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: AsyncIterable<Uint8Array>;
  /** The whole body, when the provider read it already (non-stream calls): `body` yields the same bytes. */
  bodyBuffer?: Buffer;
  /** Releases the connection early (called when the gateway stops reading). */
  dump(): void;
}

/**
 * A call to an upstream object endpoint (files, batches, fine-tuning jobs, vector stores,
 * stored responses). The gateway builds `path` from validated ids; clients never choose it.
 */
export interface RawUpstreamRequest {
  method: 'GET' | 'POST' | 'DELETE';
  /** Path below the provider's base URL, e.g. `/files/file-abc/content`. */
  path: string;
  /** Query parameters (only ones the gateway forwards). */
  query?: Record<string, string>;
  /** Content type of `body` (JSON, or multipart with its boundary). */
  contentType?: string;
  /** The body: JSON bytes, or a streamed multipart upload (already size-limited). */
  body?: Buffer | Readable;
  signal: UpstreamSignal;
  requestId: string;
}

/** A provider: data plus small functions. */
export interface Provider {
  /** Configured name (e.g. `openai`). */
  name: string;
  type: 'openai' | 'anthropic' | 'demo';
  /** The client-facing APIs this provider can serve natively. */
  apis: ReadonlySet<Api>;
  send(req: UpstreamRequest): Promise<UpstreamResponse>;
  /** Object endpoints (files, batches, …), when the provider has them. */
  request?(req: RawUpstreamRequest): Promise<UpstreamResponse>;
  close(): Promise<void>;
}
