/**
 * Test helper: a local OpenAI/Anthropic-compatible mock upstream (real HTTP on port 0) whose
 * behaviour each test scripts. Records requests and counts in-flight ones.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';

/** One recorded request. */
export interface Recorded {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: any;
}

/** A handler: return nothing to use the default reply. */
export type MockHandler = (req: Recorded, res: ServerResponse) => void | Promise<void>;

/** A started mock. */
export interface MockUpstream {
  url: string;
  requests: Recorded[];
  inFlight: number;
  maxInFlight: number;
  /** Aborted requests seen (client went away). */
  aborts: number;
  handler: MockHandler;
  close(): Promise<void>;
}

/** Writes a default OpenAI chat completion or an SSE stream of `chunks` pieces. */
export function defaultChat(req: Recorded, res: ServerResponse, chunks = 3, text = 'Hello from the mock upstream.'): void {
  const model = req.body?.model ?? 'mock';
  if (req.body?.stream) {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    const pieces = Array.from({ length: chunks }, (_, i) => text.slice(Math.floor((i * text.length) / chunks), Math.floor(((i + 1) * text.length) / chunks)));
    for (const p of pieces) res.write(`data: ${JSON.stringify({ id: 'c1', object: 'chat.completion.chunk', created: 1, model, choices: [{ index: 0, delta: { content: p }, finish_reason: null }] })}\n\n`);
    res.write(`data: ${JSON.stringify({ id: 'c1', object: 'chat.completion.chunk', created: 1, model, choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] })}\n\n`);
    if (req.body?.stream_options?.include_usage) res.write(`data: ${JSON.stringify({ id: 'c1', object: 'chat.completion.chunk', created: 1, model, choices: [], usage: { prompt_tokens: 11, completion_tokens: 7, total_tokens: 18 } })}\n\n`);
    res.end('data: [DONE]\n\n');
    return;
  }
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ id: 'c1', object: 'chat.completion', created: 1, model, choices: [{ index: 0, message: { role: 'assistant', content: text }, finish_reason: 'stop' }], usage: { prompt_tokens: 11, completion_tokens: 7, total_tokens: 18 } }));
}

/** Starts a mock upstream. */
export async function startMockUpstream(handler?: MockHandler): Promise<MockUpstream> {
  const mock: MockUpstream = {
    url: '',
    requests: [],
    inFlight: 0,
    maxInFlight: 0,
    aborts: 0,
    handler: handler ?? ((req, res) => defaultChat(req, res)),
    close: async () => {},
  };
  const server = createServer(async (req, res) => {
    mock.inFlight++;
    mock.maxInFlight = Math.max(mock.maxInFlight, mock.inFlight);
    let finished = false;
    res.once('finish', () => (finished = true));
    res.once('close', () => {
      mock.inFlight--;
      if (!finished) mock.aborts++;
    });
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    let body: any = undefined;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      body = text;
    }
    const rec: Recorded = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body };
    mock.requests.push(rec);
    try {
      await mock.handler(rec, res);
    } catch {
      if (!res.headersSent) res.writeHead(500);
      res.end();
    }
  });
  server.keepAliveTimeout = 1000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as { port: number }).port;
  mock.url = `http://127.0.0.1:${port}`;
  mock.close = () =>
    new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    });
  return mock;
}
