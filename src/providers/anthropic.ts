/** Anthropic Messages API upstream. */
import type { ProviderConfig } from '../config/schema.js';
import { createAgent, postJson, postJsonBuffered, readCredential, upstreamBase, type UpstreamTimeouts } from './http.js';
import type { Api, Provider } from './types.js';

type AnthropicConfig = Extract<ProviderConfig, { type: 'anthropic' }>;

/** Builds an Anthropic provider. */
export function createAnthropicProvider(name: string, cfg: AnthropicConfig, timeouts: UpstreamTimeouts, env: Record<string, string | undefined> = process.env): Provider {
  const agent = createAgent(timeouts);
  const base = upstreamBase(cfg.baseUrl.replace(/\/+$/, '').replace(/\/v1$/, ''));
  return {
    name,
    type: 'anthropic',
    apis: new Set<Api>(['messages']),
    send(req) {
      const key = readCredential(cfg, env);
      const headers: Record<string, string> = { ...cfg.headers, 'anthropic-version': cfg.version };
      if (key) headers['x-api-key'] = key;
      return req.stream ? postJson(agent, base, '/v1/messages', headers, req.body, req.signal) : postJsonBuffered(agent, base, '/v1/messages', headers, req.body, req.signal, timeouts.maxResponseBytes, req.onHeaders);
    },
    close: () => agent.close(),
  };
}
