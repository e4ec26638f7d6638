/**
 * Response guards on whole (non-streamed) bodies of every API: each assistant output text
 * (every choice / content block / output item) is checked and rewritten, each tool call is
 * validated; a block becomes a `content_filter` finish, the fallback message, or one re-ask.
 */
import { sanitizeHtml } from '../../detect/exfil/index.js';
import type { BlockInfo, ResponseSession } from './session.js';

interface TextSlot {
  get(): string;
  set(v: string): void;
}

interface CallSlot {
  name: string;
  arguments: string;
  set(args: string): void;
  drop(): void;
}

/** Collects the output texts and tool calls of a body, with setters into it (the body is mutated). */
function slotsOf(api: string, body: any): { texts: TextSlot[]; calls: CallSlot[]; finalize(): void } {
  const texts: TextSlot[] = [];
  const calls: CallSlot[] = [];
  const drops: Array<() => void> = [];
  const textSlot = (o: any, k: string | number): TextSlot => ({ get: () => o[k], set: (v) => (o[k] = v) });
  if (api === 'chat' && Array.isArray(body.choices)) {
    for (const c of body.choices) {
      const m = c?.message;
      if (!m || typeof m !== 'object') continue;
      if (typeof m.content === 'string') texts.push(textSlot(m, 'content'));
      else if (Array.isArray(m.content)) m.content.forEach((p: any) => p && typeof p.text === 'string' && texts.push(textSlot(p, 'text')));
      if (Array.isArray(m.tool_calls)) {
        const dropped = new Set<any>();
        for (const t of m.tool_calls) {
          if (!t?.function || typeof t.function.name !== 'string') continue;
          calls.push({ name: t.function.name, arguments: typeof t.function.arguments === 'string' ? t.function.arguments : JSON.stringify(t.function.arguments ?? {}), set: (a) => (t.function.arguments = a), drop: () => dropped.add(t) });
        }
        drops.push(() => {
          if (dropped.size === 0) return;
          m.tool_calls = m.tool_calls.filter((t: any) => !dropped.has(t));
          if (m.tool_calls.length === 0) {
            delete m.tool_calls;
            if (c.finish_reason === 'tool_calls') c.finish_reason = 'stop';
          }
        });
      }
    }
  } else if (api === 'completions' && Array.isArray(body.choices)) {
    for (const c of body.choices) if (c && typeof c.text === 'string') texts.push(textSlot(c, 'text'));
  } else if (api === 'messages' && Array.isArray(body.content)) {
    const dropped = new Set<any>();
    for (const b of body.content) {
      if (b?.type === 'text' && typeof b.text === 'string') texts.push(textSlot(b, 'text'));
      else if (b?.type === 'tool_use' && typeof b.name === 'string') {
        calls.push({
          name: b.name,
          arguments: JSON.stringify(b.input ?? {}),
          set: (a) => {
            try {
              b.input = JSON.parse(a);
            } catch {
              /* validated JSON only */
            }
          },
          drop: () => dropped.add(b),
        });
      }
    }
    drops.push(() => {
      if (dropped.size === 0) return;
      body.content = body.content.filter((b: any) => !dropped.has(b));
      if (body.stop_reason === 'tool_use' && !body.content.some((b: any) => b?.type === 'tool_use')) body.stop_reason = 'end_turn';
    });
  } else if (api === 'responses' && Array.isArray(body.output)) {
    const dropped = new Set<any>();
    for (const it of body.output) {
      if (it?.type === 'message' && Array.isArray(it.content)) {
        for (const p of it.content) if (p && typeof p.text === 'string') texts.push(textSlot(p, 'text'));
      } else if (it?.type === 'function_call' && typeof it.name === 'string') {
        calls.push({ name: it.name, arguments: typeof it.arguments === 'string' ? it.arguments : '{}', set: (a) => (it.arguments = a), drop: () => dropped.add(it) });
      }
    }
    drops.push(() => {
      if (dropped.size > 0) body.output = body.output.filter((it: any) => !dropped.has(it));
    });
  }
  return {
    texts,
    calls,
    finalize() {
      for (const d of drops) d();
      if (api === 'responses' && typeof body.output_text === 'string') {
        body.output_text = (body.output ?? []).flatMap((it: any) => (it?.type === 'message' && Array.isArray(it.content) ? it.content.filter((p: any) => p?.type === 'output_text').map((p: any) => p.text) : [])).join('');
      }
    },
  };
}

