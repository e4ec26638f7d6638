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
 *  - Anthropic `document` and `search_result` blocks are retrieved documents.
 *
 * Every text the model will read becomes a segment, whatever shape carries it: content parts of
 * a type this module does not know (a newer API block, a provider extension) are scanned by
 * their string fields (binary data, URLs and ids left out), so an unfamiliar shape is not a way
 * around the guards. Token-id inputs (completions `prompt`, embeddings `input` as arrays of
 * integers) are decoded with the model's tokenizer when the caller passes one (`tokenCodec`);
 * those without one are listed in `undecodedTokens` for the engine to refuse or pass.
 */
import type { Segment, SegmentPath, SegmentRole, TokenCodec } from './types.js';

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
  /** Token-id inputs that could not be decoded (no tokenizer known for the model, or ids outside it). */
  undecodedTokens: SegmentPath[];
}

/** Options of `inspect`. */
export interface InspectOptions {
  /** The tokenizer of a model, for token-id inputs; undefined when unknown. */
  tokenCodec?: (model: string) => TokenCodec | undefined;
}

/** A non-empty array of integers (one tokenized text). */
export function isTokenArray(v: unknown): v is number[] {
  if (!Array.isArray(v) || v.length === 0) return false;
  for (const x of v) if (!Number.isInteger(x)) return false;
  return true;
}

/** The trust marker field on content parts. */
export const TRUST_FIELD = 'portcullis_trust';

/**
 * Keys of unfamiliar content parts that hold no text for the model: binary payloads, links,
 * identifiers and formatting. Everything else that is a string is scanned.
 */
const NON_TEXT_KEYS: ReadonlySet<string> = new Set([
  'type', 'role', 'status', 'id', 'tool_use_id', 'call_id', 'cache_control', 'media_type', 'mime_type', 'url', 'image_url', 'file_id',
  'file_data', 'file_url', 'detail', 'format', 'signature', 'data', 'input_audio', 'encrypted_content', 'encrypted_index', TRUST_FIELD,
]);
/** Part types whose text is retrieved content (untrusted), whatever the message's role. */
const RETRIEVED_PARTS: ReadonlySet<string> = new Set(['document', 'search_result']);
/** Responses input items without text for the model (ids, images, generated files). */
const NO_TEXT_ITEMS: ReadonlySet<string> = new Set(['item_reference', 'image_generation_call']);
/** Responses input items the model wrote itself (history). */
const ASSISTANT_ITEMS: ReadonlySet<string> = new Set(['reasoning', 'message', 'custom_tool_call', 'computer_call', 'web_search_call', 'local_shell_call', 'shell_call', 'apply_patch_call', 'mcp_list_tools', 'mcp_approval_request', 'mcp_approval_response']);
/** Responses items written by the model whose named field holds what a tool returned (untrusted). */
const CALL_RESULTS: ReadonlyMap<string, string> = new Map([['mcp_call', 'output'], ['code_interpreter_call', 'outputs'], ['file_search_call', 'results']]);
/**
 * The role of an unfamiliar part's text: what a tool returned (`*_tool_result` blocks: web fetch
 * and search, code execution, MCP) is tool output, documents and search results are retrieved
 * content, anything else is the message's own.
 */
function partRole(type: unknown, own: SegmentRole): SegmentRole {
  if (typeof type !== 'string') return own;
  if (RETRIEVED_PARTS.has(type)) return 'retrieved';
  if (type.endsWith('_tool_result')) return 'tool';
  return own;
}

/** Whether field `k` of a content part, block or item holds text the model reads (see NON_TEXT_KEYS). */
export function isTextField(o: Record<string, unknown>, k: string): boolean {
  return !NON_TEXT_KEYS.has(k) || (k === 'data' && isTextSource(o));
}

/** A `data` field that holds text: a text source (`type: text` or a `text/*` media type), not base64. */
function isTextSource(o: Record<string, unknown>): boolean {
  return typeof o.data === 'string' && (o.type === 'text' || (typeof o.media_type === 'string' && o.media_type.startsWith('text/') && o.type !== 'base64'));
}

/** Nesting walked inside one unfamiliar part. */
const MAX_PART_DEPTH = 8;

const UNTRUSTED_ROLES: ReadonlySet<SegmentRole> = new Set(['tool', 'retrieved']);

