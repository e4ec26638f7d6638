/**
 * The demo upstream as a standalone OpenAI/Anthropic-compatible HTTP server
 * (`portcullis demo`), for scanning a model "directly", without the gateway in front.
 * No authentication: bind it to loopback only.
 */
import { createServer, type Server } from 'node:http';
import { randomBytes } from 'node:crypto';
import { demoRespond, DEMO_MODELS } from './demo.js';
import type { Api } from './types.js';

const PATHS: Record<string, Api> = {
  '/v1/chat/completions': 'chat',
  '/v1/completions': 'completions',
  '/v1/embeddings': 'embeddings',
  '/v1/responses': 'responses',
  '/v1/messages': 'messages',
};

/** Starts the demo upstream; resolves with its URL. */
export async function startDemoServer(opts: { port?: number; host?: string } = {}): Promise<{ server: Server; url: string; close(): Promise<void> }> {
  const server = createServer(async (req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (req.method === 'GET' && path === '/v1/models') {
      return send(200, { object: 'list', data: DEMO_MODELS.map((id) => ({ id, object: 'model', created: 1_700_000_000, owned_by: 'demo' })) });
    }
    const api = PATHS[path];
    if (req.method !== 'POST' || !api) return send(404, { error: { message: 'Unknown request URL', type: 'invalid_request_error', param: null, code: 'unknown_url' } });
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const c of req) {
      size += (c as Buffer).length;
      if (size > 8 * 1024 * 1024) return send(413, { error: { message: 'Request too large', type: 'invalid_request_error', param: null, code: null } });
      chunks.push(c as Buffer);
    }
    let body: Record<string, any>;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      if (!body || typeof body !== 'object') throw new Error();
    } catch {
      return send(400, { error: { message: 'Invalid JSON body', type: 'invalid_request_error', param: null, code: null } });
    }
    const ac = new AbortController();
    res.once('close', () => ac.abort());
    try {
      const up = demoRespond(api, body, { api, body, stream: body.stream === true, signal: ac.signal, requestId: randomBytes(6).toString('hex') });
      res.writeHead(up.status, { 'content-type': String(up.headers['content-type']) });
      for await (const chunk of up.body) res.write(chunk);
      res.end();
    } catch {
      send(404, { error: { message: `The model '${String(body.model).slice(0, 100)}' does not exist`, type: 'invalid_request_error', param: 'model', code: 'model_not_found' } });
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => resolve());
  });
  const addr = server.address() as { port: number; address: string };
  const host = addr.address.includes(':') ? `[${addr.address}]` : addr.address;
  return {
    server,
    url: `http://${host}:${addr.port}/v1`,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
