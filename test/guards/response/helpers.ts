/** Shared helpers of the response-guard tests: scripted upstream replies and SSE reading. */
import type { ServerResponse } from 'node:http';
import type { Recorded } from '../../helpers/mock-upstream.js';
import type { ResponseSession } from '../../../src/guards/response/session.js';
import { createGuardTransform } from '../../../src/guards/response/stream.js';

/** An assistant tool call the scripted upstream proposes. */
export interface ScriptedCall {
  name: string;
  arguments: string;
}

/** Writes a chat completion (or an SSE stream of `chunks` text pieces, then tool calls in `argPieces` pieces). */
export function scriptedChat(req: Recorded, res: ServerResponse, chunks: readonly string[], calls: readonly ScriptedCall[] = [], argPieces = 3): void {
  const model = req.body?.model ?? 'mock';
  const base = { id: 'c1', object: 'chat.completion.chunk', created: 1, model };
  const finish = calls.length ? 'tool_calls' : 'stop';
  if (req.body?.stream) {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write(`data: ${JSON.stringify({ ...base, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }] })}\n\n`);
    for (const p of chunks) res.write(`data: ${JSON.stringify({ ...base, choices: [{ index: 0, delta: { content: p }, finish_reason: null }] })}\n\n`);
    calls.forEach((c, i) => {
      res.write(`data: ${JSON.stringify({ ...base, choices: [{ index: 0, delta: { tool_calls: [{ index: i, id: `call_${i}`, type: 'function', function: { name: c.name, arguments: '' } }] }, finish_reason: null }] })}\n\n`);
      const n = Math.max(1, argPieces);
      for (let k = 0; k < n; k++) {
        const piece = c.arguments.slice(Math.floor((k * c.arguments.length) / n), Math.floor(((k + 1) * c.arguments.length) / n));
        res.write(`data: ${JSON.stringify({ ...base, choices: [{ index: 0, delta: { tool_calls: [{ index: i, function: { arguments: piece } }] }, finish_reason: null }] })}\n\n`);
      }
    });
    res.write(`data: ${JSON.stringify({ ...base, choices: [{ index: 0, delta: {}, finish_reason: finish }] })}\n\n`);
    if (req.body?.stream_options?.include_usage) res.write(`data: ${JSON.stringify({ ...base, choices: [], usage: { prompt_tokens: 5, completion_tokens: 5, total_tokens: 10 } })}\n\n`);
    res.end('data: [DONE]\n\n');
    return;
  }
  res.writeHead(200, { 'content-type': 'application/json' });
  const text = chunks.join('');
  const message: Record<string, unknown> = { role: 'assistant', content: calls.length && !text ? null : text };
  if (calls.length) message.tool_calls = calls.map((c, i) => ({ id: `call_${i}`, type: 'function', function: { name: c.name, arguments: c.arguments } }));
  res.end(JSON.stringify({ id: 'c1', object: 'chat.completion', created: 1, model, choices: [{ index: 0, message, finish_reason: finish }], usage: { prompt_tokens: 5, completion_tokens: 5, total_tokens: 10 } }));
}

