/**
 * Parses a provider request body once into segments (role + trust + path) and writes
 * transformed segment texts back into a copy of the body.
 *
 * Trust: system, developer, user and assistant turns are trusted (assistant as history);
 * tool results (chat `role: tool|function`, Anthropic `tool_result` blocks, Responses
 * `function_call_output`) and retrieved documents are untrusted.
 *
 * Marking retrieved content (the Portcullis convention):
 *  - chat: a message whose `name` is `retrieved` or starts with `retrieved:` (e.g.
 *    `{"role":"user","name":"retrieved:kb-42","content":"…"}`) is a retrieved document;
 *  - any API: a text content part with `"portcullis_trust": "untrusted"` (e.g.
 *    `{"type":"text","text":"…","portcullis_trust":"untrusted"}`) is a retrieved document;
 *    the gateway strips the `portcullis_trust` field before the body goes upstream;
 *  - Anthropic `document` blocks with a text source are retrieved documents.
 */
import type { Segment, SegmentPath, SegmentRole } from './types.js';

/** A request body parsed once for the guards. */
export interface Inspected {
  /** The API of the body, or `text` for plain text. */
  api: string;
  model?: string;
  stream: boolean;
  segments: Segment[];
  /** Sum of the segments' lengths (UTF-16 code units). */
  totalChars: number;
  /** Paths of content parts carrying a `portcullis_trust` marker (stripped before forwarding). */
  markers: SegmentPath[];
}

/** The trust marker field on content parts. */
export const TRUST_FIELD = 'portcullis_trust';

const UNTRUSTED_ROLES: ReadonlySet<SegmentRole> = new Set(['tool', 'retrieved']);

/** Whether segments of this role are untrusted by default. */
export function trustOf(role: SegmentRole): 'trusted' | 'untrusted' {
  return UNTRUSTED_ROLES.has(role) ? 'untrusted' : 'trusted';
}

class Builder {
  segments: Segment[] = [];
  markers: SegmentPath[] = [];
  total = 0;
  add(role: SegmentRole, text: unknown, path: SegmentPath): void {
    if (typeof text !== 'string' || text.length === 0) return;
    this.segments.push({ id: `s${this.segments.length}`, role, trust: trustOf(role), text, path });
    this.total += text.length;
  }
  /** Adds a string or an array of text parts. */
  content(role: SegmentRole, content: unknown, path: SegmentPath): void {
    if (typeof content === 'string') return this.add(role, content, path);
    if (!Array.isArray(content)) return;
    content.forEach((p, j) => {
      if (typeof p === 'string') return this.add(role, p, [...path, j]);
      if (!p || typeof p !== 'object') return;
      const o = p as Record<string, unknown>;
      const marked = o[TRUST_FIELD] === 'untrusted';
      if (TRUST_FIELD in o) this.markers.push([...path, j]);
      const r: SegmentRole = marked ? 'retrieved' : role;
      if (typeof o.text === 'string') this.add(r, o.text, [...path, j, 'text']);
      else if (o.type === 'tool_result') this.content('tool', o.content, [...path, j, 'content']);
      else if (o.type === 'document' && o.source && typeof o.source === 'object' && (o.source as Record<string, unknown>).type === 'text') this.add('retrieved', (o.source as Record<string, unknown>).data, [...path, j, 'source', 'data']);
      else if (o.type === 'tool_use' && o.input !== undefined) {
        /* tool_use input is structured JSON history; scanned by tool_call guards, not here */
      }
    });
  }
}

function roleOf(raw: unknown, name: unknown): SegmentRole {
  if (typeof name === 'string' && (name === 'retrieved' || name.startsWith('retrieved:'))) return 'retrieved';
  switch (raw) {
    case 'system':
      return 'system';
    case 'developer':
      return 'developer';
    case 'assistant':
      return 'assistant';
    case 'tool':
    case 'function':
      return 'tool';
    default:
      return 'user';
  }
}