/**
 * The text-part groups (see `Segment.group`) with at least two of the segments `keep` accepts,
 * each in segment order; `key` may split a group further (e.g. by trust level).
 */
export function partGroups(segments: readonly Segment[], keep: (s: Segment) => boolean, key: (s: Segment) => string = (s) => s.group!): Segment[][] {
  let groups: Map<string, Segment[]> | undefined;
  for (const s of segments) {
    if (s.group === undefined || !keep(s)) continue;
    groups ??= new Map();
    const k = key(s);
    const g = groups.get(k);
    if (g) g.push(s);
    else groups.set(k, [s]);
  }
  return groups ? [...groups.values()].filter((g) => g.length > 1) : [];
}

/** The texts of a part group joined as the model reads them, with each part's start in the joined text. */
export function joinParts(segs: readonly Segment[]): { text: string; starts: number[] } {
  const starts: number[] = [];
  let text = '';
  for (const g of segs) {
    starts.push(text.length);
    text += g.text;
  }
  return { text, starts };
}

/** Index of the part that holds offset `at` of the joined text: the last one starting at or before it (0 when none). */
export function partAt(starts: readonly number[], at: number): number {
  let i = 0;
  while (i + 1 < starts.length && starts[i + 1]! <= at) i++;
  return i;
}

/** Whether segments of this role are untrusted by default. */
export function trustOf(role: SegmentRole): 'trusted' | 'untrusted' {
  return UNTRUSTED_ROLES.has(role) ? 'untrusted' : 'trusted';
}

