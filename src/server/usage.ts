/** Extracts token usage from provider responses (whole bodies and stream events). */
import type { Api } from '../providers/types.js';
import type { TokenUsage } from './context.js';

const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : 0);

/** Usage of a non-streamed response body, or undefined. */
export function usageFromBody(api: Api, body: any): TokenUsage | undefined {
  const u = body?.usage;
  if (!u || typeof u !== 'object') return undefined;
  if (api === 'messages') {
    return { inputTokens: num(u.input_tokens) + num(u.cache_read_input_tokens) + num(u.cache_creation_input_tokens), outputTokens: num(u.output_tokens), cachedInputTokens: num(u.cache_read_input_tokens) };
  }
  if (api === 'responses') return { inputTokens: num(u.input_tokens), outputTokens: num(u.output_tokens), cachedInputTokens: num(u.input_tokens_details?.cached_tokens) };
  return { inputTokens: num(u.prompt_tokens), outputTokens: num(u.completion_tokens), cachedInputTokens: num(u.prompt_tokens_details?.cached_tokens) };
}

/** Folds one stream event into the running usage (returns the updated value). */
export function usageFromEvent(api: Api, parsed: any, prev: TokenUsage | undefined): TokenUsage | undefined {
  if (!parsed || typeof parsed !== 'object') return prev;
  if (api === 'messages') {
    if (parsed.type === 'message_start' && parsed.message?.usage) {
      const u = parsed.message.usage;
      return { inputTokens: num(u.input_tokens) + num(u.cache_read_input_tokens) + num(u.cache_creation_input_tokens), outputTokens: num(u.output_tokens), cachedInputTokens: num(u.cache_read_input_tokens) };
    }
    if (parsed.type === 'message_delta' && parsed.usage) {
      return { inputTokens: prev?.inputTokens ?? num(parsed.usage.input_tokens), outputTokens: num(parsed.usage.output_tokens), cachedInputTokens: prev?.cachedInputTokens ?? 0 };
    }
    return prev;
  }
  if (api === 'responses') {
    if ((parsed.type === 'response.completed' || parsed.type === 'response.incomplete' || parsed.type === 'response.failed') && parsed.response?.usage) {
      return usageFromBody('responses', parsed.response);
    }
    return prev;
  }
  return parsed.usage ? usageFromBody(api, parsed) ?? prev : prev;
}

/** True when an event marks the normal end of a stream. */
export function isTerminalEvent(api: Api, data: string, parsed: any): boolean {
  if (api === 'chat' || api === 'completions') return data === '[DONE]';
  if (api === 'messages') return parsed?.type === 'message_stop';
  if (api === 'responses') return parsed?.type === 'response.completed' || parsed?.type === 'response.incomplete' || parsed?.type === 'response.failed';
  return false;
}