/** Parses `body` of `api` into segments. Unknown shapes yield no segments (validation happens earlier). */
export function inspect(api: string, body: Record<string, unknown>): Inspected {
  const b = new Builder();
  switch (api) {
    case 'chat': {
      const msgs = Array.isArray(body.messages) ? body.messages : [];
      msgs.forEach((m: any, i: number) => {
        if (!m || typeof m !== 'object') return;
        const role = roleOf(m.role, m.name);
        b.content(role, m.content, ['messages', i, 'content']);
        if (Array.isArray(m.tool_calls)) {
          m.tool_calls.forEach((c: any, k: number) => b.add('assistant', c?.function?.arguments, ['messages', i, 'tool_calls', k, 'function', 'arguments']));
        }
      });
      break;
    }
    case 'completions': {
      if (typeof body.prompt === 'string') b.add('user', body.prompt, ['prompt']);
      else if (Array.isArray(body.prompt)) body.prompt.forEach((p, i) => b.add('user', p, ['prompt', i]));
      break;
    }
    case 'embeddings': {
      if (typeof body.input === 'string') b.add('user', body.input, ['input']);
      else if (Array.isArray(body.input)) body.input.forEach((p, i) => b.add('user', p, ['input', i]));
      break;
    }
    case 'responses': {
      b.add('system', body.instructions, ['instructions']);
      if (typeof body.input === 'string') b.add('user', body.input, ['input']);
      else if (Array.isArray(body.input)) {
        body.input.forEach((it: any, i: number) => {
          if (!it || typeof it !== 'object') return;
          if (it.type === 'function_call_output' || it.type === 'custom_tool_call_output') b.content('tool', it.output, ['input', i, 'output']);
          else if (it.type === 'function_call') b.add('assistant', it.arguments, ['input', i, 'arguments']);
          else if (it.role !== undefined) b.content(roleOf(it.role, it.name), it.content, ['input', i, 'content']);
        });
      }
      break;
    }
    case 'messages': {
      b.content('system', body.system, ['system']);
      const msgs = Array.isArray(body.messages) ? body.messages : [];
      msgs.forEach((m: any, i: number) => {
        if (!m || typeof m !== 'object') return;
        b.content(m.role === 'assistant' ? 'assistant' : 'user', m.content, ['messages', i, 'content']);
      });
      break;
    }
    case 'text':
    default:
      if (typeof body.text === 'string') b.add('user', body.text, ['text']);
  }
  return {
    api,
    ...(typeof body.model === 'string' ? { model: body.model } : {}),
    stream: body.stream === true,
    segments: b.segments,
    totalChars: b.total,
    markers: b.markers,
  };
}

function getAt(root: unknown, path: SegmentPath): unknown {
  let cur: any = root;
  for (const k of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = cur[k as any];
  }
  return cur;
}

function setAt(root: unknown, path: SegmentPath, value: unknown): void {
  const parent = getAt(root, path.slice(0, -1)) as any;
  if (parent === null || typeof parent !== 'object') throw new Error('segment path does not exist in the body');
  parent[path[path.length - 1] as any] = value;
}

/** Adds system notes in the API's own place (chat/responses/messages); no-op where there is none. */
function addSystemNotes(api: string, body: Record<string, any>, notes: readonly string[]): void {
  if (notes.length === 0) return;
  const note = notes.join('\n');
  if (api === 'chat' && Array.isArray(body.messages)) {
    let at = 0;
    while (at < body.messages.length && (body.messages[at]?.role === 'system' || body.messages[at]?.role === 'developer')) at++;
    body.messages.splice(at, 0, { role: 'system', content: note });
  } else if (api === 'messages') {
    if (typeof body.system === 'string') body.system = `${body.system}\n\n${note}`;
    else if (Array.isArray(body.system)) body.system = [...body.system, { type: 'text', text: note }];
    else body.system = note;
  } else if (api === 'responses') {
    body.instructions = typeof body.instructions === 'string' && body.instructions ? `${body.instructions}\n\n${note}` : note;
  }
}

/**
 * Returns a copy of `body` with the changed segments written back, trust markers stripped and
 * system notes added. Returns `body` itself when nothing changes.
 */
export function writeBack(
  inspected: Inspected,
  body: Record<string, unknown>,
  segments: readonly Segment[],
  changed: ReadonlySet<string>,
  systemNotes: readonly string[] = [],
): Record<string, unknown> {
  if (changed.size === 0 && inspected.markers.length === 0 && systemNotes.length === 0) return body;
  const out = structuredClone(body) as Record<string, any>;
  for (const s of segments) if (changed.has(s.id)) setAt(out, s.path, s.text);
  for (const m of inspected.markers) {
    const part = getAt(out, m) as Record<string, unknown> | undefined;
    if (part && typeof part === 'object') delete part[TRUST_FIELD];
  }
  addSystemNotes(inspected.api, out, systemNotes);
  return out;
}
