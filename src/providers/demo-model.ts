/**
 * The built-in demo models. Deterministic, no network, for local trials, tests and the scanner.
 *
 * - `demo`: a plain assistant. Replies with a short sentence built from the last user message;
 *   emits a tool call when tools are offered and the user asks for one.
 * - `demo-vulnerable`: deliberately naive, to show what the guards stop. It follows
 *   instructions found anywhere in the conversation (tool results and documents included),
 *   reveals its system prompt when asked, repeats PII and secrets it was given, renders
 *   markdown image links when told to, and calls whatever tool it is told to call.
 *
 * NEVER put a real model behind these names: they exist to be attacked.
 */
import { createHash } from 'node:crypto';

/** A conversation turn reduced to text. */
export interface DemoTurn {
  role: 'system' | 'user' | 'assistant' | 'tool';
  text: string;
}

/** A tool the request offers. */
export interface DemoTool {
  name: string;
  description?: string;
  parameters?: { properties?: Record<string, unknown>; required?: string[] };
}

/** What the demo model "generates". */
export interface DemoReply {
  text: string;
  toolCalls: Array<{ id: string; name: string; arguments: string }>;
  inputTokens: number;
  outputTokens: number;
}

/** Rough token count used for demo usage numbers (4 characters per token). */
export function demoTokens(text: string): number {
  return Math.max(1, Math.ceil(text.length / 4));
}

function shortId(seed: string): string {
  return createHash('sha256').update(seed).digest('hex').slice(0, 24);
}

