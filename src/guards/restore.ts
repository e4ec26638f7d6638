/**
 * Restoration of pseudonymised values in responses: whole JSON bodies and streamed events
 * (chat, completions, responses, messages), including tool-call arguments (restored
 * JSON-escaped so the arguments stay valid JSON). Streams use the hold-back restorer of
 * detect/stream, so a placeholder split across chunks is still restored.
 */
import { createStreamRestorer, type StreamRestorer } from '../detect/stream/index.js';
import type { SseEvent, StreamTransform } from '../server/context.js';

const JSON_KEYS = new Set(['arguments', 'partial_json']);

function escapedMap(mapping: ReadonlyMap<string, string>): Map<string, string> {
  return new Map([...mapping].map(([k, v]) => [k, JSON.stringify(v).slice(1, -1)]));
}

function replacer(mapping: ReadonlyMap<string, string>): (s: string) => string {
  const keys = [...mapping.keys()].filter((k) => k.length > 0).sort((a, b) => b.length - a.length);
  if (keys.length === 0) return (s) => s;
  const re = new RegExp(keys.map((k) => k.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|'), 'g');
  return (s) => (s.length > 0 ? s.replace(re, (m) => mapping.get(m) ?? m) : s);
}

/** Restores placeholders in every string of a JSON value (in place). */
function walk(v: unknown, plain: (s: string) => string, escaped: (s: string) => string, key = ''): unknown {
  if (typeof v === 'string') return JSON_KEYS.has(key) ? escaped(v) : plain(v);
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) v[i] = walk(v[i], plain, escaped, key);
    return v;
  }
  if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    for (const k of Object.keys(o)) o[k] = walk(o[k], plain, escaped, k);
    return o;
  }
  return v;
}

/** Returns `body` with every placeholder of `mapping` replaced by its real value. */
export function restoreBody<T>(body: T, mapping: ReadonlyMap<string, string>): T {
  if (mapping.size === 0) return body;
  return walk(structuredClone(body), replacer(mapping), replacer(escapedMap(mapping))) as T;
}

