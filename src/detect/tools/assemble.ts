/** Pure accumulators that rebuild tool calls from streamed deltas (OpenAI and Anthropic). */

/** A tool call rebuilt from a stream. */
export interface AssembledToolCall {
  /** Position of the call in the message (OpenAI `index`, Anthropic content-block index). */
  index: number;
  id: string;
  name: string;
  /** The concatenated argument JSON text. */
  arguments: string;
  /** Whether the stream said this call is finished (Anthropic `content_block_stop`, or `finish()`). */
  complete: boolean;
}

/** One element of an OpenAI `choices[].delta.tool_calls` array. */
export interface OpenAIToolCallDelta {
  index: number;
  id?: string;
  type?: string;
  function?: { name?: string; arguments?: string };
}

/** The Anthropic streaming events that concern tool use. */
export type AnthropicToolEvent =
  | { type: 'content_block_start'; index: number; content_block: { type: string; id?: string; name?: string; input?: unknown } }
  | { type: 'content_block_delta'; index: number; delta: { type: string; partial_json?: string } }
  | { type: 'content_block_stop'; index: number }
  | { type: string; index?: number };

/** An accumulator of streamed tool-call fragments. */
export interface ToolCallAssembler {
  /** Adds OpenAI `tool_calls` deltas; returns calls completed by this push (an earlier index finished when a later one starts). */
  pushOpenAI(deltas: readonly OpenAIToolCallDelta[]): AssembledToolCall[];
  /** Adds one Anthropic stream event; returns the call it completed, if any. */
  pushAnthropic(event: AnthropicToolEvent): AssembledToolCall[];
  /** Marks every call complete (end of stream / finish_reason) and returns those not returned before. */
  finish(): AssembledToolCall[];
  /** Every call seen so far, in index order. */
  calls(): AssembledToolCall[];
}

/** Limits of the assembler (hostile streams). */
export interface AssemblerLimits {
  /** Most calls per message. Default 128. */
  maxCalls?: number;
  /** Longest arguments text per call. Default 1 000 000. */
  maxArgumentChars?: number;
}

/** Creates an accumulator for streamed tool calls. Throws a RangeError when a limit is exceeded. */
export function createToolCallAssembler(limits: AssemblerLimits = {}): ToolCallAssembler {
  const maxCalls = limits.maxCalls ?? 128;
  const maxArgs = limits.maxArgumentChars ?? 1_000_000;
  const byIndex = new Map<number, AssembledToolCall>();
  const released = new Set<number>();

  function get(index: number): AssembledToolCall {
    let c = byIndex.get(index);
    if (!c) {
      if (byIndex.size >= maxCalls) throw new RangeError('too many tool calls in one message');
      c = { index, id: '', name: '', arguments: '', complete: false };
      byIndex.set(index, c);
    }
    return c;
  }
  function append(c: AssembledToolCall, s: string): void {
    if (c.arguments.length + s.length > maxArgs) throw new RangeError('tool-call arguments too long');
    c.arguments += s;
  }
  function take(list: AssembledToolCall[]): AssembledToolCall[] {
    const out: AssembledToolCall[] = [];
    for (const c of list) {
      if (c.complete && !released.has(c.index)) {
        released.add(c.index);
        out.push({ ...c });
      }
    }
    return out;
  }

  return {
    pushOpenAI(deltas) {
      const done: AssembledToolCall[] = [];
      for (const d of deltas) {
        if (typeof d.index !== 'number' || !Number.isInteger(d.index) || d.index < 0) throw new RangeError('tool-call delta without a valid index');
        const isNew = !byIndex.has(d.index);
        const c = get(d.index);
        if (isNew) {
          for (const other of byIndex.values()) if (other.index < d.index && !other.complete) {
            other.complete = true;
            done.push(other);
          }
        }
        if (d.id) c.id = d.id;
        if (d.function?.name) c.name += d.function.name;
        if (d.function?.arguments) append(c, d.function.arguments);
      }
      return take(done);
    },
    pushAnthropic(event) {
      if (event.type === 'content_block_start') {
        const e = event as Extract<AnthropicToolEvent, { type: 'content_block_start' }>;
        if (e.content_block?.type === 'tool_use' || e.content_block?.type === 'server_tool_use') {
          const c = get(e.index);
          c.id = e.content_block.id ?? '';
          c.name = e.content_block.name ?? '';
          const input = e.content_block.input;
          if (input && typeof input === 'object' && Object.keys(input).length > 0) append(c, JSON.stringify(input));
        }
        return [];
      }
      if (event.type === 'content_block_delta') {
        const e = event as Extract<AnthropicToolEvent, { type: 'content_block_delta' }>;
        if (e.delta?.type === 'input_json_delta' && byIndex.has(e.index)) append(get(e.index), e.delta.partial_json ?? '');
        return [];
      }
      if (event.type === 'content_block_stop' && typeof event.index === 'number') {
        const c = byIndex.get(event.index);
        if (c) {
          c.complete = true;
          return take([c]);
        }
      }
      return [];
    },
    finish() {
      for (const c of byIndex.values()) c.complete = true;
      return take([...byIndex.values()].sort((a, b) => a.index - b.index));
    },
    calls() {
      return [...byIndex.values()].sort((a, b) => a.index - b.index).map((c) => ({ ...c }));
    },
  };
}

/** Rebuilds the complete tool calls from a whole list of OpenAI `tool_calls` deltas. */
export function assembleToolCallDeltas(deltas: readonly OpenAIToolCallDelta[]): AssembledToolCall[] {
  const a = createToolCallAssembler();
  a.pushOpenAI(deltas);
  a.finish();
  return a.calls();
}