/** Writes an Anthropic messages stream (or body) of text pieces and optional tool uses. */
export function scriptedMessages(req: Recorded, res: ServerResponse, chunks: readonly string[], calls: readonly ScriptedCall[] = []): void {
  const model = req.body?.model ?? 'claude-mock';
  if (!req.body?.stream) {
    res.writeHead(200, { 'content-type': 'application/json' });
    const content: unknown[] = [];
    if (chunks.length) content.push({ type: 'text', text: chunks.join('') });
    calls.forEach((c, i) => content.push({ type: 'tool_use', id: `toolu_${i}`, name: c.name, input: JSON.parse(c.arguments) }));
    res.end(JSON.stringify({ id: 'msg_1', type: 'message', role: 'assistant', model, content, stop_reason: calls.length ? 'tool_use' : 'end_turn', stop_sequence: null, usage: { input_tokens: 5, output_tokens: 5 } }));
    return;
  }
  res.writeHead(200, { 'content-type': 'text/event-stream' });
  const ev = (type: string, o: Record<string, unknown>) => res.write(`event: ${type}\ndata: ${JSON.stringify({ type, ...o })}\n\n`);
  ev('message_start', { message: { id: 'msg_1', type: 'message', role: 'assistant', model, content: [], stop_reason: null, stop_sequence: null, usage: { input_tokens: 5, output_tokens: 1 } } });
  let idx = 0;
  if (chunks.length) {
    ev('content_block_start', { index: idx, content_block: { type: 'text', text: '' } });
    for (const c of chunks) ev('content_block_delta', { index: idx, delta: { type: 'text_delta', text: c } });
    ev('content_block_stop', { index: idx });
    idx++;
  }
  for (const c of calls) {
    ev('content_block_start', { index: idx, content_block: { type: 'tool_use', id: `toolu_${idx}`, name: c.name, input: {} } });
    const h = Math.floor(c.arguments.length / 2);
    ev('content_block_delta', { index: idx, delta: { type: 'input_json_delta', partial_json: c.arguments.slice(0, h) } });
    ev('content_block_delta', { index: idx, delta: { type: 'input_json_delta', partial_json: c.arguments.slice(h) } });
    ev('content_block_stop', { index: idx });
    idx++;
  }
  ev('message_delta', { delta: { stop_reason: calls.length ? 'tool_use' : 'end_turn', stop_sequence: null }, usage: { output_tokens: 9 } });
  ev('message_stop', {});
  res.end();
}

/** A parsed SSE event. */
export interface ReadEvent {
  event?: string;
  data: string;
  json?: any;
}

