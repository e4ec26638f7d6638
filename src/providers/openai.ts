/** OpenAI-compatible upstreams: OpenAI, Azure OpenAI, vLLM, Ollama, Together, … */
import type { ProviderConfig } from '../config/schema.js';
import { createAgent, mapTransportError, postJson, postJsonBuffered, readCredential, upstreamBase, type UpstreamTimeouts } from './http.js';
import { API_PATHS, type Api, type Provider } from './types.js';

type OpenAiConfig = Extract<ProviderConfig, { type: 'openai' }>;

/** Builds an OpenAI-compatible provider. */
export function createOpenAiProvider(name: string, cfg: OpenAiConfig, timeouts: UpstreamTimeouts, env: Record<string, string | undefined> = process.env): Provider {
  const agent = createAgent(timeouts);
  const base = upstreamBase(cfg.baseUrl);
  const apis = new Set<Api>(['chat', 'completions', 'embeddings', 'responses']);
  /** Upstream path (below the base URL) and headers with the upstream credential (never the client's). */
  const target = (path: string, query: Record<string, string>, requestId: string) => {
    const key = readCredential(cfg, env);
    const headers: Record<string, string> = { ...cfg.headers };
    let qs = '';
    // A query string only when there is one (a URLSearchParams per call was measurable).
    if (cfg.azure || Object.keys(query).length > 0) {
      const q = new URLSearchParams(query);
      if (cfg.azure) q.set('api-version', cfg.azure.apiVersion);
      qs = q.toString();
    }
    if (cfg.azure) {
      if (key) headers['api-key'] = key;
    } else if (key) {
      headers.authorization = `Bearer ${key}`;
    }
    headers['x-request-id'] = requestId;
    return { path: path + (qs ? `?${qs}` : ''), headers };
  };
  return {
    name,
    type: 'openai',
    apis,
    send(req) {
      const { path, headers } = target(API_PATHS[req.api], {}, req.requestId);
      return req.stream ? postJson(agent, base, path, headers, req.body, req.signal) : postJsonBuffered(agent, base, path, headers, req.body, req.signal, timeouts.maxResponseBytes, req.onHeaders);
    },
    async request(req) {
      const { path, headers } = target(req.path, req.query ?? {}, req.requestId);
      if (req.contentType) headers['content-type'] = req.contentType;
      try {
        const res = await agent.request({ origin: base.origin, path: base.basePath + path, method: req.method, headers: { accept: 'application/json', ...headers }, body: req.body ?? null, signal: req.signal as AbortSignal });
        return { status: res.statusCode, headers: res.headers, body: res.body, dump: () => void res.body.on('error', () => {}).destroy() }; // no listener: undici's abort error would be uncaught
      } catch (e) {
        throw mapTransportError(e, name);
      }
    },
    close: () => agent.close(),
  };
}