/** A StreamTransform that restores placeholders in the streamed events of `api`. */
export function createRestoreTransform(api: string, mapping: ReadonlyMap<string, string>): StreamTransform {
  const plainMap = new Map(mapping);
  const escMap = escapedMap(mapping);
  const plain = replacer(plainMap);
  const escaped = replacer(escMap);
  const restorers = new Map<string, StreamRestorer>();
  const get = (key: string, json: boolean) => {
    let r = restorers.get(key);
    if (!r) {
      r = createStreamRestorer(json ? escMap : plainMap);
      restorers.set(key, r);
    }
    return r;
  };
  const flush = (key: string): string => {
    const r = restorers.get(key);
    if (!r) return '';
    restorers.delete(key);
    return r.end();
  };
  const ev = (data: unknown, event?: string): SseEvent => (event ? { event, data: JSON.stringify(data) } : { data: JSON.stringify(data) });
  /** Template of the last delta event per key (to synthesise a flush event). */
  const templates = new Map<string, Record<string, any>>();

  function chatLike(p: any, e: SseEvent): SseEvent[] {
    if (!Array.isArray(p.choices)) return [ev(walk(p, plain, escaped), e.event)];
    for (const c of p.choices) {
      const idx = c?.index ?? 0;
      if (api === 'completions') {
        if (typeof c.text === 'string') c.text = get(`c:${idx}`, false).push(c.text);
        if (c.finish_reason) c.text = (c.text ?? '') + flush(`c:${idx}`);
        continue;
      }
      const d = c?.delta;
      if (d && typeof d === 'object') {
        if (typeof d.content === 'string') d.content = get(`c:${idx}`, false).push(d.content);
        if (Array.isArray(d.tool_calls)) {
          for (const t of d.tool_calls) {
            if (typeof t?.function?.arguments === 'string') t.function.arguments = get(`t:${idx}:${t.index ?? 0}`, true).push(t.function.arguments);
          }
        }
      }
      if (c?.finish_reason) {
        const rest = flush(`c:${idx}`);
        c.delta ??= {};
        if (rest) c.delta.content = (typeof c.delta.content === 'string' ? c.delta.content : '') + rest;
        for (const k of [...restorers.keys()]) {
          if (!k.startsWith(`t:${idx}:`)) continue;
          const r = flush(k);
          if (r) (c.delta.tool_calls ??= []).push({ index: Number(k.split(':')[2]), function: { arguments: r } });
        }
      }
      if (c?.message) walk(c.message, plain, escaped);
    }
    return [ev(p, e.event)];
  }

  function responses(p: any, e: SseEvent): SseEvent[] {
    const type = p?.type;
    const key = (kind: string) => `${kind}:${p.item_id}:${p.output_index ?? 0}:${p.content_index ?? 0}`;
    if (type === 'response.output_text.delta' || type === 'response.function_call_arguments.delta') {
      const k = key(type === 'response.output_text.delta' ? 'x' : 'a');
      p.delta = get(k, type !== 'response.output_text.delta').push(String(p.delta ?? ''));
      templates.set(k, p);
      return [ev(p, e.event)];
    }
    if (type === 'response.output_text.done' || type === 'response.function_call_arguments.done') {
      const k = key(type === 'response.output_text.done' ? 'x' : 'a');
      const rest = flush(k);
      const out: SseEvent[] = [];
      const tpl = templates.get(k);
      templates.delete(k);
      if (rest && tpl) out.push(ev({ ...tpl, delta: rest }, tpl.type));
      out.push(ev(walk(p, plain, escaped), e.event));
      return out;
    }
    return [ev(walk(p, plain, escaped), e.event)];
  }

  function messages(p: any, e: SseEvent): SseEvent[] {
    const type = p?.type;
    if (type === 'content_block_delta' && p.delta) {
      const k = `b:${p.index ?? 0}`;
      if (typeof p.delta.text === 'string') p.delta.text = get(k, false).push(p.delta.text);
      else if (typeof p.delta.partial_json === 'string') p.delta.partial_json = get(k + ':j', true).push(p.delta.partial_json);
      templates.set(typeof p.delta.text === 'string' ? k : k + ':j', p);
      return [ev(p, e.event)];
    }
    if (type === 'content_block_stop') {
      const out: SseEvent[] = [];
      for (const k of [`b:${p.index ?? 0}`, `b:${p.index ?? 0}:j`]) {
        const rest = flush(k);
        const tpl = templates.get(k);
        templates.delete(k);
        if (rest && tpl) out.push(ev({ ...tpl, delta: { ...tpl.delta, ...(k.endsWith(':j') ? { partial_json: rest } : { text: rest }) } }, 'content_block_delta'));
      }
      out.push(e);
      return out;
    }
    return [ev(walk(p, plain, escaped), e.event)];
  }

  return {
    onEvent(e, parsed) {
      if (parsed === undefined || parsed === null || typeof parsed !== 'object') return [e];
      const p = structuredClone(parsed) as any;
      if (api === 'chat' || api === 'completions') return chatLike(p, e);
      if (api === 'responses') return responses(p, e);
      if (api === 'messages') return messages(p, e);
      return [ev(walk(p, plain, escaped), e.event)];
    },
    end() {
      const out: SseEvent[] = [];
      for (const k of [...restorers.keys()]) {
        const rest = flush(k);
        if (!rest) continue;
        const tpl = templates.get(k);
        if (tpl) out.push(ev({ ...tpl, ...(api === 'messages' ? { delta: { ...tpl.delta, ...(k.endsWith(':j') ? { partial_json: rest } : { text: rest }) } } : { delta: rest }) }, tpl.type ?? undefined));
        else if (api === 'chat' && k.startsWith('c:')) out.push(ev({ object: 'chat.completion.chunk', choices: [{ index: Number(k.split(':')[1]), delta: { content: rest }, finish_reason: null }] }));
      }
      return out;
    },
  };
}
