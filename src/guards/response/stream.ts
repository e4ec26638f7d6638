/**
 * Response guards on streams, without a bypass. Each choice / content block / output part has
 * its own hold-back scanner: text is released once no finding can still start inside it, a
 * finding split across chunks is still rewritten, and a block ends the stream cleanly in the
 * API's own shape (OpenAI: a `content_filter` finish then `[DONE]`; Anthropic: `message_delta`
 * with `stop_reason: refusal` plus an `error` event; Responses: `response.incomplete`), with no
 * further content. Tool-call deltas are assembled and released only once validated.
 */
import { createStreamScanner, type StreamScanner } from '../../detect/stream/index.js';
import { createToolCallAssembler, type AssembledToolCall, type ToolCallAssembler } from '../../detect/tools/index.js';
import type { SseEvent, StreamTransform } from '../../server/context.js';
import type { OutputFinding } from './scan.js';
import type { BlockInfo, ResponseSession } from './session.js';

type Step = { emit: string; block?: BlockInfo };

/** One scanned text channel (a choice, a content block or an output part). */
class TextChannel {
  private readonly scanner: StreamScanner;
  private pendingBlock: BlockInfo | undefined;
  private full = '';
  private readonly keepFull: boolean;
  /** Text sent to the client so far. */
  emitted = '';
  /** Text received from the upstream so far (its length). */
  received = 0;
  ended = false;
  scanMs = 0;

  constructor(private readonly s: ResponseSession) {
    const checker = s.checker;
    const r = s.cfg.response;
    this.keepFull = !!(r.topics.allowed && Object.keys(r.topics.allowed).length) || (r.unsafe.enabled && r.unsafe.judge) || checker.hasFlagOnly;
    const flagged = new Set<string>();
    this.scanner = createStreamScanner({
      holdBack: checker.holdBack,
      minRelease: r.minRelease,
      riskyTail: checker.riskyTail,
      scan: (text) => {
        const t0 = performance.now();
        const fs = checker.scanActing(text);
        this.scanMs += performance.now() - t0;
        if (fs.length === 0) return { findings: [] };
        const b = s.blockOf(fs);
        if (b && !this.pendingBlock) this.pendingBlock = b;
        for (const f of fs) {
          if (f.act !== 'flag') continue;
          const k = `${f.guard}\0${f.category}`;
          if (flagged.has(k)) continue;
          flagged.add(k);
          s.note(f.guard, 'flag', [f.category], 1);
        }
        return { findings: fs.filter((f) => f.act === 'rewrite') };
      },
      rewrite: (text, findings) => checker.rewrite(text, findings as OutputFinding[]),
    });
  }

  private blocked(): Step {
    const b = this.pendingBlock!;
    this.s.note(b.guard, 'block', b.categories, 1);
    return { emit: '', block: b };
  }

  push(delta: string): Step {
    if (delta.length === 0) return { emit: '' };
    this.received += delta.length;
    if (!this.s.cfg.response.enabled) {
      this.emitted += delta;
      return { emit: delta };
    }
    if (this.keepFull) this.full += delta;
    if (this.full.length > this.s.cfg.response.maxOutputChars) return { emit: '', block: { guard: 'response:exfil', categories: ['output_too_large'], failed: true } };
    const st = this.scanner.push(delta);
    if (this.s.shadow) return { emit: delta };
    if (this.pendingBlock) return this.blocked();
    this.emitted += st.emit;
    return { emit: st.emit };
  }

  async end(): Promise<Step> {
    if (this.ended) return { emit: '' };
    this.ended = true;
    if (!this.s.cfg.response.enabled) return { emit: '' };
    const st = this.scanner.end();
    if (this.scanner.findings.length > 0) this.s.noteFindings(this.scanner.findings as OutputFinding[]);
    if (this.pendingBlock && !this.s.shadow) return this.blocked();
    if (this.keepFull) {
      if (this.s.checker.hasFlagOnly) this.s.noteFindings(this.s.checker.scanFlags(this.full));
      const whole = this.s.checker.whole(this.full);
      this.s.noteFindings(whole);
      const wb = this.s.blockOf(whole);
      if (wb && !this.s.shadow) return { emit: '', block: wb };
      const jb = await this.s.judge(this.full);
      if (jb && !this.s.shadow) return { emit: '', block: jb };
    }
    if (this.s.shadow) return { emit: '' };
    this.emitted += st.emit;
    return { emit: st.emit };
  }
}

