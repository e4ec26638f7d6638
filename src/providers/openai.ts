/** OpenAI-compatible upstreams: OpenAI, Azure OpenAI, vLLM, Ollama, Together, … */
import type { ProviderConfig } from '../config/schema.js';
import { createAgent, postJson, readCredential, type UpstreamTimeouts } from './http.js';
import { API_PATHS, type Api, type Provider } from './types.js';

type OpenAiConfig = Extract<ProviderConfig, { type: 'openai' }>;

/** Builds an OpenAI-compatible provider. */
export function createOpenAiProvider(name: string, cfg: OpenAiConfig, timeouts: UpstreamTimeouts, env: Record<string, string | undefined> = process.env): Provider {
  const agent = createAgent(timeouts);
  const base = cfg.baseUrl.replace(/\/+$/, '');
  const apis = new Set<Api>(['chat', 'completions', 'embeddings', 'responses']);
  return {
    name,
    type: 'openai',
    apis,
    send(req) {
      const key = readCredential(cfg, env);
      const headers: Record<string, string> = { ...cfg.headers };
      let url = base + API_PATHS[req.api];
      if (cfg.azure) {
        url += `?api-version=${encodeURIComponent(cfg.azure.apiVersion)}`;
        if (key) headers['api-key'] = key;
      } else if (key) {
        headers.authorization = `Bearer ${key}`;
      }
      headers['x-request-id'] = req.requestId;
      return postJson(agent, url, headers, req.body, req.signal);
    },
    close: () => agent.close(),
  };
}
