/** Target adapter for the Anthropic Messages API. */
import type { ChatReply, ChatRequest, RawRequest, Target, ToolCall } from '../types.js';
import { baseReply, joinUrl, parseSse, sendRaw, tryJson, type TargetOptions } from './common.js';

/** The API base (`…/v1`) of an Anthropic URL given with or without `/v1/messages`. */
export function anthropicBase(url: string): string {
  const u = new URL(url);
  const path = u.pathname.replace(/\/+$/, '').replace(/\/messages$/, '').replace(/\/v1$/, '');
  return `${u.origin}${path}/v1`;
}

type Block = Record<string, unknown>;

/** Maps a provider-neutral request to an Anthropic Messages body (merging same-role turns). */
export function toAnthropicBody(req: ChatRequest, model: string): Record<string, unknown> {
  const messages: { role: 'user' | 'assistant'; content: Block[] }[] = [];
  function push(role: 'user' | 'assistant', blocks: Block[]): void {
    const last = messages[messages.length - 1];
    if (last && last.role === role) last.content.push(...blocks);
    else messages.push({ role, content: blocks });
  }
  for (const m of req.messages) {
    if (m.role === 'user') push('user', [{ type: 'text', text: m.content }]);
    else if (m.role === 'tool') push('user', [{ type: 'tool_result', tool_use_id: m.toolCallId, content: m.content }]);
    else {
      const blocks: Block[] = m.content ? [{ type: 'text', text: m.content }] : [];
      for (const c of m.toolCalls ?? []) blocks.push({ type: 'tool_use', id: c.id, name: c.name, input: tryJson(c.arguments) ?? {} });
      push('assistant', blocks.length ? blocks : [{ type: 'text', text: '(no content)' }]);
    }
  }
  const body: Record<string, unknown> = { model, max_tokens: req.maxTokens ?? 1024, messages };
  if (req.system) body.system = req.system;
  if (req.tools?.length) body.tools = req.tools.map((t) => ({ name: t.name, description: t.description, input_schema: t.parameters }));
  if (req.stream) body.stream = true;
  return body;
}

/** Reads a non-streamed Messages response into the reply. */
export function readAnthropicJson(body: string, reply: ChatReply): void {
  const json = tryJson(body) as { content?: { type: string; text?: string; id?: string; name?: string; input?: unknown }[]; stop_reason?: string } | undefined;
  if (!json?.content) {
    reply.error ??= 'response has no content';
    return;
  }
  reply.text = json.content.filter((b) => b.type === 'text').map((b) => b.text ?? '').join('');
  reply.toolCalls = json.content.filter((b) => b.type === 'tool_use').map((b, i) => ({ id: b.id ?? `toolu_${i}`, name: b.name ?? '', arguments: JSON.stringify(b.input ?? {}) }));
  if (json.stop_reason) reply.finishReason = json.stop_reason;
}

/** Reads a Messages SSE stream into the reply. */
export function readAnthropicStream(body: string, reply: ChatReply): void {
  const blocks = new Map<number, { type: string; text: string; call?: ToolCall }>();
  for (const ev of parseSse(body)) {
    const json = tryJson(ev.data) as
      | { type?: string; index?: number; content_block?: { type: string; id?: string; name?: string; text?: string }; delta?: { type?: string; text?: string; partial_json?: string; stop_reason?: string }; error?: { message?: string } }
      | undefined;
    if (!json) continue;
    const idx = json.index ?? 0;
    if (json.type === 'content_block_start' && json.content_block) {
      const cb = json.content_block;
      blocks.set(idx, { type: cb.type, text: cb.text ?? '', ...(cb.type === 'tool_use' ? { call: { id: cb.id ?? `toolu_${idx}`, name: cb.name ?? '', arguments: '' } } : {}) });
    } else if (json.type === 'content_block_delta' && json.delta) {
      const b = blocks.get(idx) ?? { type: 'text', text: '' };
      if (json.delta.type === 'text_delta') b.text += json.delta.text ?? '';
      if (json.delta.type === 'input_json_delta' && b.call) b.call.arguments += json.delta.partial_json ?? '';
      blocks.set(idx, b);
    } else if (json.type === 'message_delta' && json.delta?.stop_reason) reply.finishReason = json.delta.stop_reason;
    else if (json.type === 'error') reply.error = json.error?.message ?? 'stream error';
  }
  const ordered = [...blocks.entries()].sort((a, b) => a[0] - b[0]).map((e) => e[1]);
  reply.text = ordered.filter((b) => b.type === 'text').map((b) => b.text).join('');
  reply.toolCalls = ordered.filter((b) => b.call).map((b) => ({ ...b.call!, arguments: b.call!.arguments || '{}' }));
}

/** Creates an Anthropic Messages target. */
export function createAnthropicTarget(opts: TargetOptions): Target {
  const base = anthropicBase(opts.url);
  const model = opts.model ?? 'claude-3-5-haiku-latest';
  const auth: Record<string, string> = { ...(opts.apiKey ? { 'x-api-key': opts.apiKey } : {}), 'anthropic-version': '2023-06-01', ...(opts.headers ?? {}) };
  return {
    kind: 'anthropic',
    describe: () => `anthropic ${joinUrl(base, '/messages')} model=${model}`,
    async chat(req: ChatRequest, signal?: AbortSignal): Promise<ChatReply> {
      const r = await opts.transport.send(
        joinUrl(base, '/messages'),
        { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify(toAnthropicBody(req, model)) },
        { signal },
      );
      const reply = baseReply(r, req.stream);
      if (r.status >= 200 && r.status < 300) {
        const isSse = (r.headers['content-type'] ?? '').includes('text/event-stream') || /^\s*(?:data|event):/.test(r.body);
        if (isSse) readAnthropicStream(r.body, reply);
        else readAnthropicJson(r.body, reply);
      }
      return reply;
    },
    raw: (req: RawRequest, signal?: AbortSignal) => sendRaw(opts.transport, base, auth, req, signal),
    minimalChat: () => ({ path: '/messages', body: JSON.stringify({ model, max_tokens: 1, messages: [{ role: 'user', content: 'Say OK.' }] }) }),
  };
}