/** A chunk without its `choices`. */
function frameOf(p: Record<string, unknown>): Record<string, unknown> {
  const { choices: _c, ...frame } = p;
  return frame;
}

/** Whether an outgoing choice carries anything: text, or (chat) another delta field that is set (role, refusal…). */
function carriesText(api: string, oc: any): boolean {
  if (api !== 'chat') return typeof oc.text === 'string' && oc.text.length > 0;
  const d = oc.delta;
  return (typeof d?.content === 'string' && d.content.length > 0) || (!!d && Object.keys(d).some((k) => k !== 'content' && d[k] !== undefined && d[k] !== null));
}

/** Whether a chat delta carries nothing but `content` (no role, tool calls, refusal…): a plain object whose other keys are null. */
function onlyContent(d: unknown): boolean {
  if (!d || typeof d !== 'object' || Array.isArray(d)) return false;
  for (const k in d) {
    if (k === 'content' || !Object.hasOwn(d, k)) continue;
    const v = (d as Record<string, unknown>)[k];
    if (v !== undefined && v !== null) return false;
  }
  return true;
}

const data = (o: unknown, event?: string): SseEvent => (event ? { event, data: JSON.stringify(o) } : { data: JSON.stringify(o) });

/**
 * Whether an outgoing event carries no content yet (the preamble a re-ask holds back): OpenAI's
 * role chunk, Anthropic's message_start / ping / empty text block start, the Responses API's
 * created / in_progress / message item and part announcements.
 */
function isPreamble(api: string, ev: SseEvent): boolean {
  if (ev.data === '[DONE]') return false;
  let p: any;
  try {
    p = JSON.parse(ev.data);
  } catch {
    return false;
  }
  if (!p || typeof p !== 'object') return false;
  if (api === 'messages') {
    const t = p.type;
    if (t === 'message_start' || t === 'ping') return true;
    return t === 'content_block_start' && p.content_block?.type === 'text' && !p.content_block.text;
  }
  if (api === 'responses') {
    const t = p.type;
    if (t === 'response.created' || t === 'response.in_progress') return true;
    if (t === 'response.output_item.added') return p.item?.type === 'message';
    return t === 'response.content_part.added';
  }
  if (!Array.isArray(p.choices)) return false;
  for (const c of p.choices) {
    if (!c || c.finish_reason) return false;
    if (api === 'completions') {
      if (typeof c.text === 'string' && c.text.length > 0) return false;
      continue;
    }
    const d = c.delta;
    if (!d || typeof d !== 'object') continue;
    for (const k of Object.keys(d)) {
      if (k === 'role') continue;
      const v = d[k];
      if (v === null || v === undefined || v === '') continue;
      return false;
    }
  }
  return true;
}

/** Options of a guard transform. */
export interface GuardTransformOptions {
  /** False for the re-asked stream (one re-ask per request). Default: true. */
  reask?: boolean;
}

/**
 * Creates the stream transform of a response-guard session for one API. With `onBlock: reask`
 * (enforce mode), the events before the first content release (the preamble) are held back too,
 * so that a block in the first hold-back window has sent nothing: the transform then reports
 * `reaskPending` instead of sending the blocked form, and the relay re-asks.
 */
export function createGuardTransform(s: ResponseSession, api: string, opts: GuardTransformOptions = {}): StreamTransform {
  const inner = guardTransform(s, api);
  if (s.cfg.response.onBlock !== 'reask' || s.shadow || opts.reask === false) return inner;
  let holding = true;
  let held: SseEvent[] = [];
  let pending: { events: SseEvent[]; outputChars: number } | undefined;
  const pass = (out: SseEvent[]): SseEvent[] => {
    if (!holding) return out;
    if (s.blocked) {
      holding = false;
      const all = held.length ? [...held, ...out] : out;
      held = [];
      if (s.blocked.failed) return all; // a guard that failed closed: no re-ask (as for bodies)
      pending = { events: all, outputChars: inner.received() };
      return [];
    }
    for (const ev of out) {
      if (isPreamble(api, ev)) continue;
      holding = false;
      const all = held.length ? [...held, ...out] : out;
      held = [];
      return all;
    }
    for (const ev of out) held.push(ev);
    return [];
  };
  return {
    onEvent(ev, parsed) {
      if (pending) return [];
      const r = inner.onEvent(ev, parsed);
      return Array.isArray(r) ? pass(r) : r.then(pass);
    },
    async end() {
      const r = await inner.end();
      if (pending) return [];
      const all = [...held, ...r];
      held = [];
      holding = false;
      return all;
    },
    reaskPending: () => pending,
  };
}