class Builder {
  segments: Segment[] = [];
  markers: SegmentPath[] = [];
  undecodedTokens: SegmentPath[] = [];
  total = 0;
  add(role: SegmentRole, text: unknown, path: SegmentPath, group?: string, tokens?: TokenCodec): void {
    if (typeof text !== 'string' || text.length === 0) return;
    const seg: Segment = { id: `s${this.segments.length}`, role, trust: trustOf(role), text, path };
    if (group !== undefined) seg.group = group;
    if (tokens !== undefined) seg.tokens = tokens;
    this.segments.push(seg);
    this.total += text.length;
  }
  /** Adds a string or an array of text parts. */
  content(role: SegmentRole, content: unknown, path: SegmentPath): void {
    if (typeof content === 'string') return this.add(role, content, path);
    if (!Array.isArray(content)) return;
    // The text parts of this array, read by the model one after the other.
    const group = content.length > 1 ? path.join('.') : undefined;
    content.forEach((p, j) => {
      if (typeof p === 'string') return this.add(role, p, [...path, j], group);
      if (!p || typeof p !== 'object') return;
      const o = p as Record<string, unknown>;
      const marked = o[TRUST_FIELD] === 'untrusted';
      if (TRUST_FIELD in o) this.markers.push([...path, j]);
      const r: SegmentRole = marked ? 'retrieved' : role;
      if (typeof o.text === 'string') this.add(r, o.text, [...path, j, 'text'], group);
      else if (o.type === 'tool_result') this.content('tool', o.content, [...path, j, 'content']);
      else if (o.type === 'tool_use') {
        /* tool_use input is structured JSON history; scanned by tool_call guards, not here */
      } else if (o.type === 'document' && o.source && typeof o.source === 'object' && (o.source as Record<string, unknown>).type === 'text') {
        this.add('retrieved', (o.source as Record<string, unknown>).data, [...path, j, 'source', 'data']);
        this.strings('retrieved', o, [...path, j], 0, 'source');
      } else this.strings(partRole(o.type, r), o, [...path, j], 0);
    });
  }
  /** Adds every string under an unfamiliar part (see NON_TEXT_KEYS), except the key `skip`. */
  strings(role: SegmentRole, o: Record<string, unknown> | unknown[], path: SegmentPath, depth: number, skip?: string): void {
    if (depth > MAX_PART_DEPTH) return;
    const visit = (v: unknown, k: string | number) => {
      if (typeof v === 'string') this.add(role, v, [...path, k]);
      else if (v && typeof v === 'object') this.strings(role, v as Record<string, unknown>, [...path, k], depth + 1);
    };
    if (Array.isArray(o)) o.forEach(visit);
    else for (const k of Object.keys(o)) if (k !== skip && isTextField(o, k)) visit(o[k], k);
  }
  /** Adds a text, an array of texts, or token ids (one array, or an array of them) at `path`. */
  textsOrTokens(role: SegmentRole, v: unknown, path: SegmentPath, codec: TokenCodec | undefined): void {
    if (typeof v === 'string') return this.add(role, v, path);
    if (!Array.isArray(v)) return;
    if (isTokenArray(v)) return this.tokens(role, v, path, codec);
    v.forEach((x, i) => (isTokenArray(x) ? this.tokens(role, x, [...path, i], codec) : this.add(role, x, [...path, i])));
  }
  /** Token ids as their decoded text (written back as ids); listed as undecodable without a codec or outside its vocabulary. */
  tokens(role: SegmentRole, ids: number[], path: SegmentPath, codec: TokenCodec | undefined): void {
    const text = codec?.decode(ids);
    if (text === undefined) this.undecodedTokens.push(path);
    else this.add(role, text, path, undefined, codec);
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
export function inspect(api: string, body: Record<string, unknown>, opts: InspectOptions = {}): Inspected {
  const b = new Builder();
  const codec = () => (opts.tokenCodec && typeof body.model === 'string' ? opts.tokenCodec(body.model) : undefined);
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
      // Predicted Outputs: text the client sends for the model to reuse.
      const pred = body.prediction as { content?: unknown } | undefined;
      if (pred && typeof pred === 'object') b.content('user', pred.content, ['prediction', 'content']);
      break;
    }
    case 'completions': {
      b.textsOrTokens('user', body.prompt, ['prompt'], codec());
      // Insert mode: the model reads the suffix too.
      b.add('user', body.suffix, ['suffix']);
      break;
    }
    case 'embeddings': {
      b.textsOrTokens('user', body.input, ['input'], codec());
      break;
    }
    case 'responses': {
      b.add('system', body.instructions, ['instructions']);
      // A stored prompt template's variables: texts (or input items) the caller fills into it.
      const vars = (body.prompt as { variables?: unknown } | undefined)?.variables;
      if (body.prompt && typeof body.prompt === 'object' && vars && typeof vars === 'object' && !Array.isArray(vars)) {
        for (const k of Object.keys(vars)) {
          const v = (vars as Record<string, unknown>)[k];
          if (typeof v === 'string') b.add('user', v, ['prompt', 'variables', k]);
          else if (v && typeof v === 'object') b.strings('user', v as Record<string, unknown>, ['prompt', 'variables', k], 0);
        }
      }
      if (typeof body.input === 'string') b.add('user', body.input, ['input']);
      else if (Array.isArray(body.input)) {
        body.input.forEach((it: any, i: number) => {
          if (!it || typeof it !== 'object') return;
          const at = ['input', i];
          if (it.type === 'function_call_output' || it.type === 'custom_tool_call_output') b.content('tool', it.output, [...at, 'output']);
          else if (it.type === 'function_call') b.add('assistant', it.arguments, [...at, 'arguments']);
          else if (it.role !== undefined) b.content(roleOf(it.role, it.name), it.content, [...at, 'content']);
          else if (typeof it.type !== 'string' || NO_TEXT_ITEMS.has(it.type)) return;
          // Other items the model reads as history: tool outputs (`*_output`, an MCP call's output)
          // and file-search results are untrusted; the model's own items (reasoning summaries, tool
          // call arguments) are assistant text; an item type not known here is treated as untrusted.
          else if (it.type.endsWith('_output')) b.strings('tool', it, at, 0);
          else if (CALL_RESULTS.has(it.type)) {
            const k = CALL_RESULTS.get(it.type)!;
            b.strings('assistant', it, at, 0, k);
            const r = it[k];
            if (typeof r === 'string') b.add('tool', r, [...at, k]);
            else if (r && typeof r === 'object') b.strings(it.type === 'file_search_call' ? 'retrieved' : 'tool', r, [...at, k], 1);
          } else b.strings(ASSISTANT_ITEMS.has(it.type) ? 'assistant' : 'tool', it, at, 0);
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
    undecodedTokens: b.undecodedTokens,
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
  for (const s of segments) if (changed.has(s.id)) setAt(out, s.path, s.tokens ? s.tokens.encode(s.text) : s.text);
  for (const m of inspected.markers) {
    const part = getAt(out, m) as Record<string, unknown> | undefined;
    if (part && typeof part === 'object') delete part[TRUST_FIELD];
  }
  addSystemNotes(inspected.api, out, systemNotes);
  return out;
}
