/** Extracts token usage from provider responses (whole bodies and stream events). */
import type { Api } from '../providers/types.js';
import type { RequestContext, TokenUsage } from './context.js';

const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : 0);

/** Anthropic usage: input is fresh + cache reads + cache writes, with the reads and writes kept apart for pricing. */
function anthropicUsage(u: any): TokenUsage {
  const out: TokenUsage = { inputTokens: num(u.input_tokens) + num(u.cache_read_input_tokens) + num(u.cache_creation_input_tokens), outputTokens: num(u.output_tokens), cachedInputTokens: num(u.cache_read_input_tokens) };
  const w = num(u.cache_creation_input_tokens);
  if (w > 0) {
    out.cacheWriteInputTokens = w;
    const w1h = num(u.cache_creation?.ephemeral_1h_input_tokens);
    if (w1h > 0) out.cacheWrite1hInputTokens = Math.min(w1h, w);
  }
  return out;
}

/**
 * The input tokens of one upstream call of the request, when the upstream reported none: the
 * limits' admission estimate, or about one token per four characters of the body sent.
 */
export function inputEstimate(ctx: RequestContext, sent: Record<string, unknown>): number {
  return (ctx.state.limits as { estimatedInputTokens?: number } | undefined)?.estimatedInputTokens ?? Math.ceil(JSON.stringify(sent).length / 4);
}

/** The usage of two upstream calls together (a re-ask). */
export function addUsage(a: TokenUsage, b: TokenUsage): TokenUsage {
  const out: TokenUsage = { inputTokens: a.inputTokens + b.inputTokens, outputTokens: a.outputTokens + b.outputTokens, cachedInputTokens: (a.cachedInputTokens ?? 0) + (b.cachedInputTokens ?? 0) };
  const w = (a.cacheWriteInputTokens ?? 0) + (b.cacheWriteInputTokens ?? 0);
  const w1h = (a.cacheWrite1hInputTokens ?? 0) + (b.cacheWrite1hInputTokens ?? 0);
  if (w > 0) out.cacheWriteInputTokens = w;
  if (w1h > 0) out.cacheWrite1hInputTokens = w1h;
  return out;
}

/** Usage of a non-streamed response body, or undefined. */
export function usageFromBody(api: Api, body: any): TokenUsage | undefined {
  const u = body?.usage;
  if (!u || typeof u !== 'object') return undefined;
  if (api === 'messages') return anthropicUsage(u);
  if (api === 'responses') return { inputTokens: num(u.input_tokens), outputTokens: num(u.output_tokens), cachedInputTokens: num(u.input_tokens_details?.cached_tokens) };
  return { inputTokens: num(u.prompt_tokens), outputTokens: num(u.completion_tokens), cachedInputTokens: num(u.prompt_tokens_details?.cached_tokens) };
}