/** POSTs a JSON body and reads the whole SSE reply into events. */
export async function postSse(url: string, key: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; events: ReadEvent[]; headers: Headers }> {
  const r = await fetch(url, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
  const text = await r.text();
  const events: ReadEvent[] = [];
  for (const block of text.split('\n\n')) {
    if (!block.trim()) continue;
    let event: string | undefined;
    const data: string[] = [];
    for (const line of block.split('\n')) {
      if (line.startsWith('event:')) event = line.slice(6).trim();
      else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
    }
    const d = data.join('\n');
    let json: any;
    try {
      json = d === '[DONE]' ? undefined : JSON.parse(d);
    } catch {
      json = undefined;
    }
    events.push({ ...(event ? { event } : {}), data: d, ...(json !== undefined ? { json } : {}) });
  }
  return { status: r.status, events, headers: r.headers };
}

/** Concatenated assistant text of OpenAI chat stream events, and the finish reasons. */
export function chatText(events: readonly ReadEvent[]): { text: string; finish: string[]; done: boolean; toolCalls: Array<{ name: string; arguments: string }> } {
  let text = '';
  const finish: string[] = [];
  const calls = new Map<number, { name: string; arguments: string }>();
  for (const e of events) {
    for (const c of e.json?.choices ?? []) {
      if (typeof c.delta?.content === 'string') text += c.delta.content;
      if (typeof c.text === 'string') text += c.text;
      for (const t of c.delta?.tool_calls ?? []) {
        const cur = calls.get(t.index) ?? { name: '', arguments: '' };
        if (t.function?.name) cur.name = t.function.name;
        if (typeof t.function?.arguments === 'string') cur.arguments += t.function.arguments;
        calls.set(t.index, cur);
      }
      if (c.finish_reason) finish.push(c.finish_reason);
    }
  }
  return { text, finish, done: events.some((e) => e.data === '[DONE]'), toolCalls: [...calls.values()] };
}

/** POSTs JSON and returns status and parsed body. */
export async function postJson(url: string, key: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: any; headers: Headers }> {
  const r = await fetch(url, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
  const text = await r.text();
  let parsed: any = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    /* keep text */
  }
  return { status: r.status, body: parsed, headers: r.headers };
}

/**
 * Streams `text` through a chat stream-guard transform of `session`, cut into deltas at `cuts`
 * (taken modulo the text length, deduplicated), then a stop chunk and [DONE]; returns the text
 * the client would see and the finish reasons.
 */
export async function streamThroughGuard(session: ResponseSession, text: string, cuts: readonly number[]): Promise<{ text: string; finish: string[] }> {
  const t = createGuardTransform(session, 'chat');
  const parts = splitAt(text, cuts.map((c) => c % (text.length + 1)));
  let out = '';
  const finish: string[] = [];
  const take = (evs: Array<{ data: string }>) => {
    for (const e of evs) {
      if (e.data === '[DONE]') continue;
      for (const c of JSON.parse(e.data).choices ?? []) {
        out += c.delta?.content ?? '';
        if (c.finish_reason) finish.push(c.finish_reason);
      }
    }
  };
  const chunk = (delta: Record<string, unknown>, fin: string | null) => ({ id: 'c', object: 'chat.completion.chunk', choices: [{ index: 0, delta, finish_reason: fin }] });
  for (const p of parts) {
    const o = chunk({ content: p }, null);
    take(await t.onEvent({ data: JSON.stringify(o) }, o));
  }
  const f = chunk({}, 'stop');
  take(await t.onEvent({ data: JSON.stringify(f) }, f));
  take(await t.onEvent({ data: '[DONE]' }, undefined));
  take(await t.end());
  return { text: out, finish };
}

/** `text` cut every 16 code units and at `cut` (the chunkings the streaming tests try). */
export function piecesOf(text: string, cut: number): string[] {
  const cuts = [cut];
  for (let i = 16; i < text.length; i += 16) cuts.push(i);
  return splitAt(text, cuts.filter((c) => c > 0 && c < text.length));
}

/** `text` cut at each distinct point of `points` (in order; a point at 0 or at the end gives an empty piece). */
export function splitAt(text: string, points: readonly number[]): string[] {
  const out: string[] = [];
  let at = 0;
  for (const c of [...new Set(points)].sort((a, b) => a - b)) {
    out.push(text.slice(at, c));
    at = c;
  }
  out.push(text.slice(at));
  return out;
}

/** A Responses API stream (created, in_progress, message item with text deltas, then an optional function call, completed). */
export function scriptedResponses(req: Recorded, res: ServerResponse, pieces: readonly string[], call?: ScriptedCall): void {
  res.writeHead(200, { 'content-type': 'text/event-stream' });
  const ev = (o: Record<string, unknown>) => res.write(`event: ${o.type}\ndata: ${JSON.stringify(o)}\n\n`);
  const resp = { id: 'resp_1', object: 'response', created_at: 1, status: 'in_progress', model: req.body.model, output: [] };
  ev({ type: 'response.created', response: resp });
  ev({ type: 'response.in_progress', response: resp });
  ev({ type: 'response.output_item.added', output_index: 0, item: { type: 'message', id: 'm1', role: 'assistant', status: 'in_progress', content: [] } });
  ev({ type: 'response.content_part.added', item_id: 'm1', output_index: 0, content_index: 0, part: { type: 'output_text', text: '', annotations: [] } });
  for (const p of pieces) ev({ type: 'response.output_text.delta', item_id: 'm1', output_index: 0, content_index: 0, delta: p });
  const text = pieces.join('');
  ev({ type: 'response.output_text.done', item_id: 'm1', output_index: 0, content_index: 0, text });
  ev({ type: 'response.content_part.done', item_id: 'm1', output_index: 0, content_index: 0, part: { type: 'output_text', text, annotations: [] } });
  const msg = { type: 'message', id: 'm1', role: 'assistant', status: 'completed', content: [{ type: 'output_text', text, annotations: [] }] };
  ev({ type: 'response.output_item.done', output_index: 0, item: msg });
  const output: unknown[] = [msg];
  if (call) {
    const item = { type: 'function_call', id: 'fc1', call_id: 'call_1', name: call.name, arguments: '' };
    ev({ type: 'response.output_item.added', output_index: 1, item });
    ev({ type: 'response.function_call_arguments.delta', item_id: 'fc1', output_index: 1, delta: call.arguments.slice(0, 5) });
    ev({ type: 'response.function_call_arguments.delta', item_id: 'fc1', output_index: 1, delta: call.arguments.slice(5) });
    ev({ type: 'response.function_call_arguments.done', item_id: 'fc1', output_index: 1, arguments: call.arguments });
    const done = { ...item, arguments: call.arguments, status: 'completed' };
    ev({ type: 'response.output_item.done', output_index: 1, item: done });
    output.push(done);
  }
  ev({ type: 'response.completed', response: { ...resp, status: 'completed', output, usage: { input_tokens: 3, output_tokens: 5, total_tokens: 8 } } });
  res.end();
}