function guardTransform(s: ResponseSession, api: string): StreamTransform & { received(): number } {
  let ended = false;
  let scanMs = 0;
  const channels = new Map<string, TextChannel>();
  const channel = (k: string): TextChannel => {
    let c = channels.get(k);
    if (!c) {
      c = new TextChannel(s);
      channels.set(k, c);
    }
    return c;
  };
  const fallback = s.cfg.response.onBlock === 'fallback' ? s.cfg.response.fallbackMessage : undefined;
  const note = () => {
    for (const c of channels.values()) scanMs += c.scanMs, (c.scanMs = 0);
  };

  /** Resolves one completed tool call: the arguments to release, null to drop, or a block. */
  async function decide(call: { name: string; arguments: string }): Promise<{ args: string | null; block?: BlockInfo }> {
    const r = await s.checkCall(call);
    if (r.kind === 'allow') return { args: r.arguments };
    if (r.kind === 'drop') return { args: null };
    if (r.block.categories.includes('approval_required')) throw s.approvalError();
    return { args: null, block: r.block };
  }

  // ---- OpenAI chat / completions -------------------------------------------------------
  const assemblers = new Map<number, ToolCallAssembler>();
  const toolOut = new Map<number, number>();
  const finished = new Set<number>();
  const seen = new Set<number>();
  /** The last chunk with choices: the template of generated chunks is it without `choices` and `usage`. */
  let templateSrc: Record<string, unknown> | undefined;
  const template = (): Record<string, unknown> => {
    if (!templateSrc) return { object: api === 'chat' ? 'chat.completion.chunk' : 'text_completion' };
    const { choices: _c, usage: _u, ...t } = templateSrc;
    return t;
  };
  /** Choice channels by index (a plain array for the usual small indexes). */
  const choiceChannels: TextChannel[] = [];
  const choiceChannel = (index: number): TextChannel => (Number.isInteger(index) && index >= 0 && index < 64 ? (choiceChannels[index] ??= channel(`c:${index}`)) : channel(`c:${index}`));

  function chatBlock(b: BlockInfo): SseEvent[] {
    ended = true;
    s.blocked = b;
    const out: SseEvent[] = [];
    const idxs = [...seen].filter((i) => !finished.has(i));
    for (const index of idxs.length ? idxs : [0]) {
      const choice = api === 'chat' ? { index, delta: fallback ? { content: fallback } : {}, logprobs: null, finish_reason: 'content_filter' } : { index, text: fallback ?? '', logprobs: null, finish_reason: 'content_filter' };
      out.push(data({ ...template(), choices: [choice] }));
    }
    out.push({ data: '[DONE]' });
    return out;
  }

  async function emitCalls(index: number, calls: AssembledToolCall[], out: SseEvent[]): Promise<BlockInfo | undefined> {
    for (const call of calls) {
      const d = await decide({ name: call.name, arguments: call.arguments });
      if (d.block) return d.block;
      if (d.args === null) continue;
      const at = toolOut.get(index) ?? 0;
      toolOut.set(index, at + 1);
      out.push(data({ ...template(), choices: [{ index, delta: { tool_calls: [{ index: at, id: call.id, type: 'function', function: { name: call.name, arguments: d.args } }] }, logprobs: null, finish_reason: null }] }));
    }
    return undefined;
  }

  /** Whether a chunk needs the asynchronous path: a finish (end-of-text checks, the judge) or tool-call deltas. */
  function needsAsync(p: any): boolean {
    for (const c of p.choices as any[]) {
      if (c?.finish_reason) return true;
      if (api === 'chat' && c?.delta && typeof c.delta === 'object' && Array.isArray(c.delta.tool_calls)) return true;
    }
    return false;
  }

  /** One upstream chat/completions event; synchronous for the usual text-only chunk (no promise per delta). */
  function chatEvent(ev: SseEvent, p: any): SseEvent[] | Promise<SseEvent[]> {
    if (ev.data === '[DONE]') return chatDone(ev);
    if (!p || typeof p !== 'object' || !Array.isArray(p.choices) || p.choices.length === 0) return [ev];
    templateSrc = p;
    return needsAsync(p) ? chatChunk(p) : chatText(p);
  }

  async function chatDone(ev: SseEvent): Promise<SseEvent[]> {
    const out: SseEvent[] = [];
    for (const index of seen) {
      if (finished.has(index)) continue;
      const st = await choiceChannel(index).end();
      if (st.block) return chatBlock(st.block);
      if (st.emit) out.push(data({ ...template(), choices: [api === 'chat' ? { index, delta: { content: st.emit }, logprobs: null, finish_reason: null } : { index, text: st.emit, logprobs: null, finish_reason: null }] }));
    }
    out.push(ev);
    return out;
  }

  /** A choice's text (chat delta content or completions text) through its channel's scanner: what to release now, or the block. */
  function pushChoiceText(c: any): { index: number; ch: TextChannel; text: unknown; emit: string; block?: undefined } | { block: BlockInfo } {
    const index = typeof c?.index === 'number' ? c.index : 0;
    seen.add(index);
    const ch = choiceChannel(index);
    const text = api === 'chat' ? c?.delta?.content : c?.text;
    if (typeof text !== 'string' || text.length === 0) return { index, ch, text, emit: '' };
    const st = ch.push(text);
    if (st.block) return { block: st.block };
    return { index, ch, text, emit: st.emit };
  }

  /** A chunk without finishes or tool-call deltas: text goes through the choices' scanners, the rest is copied. */
  function chatText(p: any): SseEvent[] {
    // `p` without `choices` (the frame of the chunks sent for this one), built only when one is sent.
    let frame: Record<string, unknown> | undefined;
    const out: SseEvent[] = [];
    for (const c of p.choices as any[]) {
      const r = pushChoiceText(c);
      if (r.block) return [...out, ...chatBlock(r.block)];
      const { text, emit } = r;
      // Nothing released and nothing but text in the choice (the usual held-back delta): nothing to send.
      if (emit === '' && (api === 'completions' || onlyContent(c?.delta))) continue;
      const oc: any = { ...c };
      if (api === 'chat' && c?.delta && typeof c.delta === 'object') {
        oc.delta = { ...c.delta };
        if (typeof text === 'string') oc.delta.content = emit;
      } else if (api === 'completions') oc.text = emit;
      if (carriesText(api, oc)) out.push(data({ ...(frame ??= frameOf(p)), choices: [oc] }));
    }
    if (p.usage) out.push(data({ ...(frame ??= frameOf(p)), choices: [], usage: p.usage }));
    return out;
  }

  /** A chunk with a finish or tool-call deltas (may wait for the end-of-text checks and the tool-call checks). */
  async function chatChunk(p: any): Promise<SseEvent[]> {
    let frame: Record<string, unknown> | undefined;
    const out: SseEvent[] = [];
    for (const c of p.choices as any[]) {
      const r = pushChoiceText(c);
      if (r.block) return [...out, ...chatBlock(r.block)];
      const { index, ch, text, emit } = r;
      const fin = c?.finish_reason;
      if (emit === '' && !fin && (api === 'completions' || (api === 'chat' && onlyContent(c?.delta)))) continue;
      const oc: any = { ...c };
      const calls: AssembledToolCall[] = [];
      if (api === 'chat' && c?.delta && typeof c.delta === 'object') {
        oc.delta = { ...c.delta };
        if (Array.isArray(c.delta.tool_calls)) {
          let a = assemblers.get(index);
          if (!a) assemblers.set(index, (a = createToolCallAssembler()));
          calls.push(...a.pushOpenAI(c.delta.tool_calls));
          delete oc.delta.tool_calls;
        }
        if (typeof text === 'string') oc.delta.content = emit;
      } else if (api === 'completions') oc.text = emit;
      if (fin) {
        oc.finish_reason = null;
        const st = await ch.end();
        if (st.block) return [...out, ...chatBlock(st.block)];
        if (st.emit) {
          if (api === 'chat') oc.delta = { ...(oc.delta ?? {}), content: (typeof oc.delta?.content === 'string' ? oc.delta.content : '') + st.emit };
          else oc.text = (oc.text ?? '') + st.emit;
        }
        const a = assemblers.get(index);
        if (a) calls.push(...a.finish());
      }
      // The text/role part of this chunk (when it carries anything).
      if (carriesText(api, oc)) out.push(data({ ...(frame ??= frameOf(p)), choices: [oc] }));
      if (calls.length > 0) {
        const b = await emitCalls(index, calls, out);
        if (b) return [...out, ...chatBlock(b)];
      }
      if (fin) {
        finished.add(index);
        let reason = fin;
        if (reason === 'tool_calls' && (toolOut.get(index) ?? 0) === 0) reason = 'stop';
        out.push(data({ ...(frame ??= frameOf(p)), choices: [api === 'chat' ? { index, delta: {}, logprobs: null, finish_reason: reason } : { index, text: '', logprobs: null, finish_reason: reason }] }));
      }
    }
    if (p.usage) out.push(data({ ...(frame ??= frameOf(p)), choices: [], usage: p.usage }));
    return out;
  }

  // ---- Anthropic messages --------------------------------------------------------------
  const kind = new Map<number, 'text' | 'tool' | 'other'>();
  const outIdx = new Map<number, number>();
  const toolBuf = new Map<number, { block: any; json: string }>();
  let nextOut = 0;
  let toolsReleased = 0;
  let openText: number | undefined;

  function messagesBlock(b: BlockInfo): SseEvent[] {
    ended = true;
    s.blocked = b;
    const out: SseEvent[] = [];
    if (openText !== undefined) out.push(data({ type: 'content_block_stop', index: openText }, 'content_block_stop'));
    if (fallback) {
      const i = nextOut++;
      out.push(data({ type: 'content_block_start', index: i, content_block: { type: 'text', text: '' } }, 'content_block_start'));
      out.push(data({ type: 'content_block_delta', index: i, delta: { type: 'text_delta', text: fallback } }, 'content_block_delta'));
      out.push(data({ type: 'content_block_stop', index: i }, 'content_block_stop'));
    }
    out.push(data({ type: 'message_delta', delta: { stop_reason: 'refusal', stop_sequence: null }, usage: { output_tokens: 0 } }, 'message_delta'));
    out.push(data({ type: 'error', error: { type: 'invalid_request_error', message: `Output blocked by the content policy (${b.categories.join(', ')}).` } }, 'error'));
    return out;
  }

  async function messagesEvent(ev: SseEvent, p: any): Promise<SseEvent[]> {
    if (!p || typeof p !== 'object') return [ev];
    const type = p.type;
    const i = typeof p.index === 'number' ? p.index : 0;
    if (type === 'content_block_start') {
      const cb = p.content_block ?? {};
      if (cb.type === 'tool_use') {
        kind.set(i, 'tool');
        toolBuf.set(i, { block: cb, json: '' });
        return [];
      }
      const o = nextOut++;
      outIdx.set(i, o);
      if (cb.type === 'text') {
        kind.set(i, 'text');
        openText = o;
        const out: SseEvent[] = [data({ ...p, index: o, content_block: { ...cb, text: '' } }, ev.event ?? type)];
        if (typeof cb.text === 'string' && cb.text) {
          const st = channel(`b:${i}`).push(cb.text);
          if (st.block) return [...out, ...messagesBlock(st.block)];
          if (st.emit) out.push(data({ type: 'content_block_delta', index: o, delta: { type: 'text_delta', text: st.emit } }, 'content_block_delta'));
        }
        return out;
      }
      kind.set(i, 'other');
      return [data({ ...p, index: o }, ev.event ?? type)];
    }
    if (type === 'content_block_delta') {
      const k = kind.get(i);
      if (k === 'tool') {
        const b = toolBuf.get(i)!;
        if (typeof p.delta?.partial_json === 'string') b.json += p.delta.partial_json;
        if (b.json.length > 1_000_000) return messagesBlock({ guard: 'response:tools', categories: ['arguments_too_large'] });
        return [];
      }
      if (k === 'text' && typeof p.delta?.text === 'string') {
        const st = channel(`b:${i}`).push(p.delta.text);
        if (st.block) return messagesBlock(st.block);
        return st.emit ? [data({ ...p, index: outIdx.get(i), delta: { ...p.delta, text: st.emit } }, ev.event ?? type)] : [];
      }
      return [data({ ...p, index: outIdx.get(i) ?? i }, ev.event ?? type)];
    }
    if (type === 'content_block_stop') {
      const k = kind.get(i);
      if (k === 'text') {
        const st = await channel(`b:${i}`).end();
        if (st.block) return messagesBlock(st.block);
        const o = outIdx.get(i)!;
        openText = undefined;
        const out: SseEvent[] = [];
        if (st.emit) out.push(data({ type: 'content_block_delta', index: o, delta: { type: 'text_delta', text: st.emit } }, 'content_block_delta'));
        out.push(data({ ...p, index: o }, ev.event ?? type));
        return out;
      }
      if (k === 'tool') {
        const b = toolBuf.get(i)!;
        toolBuf.delete(i);
        const initial = b.block.input && typeof b.block.input === 'object' && Object.keys(b.block.input).length > 0 ? JSON.stringify(b.block.input) : '';
        const args = b.json.trim() === '' ? initial || '{}' : b.json;
        const d = await decide({ name: String(b.block.name ?? ''), arguments: args });
        if (d.block) return messagesBlock(d.block);
        if (d.args === null) return [];
        const o = nextOut++;
        toolsReleased++;
        return [
          data({ type: 'content_block_start', index: o, content_block: { ...b.block, input: {} } }, 'content_block_start'),
          data({ type: 'content_block_delta', index: o, delta: { type: 'input_json_delta', partial_json: d.args } }, 'content_block_delta'),
          data({ type: 'content_block_stop', index: o }, 'content_block_stop'),
        ];
      }
      return [data({ ...p, index: outIdx.get(i) ?? i }, ev.event ?? type)];
    }
    if (type === 'message_delta' && p.delta?.stop_reason === 'tool_use' && toolsReleased === 0) {
      return [data({ ...p, delta: { ...p.delta, stop_reason: 'end_turn' } }, ev.event ?? type)];
    }
    return [ev];
  }

  // ---- OpenAI Responses ----------------------------------------------------------------
  let snapshot: Record<string, unknown> = {};
  const fnBuf = new Map<number, { added: any; args: string }>();
  const outputMap = new Map<number, number>();
  let nextOutput = 0;
  const finalItems: unknown[] = [];
  const lastDelta = new Map<string, any>();

  function responsesBlock(b: BlockInfo): SseEvent[] {
    ended = true;
    s.blocked = b;
    const output = fallback ? [{ type: 'message', id: 'msg_portcullis', status: 'completed', role: 'assistant', content: [{ type: 'output_text', text: fallback, annotations: [] }] }] : [];
    return [data({ type: 'response.incomplete', response: { ...snapshot, status: 'incomplete', incomplete_details: { reason: 'content_filter' }, output } }, 'response.incomplete')];
  }

  const mapOut = (i: number): number => {
    let o = outputMap.get(i);
    if (o === undefined) outputMap.set(i, (o = nextOutput++));
    return o;
  };

  async function responsesEvent(ev: SseEvent, p: any): Promise<SseEvent[]> {
    if (!p || typeof p !== 'object') return [ev];
    const type = String(p.type ?? '');
    const name = ev.event ?? type;
    if ((type === 'response.created' || type === 'response.in_progress') && p.response) snapshot = { ...p.response, output: [] };
    const oi = typeof p.output_index === 'number' ? p.output_index : undefined;
    if (type === 'response.output_item.added' && p.item?.type === 'function_call' && oi !== undefined) {
      fnBuf.set(oi, { added: p.item, args: '' });
      return [];
    }
    if (oi !== undefined && fnBuf.has(oi)) {
      const b = fnBuf.get(oi)!;
      if (type === 'response.function_call_arguments.delta') b.args += String(p.delta ?? '');
      else if (type === 'response.function_call_arguments.done' && typeof p.arguments === 'string') b.args = p.arguments;
      else if (type === 'response.output_item.done') {
        fnBuf.delete(oi);
        const item = p.item ?? b.added;
        const args = typeof item.arguments === 'string' && item.arguments ? item.arguments : b.args || '{}';
        const d = await decide({ name: String(item.name ?? ''), arguments: args });
        if (d.block) return responsesBlock(d.block);
        if (d.args === null) return [];
        const o = mapOut(oi);
        const done = { ...item, arguments: d.args };
        finalItems.push(done);
        return [
          data({ type: 'response.output_item.added', output_index: o, item: { ...b.added, arguments: '' } }, 'response.output_item.added'),
          data({ type: 'response.function_call_arguments.delta', item_id: item.id, output_index: o, delta: d.args }, 'response.function_call_arguments.delta'),
          data({ type: 'response.function_call_arguments.done', item_id: item.id, output_index: o, arguments: d.args }, 'response.function_call_arguments.done'),
          data({ type: 'response.output_item.done', output_index: o, item: done }, 'response.output_item.done'),
        ];
      }
      return [];
    }
    const key = `${p.item_id}:${p.content_index ?? 0}`;
    const withOut = (o: any) => (oi !== undefined ? { ...o, output_index: mapOut(oi) } : o);
    if (type === 'response.output_text.delta') {
      lastDelta.set(key, p);
      const st = channel(`r:${key}`).push(String(p.delta ?? ''));
      if (st.block) return responsesBlock(st.block);
      return st.emit ? [data(withOut({ ...p, delta: st.emit }), name)] : [];
    }
    if (type === 'response.output_text.done') {
      const ch = channel(`r:${key}`);
      const st = await ch.end();
      if (st.block) return responsesBlock(st.block);
      const out: SseEvent[] = [];
      const tpl = lastDelta.get(key) ?? { type: 'response.output_text.delta', item_id: p.item_id, output_index: p.output_index, content_index: p.content_index };
      if (st.emit) out.push(data(withOut({ ...tpl, delta: st.emit }), 'response.output_text.delta'));
      out.push(data(withOut({ ...p, text: s.shadow ? p.text : ch.emitted }), name));
      return out;
    }
    if (type === 'response.content_part.done' && p.part && typeof p.part.text === 'string' && !s.shadow) {
      const ch = channels.get(`r:${key}`);
      return [data(withOut({ ...p, part: { ...p.part, text: ch ? ch.emitted : p.part.text } }), name)];
    }
    if (type === 'response.output_item.done' && p.item?.type === 'message' && Array.isArray(p.item.content)) {
      const item = s.shadow ? p.item : { ...p.item, content: p.item.content.map((c: any, ci: number) => (typeof c?.text === 'string' ? { ...c, text: channels.get(`r:${p.item.id}:${ci}`)?.emitted ?? c.text } : c)) };
      finalItems.push(item);
      return [data(withOut({ ...p, item }), name)];
    }
    if ((type === 'response.completed' || type === 'response.incomplete' || type === 'response.failed') && p.response) {
      if (s.shadow) return [ev];
      const response = { ...p.response, output: finalItems };
      if (typeof response.output_text === 'string') response.output_text = finalItems.flatMap((it: any) => (it?.type === 'message' ? it.content.filter((c: any) => c?.type === 'output_text').map((c: any) => c.text) : [])).join('');
      return [data({ ...p, response }, name)];
    }
    return oi !== undefined ? [data(withOut(p), name)] : [ev];
  }

  return {
    onEvent(ev, parsed) {
      if (ended) return [];
      if (api === 'chat' || api === 'completions') return chatEvent(ev, parsed);
      if (api === 'messages') return messagesEvent(ev, parsed);
      if (api === 'responses') return responsesEvent(ev, parsed);
      return [ev];
    },
    async end() {
      note();
      if (scanMs > 0) s.note('response:stream', 'allow', [], 0, scanMs, 'stream');
      s.finish();
      return [];
    },
    received() {
      let n = 0;
      for (const c of channels.values()) n += c.received;
      return n;
    },
  };
}
