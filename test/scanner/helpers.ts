/** Test helpers for the scanner: real mock HTTP targets on port 0 and a CLI runner. */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { spawn } from 'node:child_process';
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

type Handler = (req: IncomingMessage, res: ServerResponse, body: string, mock: Mock) => void | Promise<void>;

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
  return startMock((req, res, body) => {
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
