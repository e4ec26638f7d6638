/** Target adapter for OpenAI-compatible chat completions (also a Portcullis gateway). */
import type { ChatReply, ChatRequest, RawRequest, Target, ToolCall } from '../types.js';
import { baseReply, joinUrl, parseSse, sendRaw, tryJson, type TargetOptions } from './common.js';

/** The API base (`…/v1`) of an OpenAI-compatible URL given with or without `/chat/completions`. */
export function openaiBase(url: string): string {
  const u = new URL(url);
  let path = u.pathname.replace(/\/+$/, '').replace(/\/chat\/completions$/, '');
  if (path === '') path = '/v1';
  return `${u.origin}${path}`;
}

/** Maps a provider-neutral request to an OpenAI chat completions body. */
export function toOpenAiBody(req: ChatRequest, model: string): Record<string, unknown> {
  const messages: Record<string, unknown>[] = [];
  if (req.system) messages.push({ role: 'system', content: req.system });
  for (const m of req.messages) {
    if (m.role === 'tool') messages.push({ role: 'tool', tool_call_id: m.toolCallId, content: m.content });
    else if (m.role === 'assistant' && m.toolCalls?.length) {
      messages.push({
        role: 'assistant',
        content: m.content || null,
        tool_calls: m.toolCalls.map((c) => ({ id: c.id, type: 'function', function: { name: c.name, arguments: c.arguments } })),
      });
    } else messages.push({ role: m.role, content: m.content });
  }
  const body: Record<string, unknown> = { model, messages };
  if (req.tools?.length) body.tools = req.tools.map((t) => ({ type: 'function', function: { name: t.name, description: t.description, parameters: t.parameters } }));
  if (req.maxTokens !== undefined) body.max_tokens = req.maxTokens;
  if (req.stream) body.stream = true;
  return body;
}

interface OaMessage {
  content?: string | null;
  tool_calls?: { id?: string; function?: { name?: string; arguments?: string } }[];
}

/** Reads an OpenAI non-streamed response body into the reply. */
export function readOpenAiJson(body: string, reply: ChatReply): void {
  const json = tryJson(body) as { choices?: { message?: OaMessage; finish_reason?: string }[] } | undefined;
  const choice = json?.choices?.[0];
  if (!choice) {
    reply.error ??= 'response has no choices';
    return;
  }
  reply.text = choice.message?.content ?? '';
  reply.toolCalls = (choice.message?.tool_calls ?? []).map((c, i) => ({ id: c.id ?? `call_${i}`, name: c.function?.name ?? '', arguments: c.function?.arguments ?? '' }));
  if (choice.finish_reason) reply.finishReason = choice.finish_reason;
}

/** Reads an OpenAI SSE stream into the reply (text deltas and tool-call fragments). */
export function readOpenAiStream(body: string, reply: ChatReply): void {
  const calls = new Map<number, ToolCall>();
  let text = '';
  for (const ev of parseSse(body)) {
    if (ev.data === '[DONE]') break;
    const json = tryJson(ev.data) as
      | { choices?: { delta?: { content?: string | null; tool_calls?: { index?: number; id?: string; function?: { name?: string; arguments?: string } }[] }; finish_reason?: string | null }[]; error?: { message?: string } }
      | undefined;
    if (!json) continue;
    if (json.error) reply.error = json.error.message ?? 'stream error';
    const choice = json.choices?.[0];
    if (!choice) continue;
    if (choice.delta?.content) text += choice.delta.content;
    for (const tc of choice.delta?.tool_calls ?? []) {
      const idx = tc.index ?? 0;
      const cur = calls.get(idx) ?? { id: tc.id ?? `call_${idx}`, name: '', arguments: '' };
      if (tc.id) cur.id = tc.id;
      if (tc.function?.name) cur.name += tc.function.name;
      if (tc.function?.arguments) cur.arguments += tc.function.arguments;
      calls.set(idx, cur);
    }
    if (choice.finish_reason) reply.finishReason = choice.finish_reason;
  }
  reply.text = text;
  reply.toolCalls = [...calls.values()];
}

/** Creates an OpenAI-compatible target. */
export function createOpenAiTarget(opts: TargetOptions): Target {
  const base = openaiBase(opts.url);
  const model = opts.model ?? 'gpt-4o-mini';
  const auth: Record<string, string> = { ...(opts.apiKey ? { authorization: `Bearer ${opts.apiKey}` } : {}), ...(opts.headers ?? {}) };
  return {
    kind: 'openai',
    describe: () => `openai ${joinUrl(base, '/chat/completions')} model=${model}`,
    async chat(req: ChatRequest, signal?: AbortSignal): Promise<ChatReply> {
      const r = await opts.transport.send(
        joinUrl(base, '/chat/completions'),
        { method: 'POST', headers: { ...auth, 'content-type': 'application/json', accept: req.stream ? 'text/event-stream' : 'application/json' }, body: JSON.stringify(toOpenAiBody(req, model)) },
        { signal },
      );
      const reply = baseReply(r, req.stream);
      if (r.status >= 200 && r.status < 300) {
        const isSse = (r.headers['content-type'] ?? '').includes('text/event-stream') || /^\s*(?:data|event):/.test(r.body);
        if (isSse) readOpenAiStream(r.body, reply);
        else readOpenAiJson(r.body, reply);
      }
      return reply;
    },
    raw: (req: RawRequest, signal?: AbortSignal) => sendRaw(opts.transport, base, auth, req, signal),
    minimalChat: () => ({ path: '/chat/completions', body: JSON.stringify({ model, messages: [{ role: 'user', content: 'Say OK.' }], max_tokens: 1 }) }),
  };
}
