/**
 * The demo upstream as a provider: serves chat, completions, responses, messages and
 * embeddings from the deterministic demo models, non-streamed and streamed (several chunks).
 */
import { GatewayError } from '../errors.js';
import { demoEmbedding, demoTokens, runDemoModel, type DemoReply, type DemoTool, type DemoTurn } from './demo-model.js';
import { demoObjects, rememberDemoResponse } from './demo-objects.js';
import type { Api, Provider, UpstreamRequest, UpstreamResponse, UpstreamSignal } from './types.js';

/** Models the demo upstream serves. */
export const DEMO_MODELS = ['demo', 'demo-vulnerable'] as const;

/** Text of an OpenAI/Anthropic content value (string or parts). */
export function contentText(content: unknown): string {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) {
    return content
      .map((p) => {
        if (typeof p === 'string') return p;
        if (p && typeof p === 'object') {
          const o = p as Record<string, unknown>;
          if (typeof o.text === 'string') return o.text;
          if (o.type === 'tool_result') return contentText(o.content);
          if (o.type === 'tool_use' && o.input) return JSON.stringify(o.input);
        }
        return '';
      })
      .join('\n');
  }
  return '';
}

function chatTurns(messages: unknown): DemoTurn[] {
  if (!Array.isArray(messages)) return [];
  return messages.map((m: any) => {
    const role = m?.role === 'developer' ? 'system' : m?.role === 'function' ? 'tool' : m?.role;
    return { role: ['system', 'user', 'assistant', 'tool'].includes(role) ? role : 'user', text: contentText(m?.content) };
  });
}

function openAiTools(tools: unknown): DemoTool[] {
  if (!Array.isArray(tools)) return [];
  return tools
    .map((t: any) => (t?.type === 'function' && t.function ? t.function : t?.type === 'function' ? t : t))
    .filter((f: any) => f && typeof f.name === 'string')
    .map((f: any) => ({ name: f.name, description: f.description, parameters: f.parameters ?? f.input_schema }));
}

function anthropicTurns(body: Record<string, any>): DemoTurn[] {
  const turns: DemoTurn[] = [];
  if (body.system) turns.push({ role: 'system', text: contentText(body.system) });
  for (const m of Array.isArray(body.messages) ? body.messages : []) {
    const parts = Array.isArray(m?.content) ? m.content : null;
    if (parts && parts.some((p: any) => p?.type === 'tool_result')) {
      turns.push({ role: 'tool', text: contentText(parts) });
    } else {
      turns.push({ role: m?.role === 'assistant' ? 'assistant' : 'user', text: contentText(m?.content) });
    }
  }
  return turns;
}

function responsesTurns(body: Record<string, any>): DemoTurn[] {
  const turns: DemoTurn[] = [];
  if (typeof body.instructions === 'string') turns.push({ role: 'system', text: body.instructions });
  if (typeof body.input === 'string') turns.push({ role: 'user', text: body.input });
  else if (Array.isArray(body.input)) {
    for (const item of body.input) {
      if (item?.type === 'function_call_output') turns.push({ role: 'tool', text: String(item.output ?? '') });
      else if (item?.role) turns.push({ role: item.role === 'developer' ? 'system' : item.role, text: contentText(item.content) });
    }
  }
  return turns;
}

/** Splits text into about `n` chunks on word boundaries. */
export function chunkText(text: string, n = 6): string[] {
  if (text.length === 0) return [];
  const words = text.split(/(?<=\s)/);
  const per = Math.max(1, Math.ceil(words.length / n));
  const out: string[] = [];
  for (let i = 0; i < words.length; i += per) out.push(words.slice(i, i + per).join(''));
  return out;
}

const enc = (s: string) => Buffer.from(s);
const sse = (data: unknown, event?: string) => enc((event ? `event: ${event}\n` : '') + `data: ${typeof data === 'string' ? data : JSON.stringify(data)}\n\n`);

function jsonResponse(status: number, body: unknown): UpstreamResponse {
  const buf = enc(JSON.stringify(body));
  return { status, headers: { 'content-type': 'application/json' }, body: (async function* () { yield buf; })(), dump() {} };
}

