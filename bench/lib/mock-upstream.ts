/**
 * A fast OpenAI-compatible mock upstream for benchmarks (plain node:http, responses built once).
 *
 * - `POST …/chat/completions` non-stream: a ~1 KiB chat completion.
 * - `stream: true`: 20 SSE chunks (each its own write), a finish chunk, a usage chunk when
 *   `stream_options.include_usage` is set, then `[DONE]`.
 * - Model names containing `slow` space the 20 chunks `SLOW_CHUNK_MS` apart, so a stream stays
 *   open for a while (used to hold many concurrent streams open while sampling memory).
 *
 * Run as a script (`node --import tsx bench/lib/mock-upstream.ts [port]`) it listens on
 * 127.0.0.1 and prints one JSON line `{"port":N}` when ready.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';

/** Number of content chunks in every streamed response. */
export const STREAM_CHUNKS = 20;
/** Gap between chunks for `*slow*` models (ms). */
export const SLOW_CHUNK_MS = 100;

const CONTENT = 'The quick brown fox jumps over the lazy dog while the gateway measures its own overhead. '.repeat(9).slice(0, 760);

function completionBody(model: string): Buffer {
  return Buffer.from(
    JSON.stringify({
      id: 'chatcmpl-bench000000000000000000000000',
      object: 'chat.completion',
      created: 1_700_000_000,
      model,
      system_fingerprint: 'fp_bench',
      choices: [{ index: 0, message: { role: 'assistant', content: CONTENT, refusal: null }, logprobs: null, finish_reason: 'stop' }],
      usage: { prompt_tokens: 240, completion_tokens: 160, total_tokens: 400 },
    }),
  );
}

function chunkLine(model: string, delta: Record<string, unknown>, finish: string | null, extra: Record<string, unknown> = {}): string {
  return `data: ${JSON.stringify({ id: 'chatcmpl-bench', object: 'chat.completion.chunk', created: 1_700_000_000, model, choices: [{ index: 0, delta, finish_reason: finish }], ...extra })}\n\n`;
}

function streamPieces(model: string, includeUsage: boolean): string[] {
  const text = CONTENT.slice(0, 400);
  const out: string[] = [];
  for (let i = 0; i < STREAM_CHUNKS; i++) {
    const piece = text.slice(Math.floor((i * text.length) / STREAM_CHUNKS), Math.floor(((i + 1) * text.length) / STREAM_CHUNKS));
    out.push(chunkLine(model, i === 0 ? { role: 'assistant', content: piece } : { content: piece }, null));
  }
  let tail = chunkLine(model, {}, 'stop');
  if (includeUsage) tail += `data: ${JSON.stringify({ id: 'chatcmpl-bench', object: 'chat.completion.chunk', created: 1_700_000_000, model, choices: [], usage: { prompt_tokens: 240, completion_tokens: 80, total_tokens: 320 } })}\n\n`;
  out.push(tail + 'data: [DONE]\n\n');
  return out;
}

/** A started mock. */
export interface BenchMock {
  server: Server;
  port: number;
  /** Requests served so far. */
  served(): number;
  close(): Promise<void>;
}

/** Starts the mock on 127.0.0.1 (`port` 0 = any free port). */
export async function startBenchMock(port = 0): Promise<BenchMock> {
  const cache = new Map<string, Buffer>();
  const streamCache = new Map<string, string[]>();
  let served = 0;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      served++;
      if (req.method !== 'POST' || !req.url?.endsWith('/chat/completions')) {
        res.writeHead(404, { 'content-type': 'application/json' });
        res.end('{"error":{"message":"not found","type":"invalid_request_error","code":null}}');
        return;
      }
      let body: { model?: unknown; stream?: unknown; stream_options?: { include_usage?: unknown } };
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        res.writeHead(400, { 'content-type': 'application/json' });
        res.end('{"error":{"message":"bad json","type":"invalid_request_error","code":null}}');
        return;
      }
      const model = typeof body.model === 'string' ? body.model.slice(0, 64) : 'mock';
      if (body.stream === true) {
        const usage = body.stream_options?.include_usage === true;
        const key = `${model}|${usage}`;
        let pieces = streamCache.get(key);
        if (!pieces) streamCache.set(key, (pieces = streamPieces(model, usage)));
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
        if (!model.includes('slow')) {
          for (let i = 0; i < pieces.length - 1; i++) res.write(pieces[i]);
          res.end(pieces[pieces.length - 1]);
          return;
        }
        let i = 0;
        const tick = () => {
          if (res.destroyed) return;
          if (i === pieces!.length - 1) return void res.end(pieces![i]);
          res.write(pieces![i++]);
          setTimeout(tick, SLOW_CHUNK_MS);
        };
        tick();
        return;
      }
      let buf = cache.get(model);
      if (!buf) cache.set(model, (buf = completionBody(model)));
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': buf.length });
      res.end(buf);
    });
  });
  server.keepAliveTimeout = 60_000;
  server.maxRequestsPerSocket = 0;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  return {
    server,
    port: (server.address() as AddressInfo).port,
    served: () => served,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const m = await startBenchMock(Number(process.argv[2] ?? 0));
  process.stdout.write(JSON.stringify({ port: m.port }) + '\n');
  const stop = () => void m.close().then(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
