/**
 * Generic HTTP JSON target: a request body template with `{{prompt}}` (and optionally
 * `{{system}}`, `{{messages}}`), and a JSON path to the reply text.
 */
import type { ChatMessage, ChatReply, ChatRequest, RawRequest, Target } from '../types.js';
import { baseReply, sendRaw, tryJson, type TargetOptions } from './common.js';

/** Options of the generic HTTP target. */
export interface HttpTargetOptions extends TargetOptions {
  /** JSON body template; `{{prompt}}`/`{{system}}` are replaced by JSON-escaped strings (no quotes), `{{messages}}` by a JSON array. */
  bodyTemplate: string;
  /** Path to the reply text, e.g. `output.text`, `choices.0.message.content` or `$.data[0].text`. */
  replyPath: string;
  method?: string;
}

/** Reads a value from parsed JSON by a dotted/bracketed path. */
export function getPath(value: unknown, path: string): unknown {
  const parts = path.replace(/^\$\.?/, '').replace(/\[(\d+)\]/g, '.$1').split('.').filter(Boolean);
  let cur: unknown = value;
  for (const p of parts) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string, unknown>)[p];
  }
  return cur;
}

/** Flattens a conversation into one prompt text for single-input endpoints. */
export function flattenConversation(messages: ChatMessage[]): string {
  if (messages.length === 1 && messages[0].role === 'user') return messages[0].content;
  return messages
    .map((m) => {
      if (m.role === 'user') return `User: ${m.content}`;
      if (m.role === 'tool') return `Tool result (${m.name}): ${m.content}`;
      const calls = (m.toolCalls ?? []).map((c) => ` [called ${c.name}(${c.arguments})]`).join('');
      return `Assistant: ${m.content}${calls}`;
    })
    .join('\n');
}

function escapeJsonString(s: string): string {
  return JSON.stringify(s).slice(1, -1);
}

/** Fills the body template for one request. */
export function fillBody(template: string, req: ChatRequest): string {
  const msgs = req.messages.map((m) => ({ role: m.role === 'tool' ? 'user' : m.role, content: m.role === 'tool' ? `Tool result (${m.name}): ${m.content}` : m.content }));
  return template
    .replace(/\{\{prompt\}\}/g, () => escapeJsonString(flattenConversation(req.messages)))
    .replace(/\{\{system\}\}/g, () => escapeJsonString(req.system ?? ''))
    .replace(/\{\{messages\}\}/g, () => JSON.stringify(msgs));
}

/** Creates a generic HTTP JSON target. */
export function createHttpTarget(opts: HttpTargetOptions): Target {
  const url = new URL(opts.url);
  const headers: Record<string, string> = { 'content-type': 'application/json', ...(opts.apiKey ? { authorization: `Bearer ${opts.apiKey}` } : {}), ...(opts.headers ?? {}) };
  const authOnly = Object.fromEntries(Object.entries(headers).filter(([k]) => k !== 'content-type'));
  return {
    kind: 'http',
    describe: () => `http ${opts.url}`,
    async chat(req: ChatRequest, signal?: AbortSignal): Promise<ChatReply> {
      const r = await opts.transport.send(opts.url, { method: opts.method ?? 'POST', headers, body: fillBody(opts.bodyTemplate, req) }, { signal });
      const reply = baseReply(r, false);
      if (r.status >= 200 && r.status < 300) {
        const v = getPath(tryJson(r.body), opts.replyPath);
        if (typeof v === 'string') reply.text = v;
        else if (v !== undefined) reply.text = JSON.stringify(v);
        else reply.error = `reply path ${opts.replyPath} not found in the response`;
      }
      return reply;
    },
    raw: (req: RawRequest, signal?: AbortSignal) => sendRaw(opts.transport, url.origin, authOnly, req, signal),
    minimalChat: () => ({ path: url.pathname + url.search, body: fillBody(opts.bodyTemplate, { messages: [{ role: 'user', content: 'Say OK.' }], stream: false }) }),
  };
}