function sseResponse(gen: () => Generator<Buffer>, signal: UpstreamSignal): UpstreamResponse {
  return {
    status: 200,
    headers: { 'content-type': 'text/event-stream' },
    body: (async function* () {
      for (const b of gen()) {
        if (signal.aborted) return;
        yield b;
        await new Promise((r) => setImmediate(r));
      }
    })(),
    dump() {},
  };
}

function requireModel(body: Record<string, unknown>): string {
  const model = body.model;
  if (typeof model !== 'string' || !(DEMO_MODELS as readonly string[]).some((m) => model === m || model.startsWith(m + ':'))) {
    throw new GatewayError('PCL_MODEL_NOT_FOUND');
  }
  return model;
}

function chat(body: Record<string, any>, req: UpstreamRequest, id: string, created: number): UpstreamResponse {
  const model = requireModel(body);
  const r = runDemoModel(model, chatTurns(body.messages), openAiTools(body.tools));
  const usage = { prompt_tokens: r.inputTokens, completion_tokens: r.outputTokens, total_tokens: r.inputTokens + r.outputTokens };
  const toolCalls = r.toolCalls.map((c) => ({ id: c.id, type: 'function', function: { name: c.name, arguments: c.arguments } }));
  const finish = toolCalls.length ? 'tool_calls' : 'stop';
  if (!req.stream) {
    return jsonResponse(200, {
      id, object: 'chat.completion', created, model,
      choices: [{ index: 0, message: { role: 'assistant', content: toolCalls.length ? null : r.text, ...(toolCalls.length ? { tool_calls: toolCalls } : {}), refusal: null }, logprobs: null, finish_reason: finish }],
      usage,
    });
  }
  const base = { id, object: 'chat.completion.chunk', created, model };
  const includeUsage = body.stream_options?.include_usage === true;
  return sseResponse(function* () {
    yield sse({ ...base, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }] });
    for (const piece of chunkText(r.text)) yield sse({ ...base, choices: [{ index: 0, delta: { content: piece }, logprobs: null, finish_reason: null }] });
    for (const [i, c] of toolCalls.entries()) {
      yield sse({ ...base, choices: [{ index: 0, delta: { tool_calls: [{ index: i, id: c.id, type: 'function', function: { name: c.function.name, arguments: '' } }] }, logprobs: null, finish_reason: null }] });
      for (const piece of chunkText(c.function.arguments, 3)) {
        yield sse({ ...base, choices: [{ index: 0, delta: { tool_calls: [{ index: i, function: { arguments: piece } }] }, logprobs: null, finish_reason: null }] });
      }
    }
    yield sse({ ...base, choices: [{ index: 0, delta: {}, logprobs: null, finish_reason: finish }] });
    if (includeUsage) yield sse({ ...base, choices: [], usage });
    yield sse('[DONE]');
  }, req.signal);
}

function completions(body: Record<string, any>, req: UpstreamRequest, id: string, created: number): UpstreamResponse {
  const model = requireModel(body);
  const prompt = Array.isArray(body.prompt) ? body.prompt.join('\n') : String(body.prompt ?? '');
  const r = runDemoModel(model, [{ role: 'user', text: prompt }], []);
  const usage = { prompt_tokens: r.inputTokens, completion_tokens: r.outputTokens, total_tokens: r.inputTokens + r.outputTokens };
  if (!req.stream) {
    return jsonResponse(200, { id, object: 'text_completion', created, model, choices: [{ text: r.text, index: 0, logprobs: null, finish_reason: 'stop' }], usage });
  }
  const includeUsage = body.stream_options?.include_usage === true;
  return sseResponse(function* () {
    for (const piece of chunkText(r.text)) yield sse({ id, object: 'text_completion', created, model, choices: [{ text: piece, index: 0, logprobs: null, finish_reason: null }] });
    yield sse({ id, object: 'text_completion', created, model, choices: [{ text: '', index: 0, logprobs: null, finish_reason: 'stop' }] });
    if (includeUsage) yield sse({ id, object: 'text_completion', created, model, choices: [], usage });
    yield sse('[DONE]');
  }, req.signal);
}