/** Rewrites a body into its blocked form: `content_filter` finish (error) or the fallback message. */
export function blockedBody(api: string, body: any, mode: 'error' | 'fallback', fallback: string): any {
  const b = structuredClone(body);
  const fb = mode === 'fallback';
  if (api === 'chat' && Array.isArray(b.choices)) {
    for (const c of b.choices) {
      c.message = { role: 'assistant', content: fb ? fallback : '', refusal: null };
      c.finish_reason = fb ? 'stop' : 'content_filter';
    }
  } else if (api === 'completions' && Array.isArray(b.choices)) {
    for (const c of b.choices) {
      c.text = fb ? fallback : '';
      c.finish_reason = fb ? 'stop' : 'content_filter';
    }
  } else if (api === 'messages') {
    b.content = fb ? [{ type: 'text', text: fallback }] : [];
    b.stop_reason = fb ? 'end_turn' : 'refusal';
    b.stop_sequence = null;
  } else if (api === 'responses') {
    b.output = fb ? [{ type: 'message', id: 'msg_portcullis', status: 'completed', role: 'assistant', content: [{ type: 'output_text', text: fallback, annotations: [] }] }] : [];
    if (typeof b.output_text === 'string') b.output_text = fb ? fallback : '';
    b.status = fb ? 'completed' : 'incomplete';
    b.incomplete_details = fb ? null : { reason: 'content_filter' };
  }
  return b;
}

/** The outcome of guarding a body. */
export interface BodyOutcome {
  body: Record<string, unknown>;
  block?: BlockInfo;
  /** True when some text or call was rewritten or dropped. */
  changed: boolean;
  /** Set when the output was blocked, re-asked, and the second answer passed unchanged (it is sent as the upstream made it). */
  reaskPassed?: boolean;
}

/**
 * Checks and rewrites a whole response body. Returns the original body in shadow mode. Throws
 * the approval error when a call needs a human and no approved ticket covers it.
 */
export async function guardBody(s: ResponseSession, api: string, original: Record<string, unknown>, opts: { reask?: () => Promise<Record<string, unknown> | undefined>; allowReask?: boolean } = {}): Promise<BodyOutcome> {
  const body = structuredClone(original) as any;
  const slots = slotsOf(api, body);
  let block: BlockInfo | undefined;
  let changed = false;
  for (const t of slots.texts) {
    const before = t.get();
    const r = await s.checkText(before);
    if (!r.ok) {
      block = r.block;
      break;
    }
    let text = r.text;
    if (s.cfg.response.exfil.enabled && s.cfg.response.exfil.sanitizeHtml && /</.test(text)) text = sanitizeHtml(text);
    if (text !== before) {
      t.set(text);
      changed = true;
    }
  }
  if (!block) {
    for (const c of slots.calls) {
      const r = await s.checkCall({ name: c.name, arguments: c.arguments });
      if (r.kind === 'allow') {
        if (r.arguments !== c.arguments) {
          c.set(r.arguments);
          changed = true;
        }
      } else if (r.kind === 'drop') {
        c.drop();
        changed = true;
      } else if (r.block.categories.includes('approval_required')) {
        continue; // every call gets its ticket; the error below lists them all
      } else {
        block = r.block;
        break;
      }
    }
  }
  if (!block && s.pendingTickets.length > 0) throw s.approvalError();
  if (s.shadow) return { body: original, changed: false, ...(block ? { block } : {}) };
  if (!block) {
    if (!changed) return { body: original, changed: false };
    slots.finalize();
    return { body, changed: true };
  }
  const r = s.cfg.response;
  if (r.onBlock === 'reask' && opts.allowReask !== false && opts.reask && !block.failed) {
    const again = await opts.reask();
    if (again) {
      const second = await guardBody(s, api, again, { allowReask: false });
      if (!second.block) return { body: second.body, changed: true, block, ...(second.changed ? {} : { reaskPassed: true }) };
      return { body: blockedBody(api, again, 'error', r.fallbackMessage), changed: true, block: second.block };
    }
  }
  return { body: blockedBody(api, original, r.onBlock === 'fallback' ? 'fallback' : 'error', r.fallbackMessage), changed: true, block };
}