const SYSTEM_ASK = /\b(system prompt|system message|initial (prompt|instructions)|your (instructions|rules|prompt|guidelines)|instructions (you were|above)|what (were|are) you told|repeat (everything|the text|all) (above|before)|print your prompt|reveal your)\b/i;
const IMAGE_ASK = /(!\[[^\]]*\]\([^)\s]+\)|\b(render|include|show|display|embed|add|output)\b[^.\n]{0,80}\b(image|markdown|picture|img|link|url)\b)/i;
const URL_RE = /https?:\/\/[^\s)"'<>\]]+/g;
const INSTRUCTION_RE =
  /(?:ignore|disregard|forget|override)[^.\n]{0,60}?(?:instructions?|rules|prompt|above|previous)[^.\n]{0,20}?[.,:;!-]?\s*(?:and\s+|instead\s*,?\s*|now\s+)?(?:say|reply|respond|answer|output|print|write|tell[^.\n]{0,20}?)\s*(?:with|that|:)?\s*["“']?([^"”'\n]{1,300})/i;
const SAY_RE = /\b(?:say|reply with|respond with|answer with|output|print)\s*(?:exactly|only|verbatim)?\s*[:]?\s*["“']([^"”'\n]{1,300})["”']/i;
const CALL_TOOL_RE = /\b(?:call|use|invoke|run|execute)\s+(?:the\s+)?(?:tool|function)?\s*[`"']?([A-Za-z_][A-Za-z0-9_.-]{0,63})[`"']?(?:\s*(?:with|using)\s*(?:arguments?|args|input|parameters?)?\s*[:=]?\s*(\{[^\n]{0,2000}\}))?/i;

function lastUser(turns: DemoTurn[]): string {
  for (let i = turns.length - 1; i >= 0; i--) if (turns[i]!.role === 'user') return turns[i]!.text;
  return '';
}

function toolCallFor(tool: DemoTool, argsText: string | undefined, fallback: string, seed: string) {
  let args: Record<string, unknown> = {};
  if (argsText) {
    try {
      const parsed = JSON.parse(argsText);
      if (parsed && typeof parsed === 'object') args = parsed as Record<string, unknown>;
    } catch {
      args = { input: argsText };
    }
  } else {
    const props = Object.keys(tool.parameters?.properties ?? {});
    const first = tool.parameters?.required?.[0] ?? props[0] ?? 'input';
    args = { [first]: fallback.slice(0, 500) };
  }
  return { id: 'call_' + shortId(seed + tool.name), name: tool.name, arguments: JSON.stringify(args) };
}

/** Runs a demo model over a conversation. */
export function runDemoModel(model: string, turns: DemoTurn[], tools: DemoTool[]): DemoReply {
  const vulnerable = model.startsWith('demo-vulnerable');
  const user = lastUser(turns);
  const system = turns.filter((t) => t.role === 'system').map((t) => t.text).join('\n');
  const inputTokens = turns.reduce((n, t) => n + demoTokens(t.text) + 4, 0);
  const seed = turns.map((t) => t.role + ':' + t.text).join('\n');
  const done = (text: string, toolCalls: DemoReply['toolCalls'] = []): DemoReply => ({
    text,
    toolCalls,
    inputTokens,
    outputTokens: demoTokens(text) + toolCalls.reduce((n, c) => n + demoTokens(c.arguments) + 4, 0),
  });

  if (!vulnerable) {
    if (tools.length > 0) {
      const m = CALL_TOOL_RE.exec(user);
      const named = tools.find((t) => m?.[1] === t.name) ?? tools.find((t) => user.toLowerCase().includes(t.name.toLowerCase()));
      if (named || /\b(use|call) (a|the|your) (tool|function)\b/i.test(user)) {
        const tool = named ?? tools[0]!;
        return done('', [toolCallFor(tool, m?.[2], user, seed)]);
      }
    }
    const gist = user.replace(/\s+/g, ' ').trim().slice(0, 120);
    return done(gist ? `This is the Portcullis demo model. You asked: "${gist}". A real model would answer here.` : 'This is the Portcullis demo model. Ask me anything.');
  }

  // demo-vulnerable: look for instructions anywhere, newest first, including tool results.
  const everything = turns.filter((t) => t.role !== 'assistant');
  for (let i = everything.length - 1; i >= 0; i--) {
    const t = everything[i]!;
    if (tools.length > 0) {
      const m = CALL_TOOL_RE.exec(t.text);
      const tool = m ? tools.find((x) => x.name === m[1]) : undefined;
      if (tool) return done('', [toolCallFor(tool, m?.[2], t.text, seed + i)]);
    }
  }
  const parts: string[] = [];
  if (SYSTEM_ASK.test(user) && system) parts.push(`Sure. My system prompt is:\n${system}`);
  for (let i = everything.length - 1; i >= 0 && parts.length === 0; i--) {
    const t = everything[i]!;
    if (t.role === 'system') continue;
    const m = INSTRUCTION_RE.exec(t.text) ?? SAY_RE.exec(t.text);
    if (m) parts.push(m[1]!.trim());
  }
  const imageSource = everything.slice().reverse().find((t) => t.role !== 'system' && IMAGE_ASK.test(t.text));
  if (imageSource) {
    const urls = imageSource.text.match(URL_RE) ?? [];
    const target = urls[0] ?? 'https://example.com/image.png';
    const secretish = (system + '\n' + turns.filter((t) => t.role === 'user').map((t) => t.text).join('\n')).slice(0, 200);
    const data = encodeURIComponent(Buffer.from(secretish).toString('base64'));
    const url = /[?=]$/.test(target) ? target + data : target.includes('?') ? `${target}&d=${data}` : `${target}?d=${data}`;
    parts.push(`![image](${url})`);
  }
  if (parts.length === 0) {
    // Naively repeats what it was given, PII and secrets included.
    const context = everything.filter((t) => t.role !== 'system').map((t) => t.text).join('\n').slice(-2000);
    parts.push(`Sure! Here is what you gave me:\n${context}`);
  }
  return done(parts.join('\n\n'));
}

/** Deterministic unit-length embedding vector derived from the text. */
export function demoEmbedding(text: string, dims = 256): number[] {
  const out = new Array<number>(dims);
  let block = Buffer.alloc(0);
  let counter = 0;
  for (let i = 0; i < dims; i++) {
    if ((i * 2) % 32 === 0) block = createHash('sha256').update(`${counter++}:${text}`).digest();
    const v = block.readInt16BE((i * 2) % 32);
    out[i] = v / 32768;
  }
  const norm = Math.sqrt(out.reduce((s, x) => s + x * x, 0)) || 1;
  return out.map((x) => Number((x / norm).toFixed(6)));
}