function embeddings(body: Record<string, any>): UpstreamResponse {
  const model = requireModel(body);
  const inputs: string[] = typeof body.input === 'string' ? [body.input] : Array.isArray(body.input) ? body.input.map((x: unknown) => (typeof x === 'string' ? x : JSON.stringify(x))) : [];
  if (inputs.length === 0) return jsonResponse(400, { error: { message: "'input' is required", type: 'invalid_request_error', param: 'input', code: null } });
  const dims = Number.isInteger(body.dimensions) && body.dimensions > 0 && body.dimensions <= 4096 ? body.dimensions : 256;
  const tokens = inputs.reduce((n, t) => n + demoTokens(t), 0);
  return jsonResponse(200, {
    object: 'list',
    data: inputs.map((t, index) => {
      const v = demoEmbedding(t, dims);
      // encoding_format "base64": little-endian float32, as OpenAI sends it (the official SDK asks for it).
      const embedding = body.encoding_format === 'base64' ? Buffer.from(new Float32Array(v).buffer).toString('base64') : v;
      return { object: 'embedding', index, embedding };
    }),
    model,
    usage: { prompt_tokens: tokens, total_tokens: tokens },
  });
}

function responses(body: Record<string, any>, req: UpstreamRequest, id: string, created: number): UpstreamResponse {
  const model = requireModel(body);
  // A tool without a string name is ignored, as in chat and messages (the proxy forwards tools unchecked).
  const tools: DemoTool[] = Array.isArray(body.tools) ? body.tools.filter((t: any) => t?.type === 'function' && typeof t.name === 'string').map((t: any) => ({ name: t.name, description: t.description, parameters: t.parameters })) : [];
  const r: DemoReply = runDemoModel(model, responsesTurns(body), tools);
  const msgId = 'msg_' + id.slice(5);
  const output: any[] = [];
  if (r.toolCalls.length) {
    for (const c of r.toolCalls) output.push({ type: 'function_call', id: 'fc_' + c.id.slice(5), call_id: c.id, name: c.name, arguments: c.arguments, status: 'completed' });
  } else {
    output.push({ type: 'message', id: msgId, status: 'completed', role: 'assistant', content: [{ type: 'output_text', text: r.text, annotations: [] }] });
  }
  const usage = { input_tokens: r.inputTokens, input_tokens_details: { cached_tokens: 0 }, output_tokens: r.outputTokens, output_tokens_details: { reasoning_tokens: 0 }, total_tokens: r.inputTokens + r.outputTokens };
  const full = { id, object: 'response', created_at: created, status: 'completed', error: null, incomplete_details: null, instructions: body.instructions ?? null, model, output, parallel_tool_calls: true, tool_choice: 'auto', tools: body.tools ?? [], usage, metadata: {}, text: { format: { type: 'text' } } };
  if (body.store !== false) rememberDemoResponse(full);
  if (!req.stream) return jsonResponse(200, full);
  let seq = 0;
  const ev = (type: string, data: Record<string, unknown>) => sse({ type, sequence_number: seq++, ...data }, type);
  return sseResponse(function* () {
    const pending = { ...full, status: 'in_progress', output: [], usage: null };
    yield ev('response.created', { response: pending });
    yield ev('response.in_progress', { response: pending });
    if (r.toolCalls.length) {
      for (const [i, item] of output.entries()) {
        yield ev('response.output_item.added', { output_index: i, item: { ...item, arguments: '', status: 'in_progress' } });
        yield ev('response.function_call_arguments.delta', { item_id: item.id, output_index: i, delta: item.arguments });
        yield ev('response.function_call_arguments.done', { item_id: item.id, output_index: i, arguments: item.arguments });
        yield ev('response.output_item.done', { output_index: i, item });
      }
    } else {
      yield ev('response.output_item.added', { output_index: 0, item: { id: msgId, type: 'message', status: 'in_progress', role: 'assistant', content: [] } });
      yield ev('response.content_part.added', { item_id: msgId, output_index: 0, content_index: 0, part: { type: 'output_text', text: '', annotations: [] } });
      for (const piece of chunkText(r.text)) yield ev('response.output_text.delta', { item_id: msgId, output_index: 0, content_index: 0, delta: piece, logprobs: [] });
      yield ev('response.output_text.done', { item_id: msgId, output_index: 0, content_index: 0, text: r.text, logprobs: [] });
      yield ev('response.content_part.done', { item_id: msgId, output_index: 0, content_index: 0, part: { type: 'output_text', text: r.text, annotations: [] } });
      yield ev('response.output_item.done', { output_index: 0, item: output[0] });
    }
    yield ev('response.completed', { response: full });
  }, req.signal);
}