/** Folds one stream event into the running usage (returns the updated value). */
export function usageFromEvent(api: Api, parsed: any, prev: TokenUsage | undefined): TokenUsage | undefined {
  if (!parsed || typeof parsed !== 'object') return prev;
  if (api === 'messages') {
    if (parsed.type === 'message_start' && parsed.message?.usage) return anthropicUsage(parsed.message.usage);
    if (parsed.type === 'message_delta' && parsed.usage) {
      // message_delta's usage is cumulative; its input fields, when present, include what server
      // tools (web search, fetch) added during the turn, which message_start could not know.
      const u = parsed.usage;
      const hasInput = u.input_tokens !== undefined || u.cache_read_input_tokens !== undefined || u.cache_creation_input_tokens !== undefined;
      const input = num(u.input_tokens) + num(u.cache_read_input_tokens) + num(u.cache_creation_input_tokens);
      const cached = u.cache_read_input_tokens !== undefined ? num(u.cache_read_input_tokens) : (prev?.cachedInputTokens ?? 0);
      const out: TokenUsage = { inputTokens: hasInput ? Math.max(prev?.inputTokens ?? 0, input) : (prev?.inputTokens ?? 0), outputTokens: num(u.output_tokens), cachedInputTokens: hasInput ? Math.max(prev?.cachedInputTokens ?? 0, cached) : (prev?.cachedInputTokens ?? 0) };
      const w = Math.max(prev?.cacheWriteInputTokens ?? 0, num(u.cache_creation_input_tokens));
      const w1h = Math.max(prev?.cacheWrite1hInputTokens ?? 0, num(u.cache_creation?.ephemeral_1h_input_tokens));
      if (w > 0) out.cacheWriteInputTokens = w;
      if (w1h > 0) out.cacheWrite1hInputTokens = w1h;
      return out;
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

/** The output text of a whole response body, as the audit trail hashes it (tool-call arguments included). */
export function outputText(o: any): string {
  let s = '';
  if (Array.isArray(o?.choices)) for (const c of o.choices) s += String(c?.message?.content ?? c?.text ?? '') + (c?.message?.tool_calls ? JSON.stringify(c.message.tool_calls) : '');
  if (Array.isArray(o?.content)) for (const c of o.content) s += c?.type === 'text' ? String(c.text ?? '') : c?.type === 'tool_use' ? JSON.stringify(c.input ?? {}) : '';
  if (Array.isArray(o?.output)) for (const it of o.output) if (Array.isArray(it?.content)) for (const c of it.content) s += String(c?.text ?? '');
  if (Array.isArray(o?.data) && o?.object === 'list') s += `[${o.data.length} embeddings]`;
  return s;
}

/** The output text one stream event adds, as the audit trail hashes it: content and tool-call argument deltas. */
export function deltaText(o: any): string {
  if (Array.isArray(o?.choices)) {
    let s = '';
    for (const c of o.choices) s += String(c?.delta?.content ?? c?.text ?? '') + (Array.isArray(c?.delta?.tool_calls) ? JSON.stringify(c.delta.tool_calls.map((t: any) => t?.function?.arguments ?? '')) : '');
    return s;
  }
  if (o?.type === 'content_block_delta') return String(o.delta?.text ?? o.delta?.partial_json ?? '');
  if (o?.type === 'response.output_text.delta') return String(o.delta ?? '');
  return '';
}

/**
 * Counts the output an upstream produced, for an estimate of its output tokens when the upstream
 * reports no usage (a server that ignores `stream_options.include_usage`, a body without `usage`)
 * or when a stream stopped before its usage arrived (the client went away, the upstream failed).
 * The estimate is the limits' cheap one (`approxTokens`): ASCII characters at 3.5 a token, any
 * other character one token. Counted: what `deltaText` / the body's text carry, plus the billed
 * text the audit hash leaves out (reasoning and thinking deltas, Responses function-call arguments).
 */
export class OutputMeter {
  ascii = 0;
  other = 0;
  /** Counts the characters of `text`. */
  add(text: string): void {
    let ascii = 0;
    let other = 0;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c < 0x80) ascii++;
      else if (c >= 0xdc00 && c <= 0xdfff) continue; // low surrogate: counted with its high half
      else other++;
    }
    this.ascii += ascii;
    this.other += other;
  }
  /** One stream event's output. */
  event(parsed: any): void {
    if (!parsed || typeof parsed !== 'object') return;
    const t = deltaText(parsed);
    if (t) this.add(t);
    const extra = billedExtraDelta(parsed);
    if (extra) this.add(extra);
  }
  /** A whole response body's output. */
  body(o: any): void {
    if (Array.isArray(o?.data) && o?.object === 'list') return; // embeddings: no output tokens
    this.add(outputText(o));
    if (Array.isArray(o?.choices)) for (const c of o.choices) if (typeof c?.message?.reasoning_content === 'string') this.add(c.message.reasoning_content);
    if (Array.isArray(o?.content)) for (const c of o.content) if (c?.type === 'thinking' && typeof c.thinking === 'string') this.add(c.thinking);
    if (Array.isArray(o?.output)) for (const it of o.output) if (it?.type === 'function_call' && typeof it.arguments === 'string') this.add(it.arguments);
  }
  /** Estimated tokens of what was counted. */
  tokens(charsPerToken = 3.5): number {
    return Math.ceil(this.ascii / charsPerToken) + this.other;
  }
}

/** Billed output of a stream event that `deltaText` leaves out. */
function billedExtraDelta(o: any): string {
  if (Array.isArray(o.choices)) {
    let s = '';
    for (const c of o.choices) if (typeof c?.delta?.reasoning_content === 'string') s += c.delta.reasoning_content;
    return s;
  }
  if (o.type === 'content_block_delta' && typeof o.delta?.thinking === 'string') return o.delta.thinking;
  if (o.type === 'response.function_call_arguments.delta' && typeof o.delta === 'string') return o.delta;
  return '';
}