function messages(body: Record<string, any>, req: UpstreamRequest, id: string): UpstreamResponse {
  const model = requireModel(body);
  const tools: DemoTool[] = Array.isArray(body.tools) ? body.tools.filter((t: any) => typeof t?.name === 'string').map((t: any) => ({ name: t.name, description: t.description, parameters: t.input_schema })) : [];
  const r = runDemoModel(model, anthropicTurns(body), tools);
  const content: any[] = [];
  if (r.text) content.push({ type: 'text', text: r.text });
  for (const c of r.toolCalls) content.push({ type: 'tool_use', id: 'toolu_' + c.id.slice(5), name: c.name, input: JSON.parse(c.arguments) });
  const stop = r.toolCalls.length ? 'tool_use' : 'end_turn';
  const msgId = 'msg_' + id.slice(5);
  if (!req.stream) {
    return jsonResponse(200, { id: msgId, type: 'message', role: 'assistant', model, content, stop_reason: stop, stop_sequence: null, usage: { input_tokens: r.inputTokens, output_tokens: r.outputTokens } });
  }
  return sseResponse(function* () {
    yield sse({ type: 'message_start', message: { id: msgId, type: 'message', role: 'assistant', model, content: [], stop_reason: null, stop_sequence: null, usage: { input_tokens: r.inputTokens, output_tokens: 1 } } }, 'message_start');
    for (const [index, block] of content.entries()) {
      if (block.type === 'text') {
        yield sse({ type: 'content_block_start', index, content_block: { type: 'text', text: '' } }, 'content_block_start');
        yield sse({ type: 'ping' }, 'ping');
        for (const piece of chunkText(block.text)) yield sse({ type: 'content_block_delta', index, delta: { type: 'text_delta', text: piece } }, 'content_block_delta');
      } else {
        yield sse({ type: 'content_block_start', index, content_block: { type: 'tool_use', id: block.id, name: block.name, input: {} } }, 'content_block_start');
        for (const piece of chunkText(JSON.stringify(block.input), 3)) yield sse({ type: 'content_block_delta', index, delta: { type: 'input_json_delta', partial_json: piece } }, 'content_block_delta');
      }
      yield sse({ type: 'content_block_stop', index }, 'content_block_stop');
    }
    yield sse({ type: 'message_delta', delta: { stop_reason: stop, stop_sequence: null }, usage: { output_tokens: r.outputTokens } }, 'message_delta');
    yield sse({ type: 'message_stop' }, 'message_stop');
  }, req.signal);
}

let counter = 0;

/** Answers one request as the demo upstream would (used in-process and by `portcullis demo`). */
export function demoRespond(api: Api, body: Record<string, any>, req: UpstreamRequest): UpstreamResponse {
  const created = Math.floor(Date.now() / 1000);
  const id = `demo_${(counter++).toString(36).padStart(6, '0')}${req.requestId.replace(/[^A-Za-z0-9]/g, '').slice(-10)}`;
  switch (api) {
    case 'chat':
      return chat(body, req, 'chatcmpl-' + id, created);
    case 'completions':
      return completions(body, req, 'cmpl-' + id, created);
    case 'embeddings':
      return embeddings(body);
    case 'responses':
      return responses(body, req, 'resp_' + id, created);
    case 'messages':
      return messages(body, req, id);
  }
}

/** The demo provider (in-process; no network). */
export function createDemoProvider(name = 'demo'): Provider {
  return {
    name,
    type: 'demo',
    apis: new Set<Api>(['chat', 'completions', 'embeddings', 'responses', 'messages']),
    async send(req) {
      return demoRespond(req.api, req.body, req);
    },
    request: demoObjects,
    async close() {},
  };
}
