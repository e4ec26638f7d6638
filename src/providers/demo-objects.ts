/**
 * The demo upstream's object endpoints, in memory: files (multipart upload, content), batches,
 * fine-tuning jobs, vector stores and stored responses, in OpenAI's shapes. Like a real provider
 * behind one upstream key, it knows nothing about tenants: the gateway does the ownership checks.
 * Demo batches complete at once (their output file holds demo chat replies) unless created with
 * `metadata.demo_hold: "true"`, which keeps them `in_progress` so they can be cancelled.
 */
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import type { RawUpstreamRequest, UpstreamResponse } from './types.js';

interface DemoFile {
  meta: { id: string; object: 'file'; bytes: number; created_at: number; filename: string; purpose: string; status: 'processed'; expires_at: null; status_details: null };
  content: Buffer;
}

type Obj = Record<string, unknown> & { id: string; created_at: number };

/** Largest number of objects kept per kind (oldest evicted first), so the demo stays bounded. */
const MAX_PER_KIND = 5_000;

const files = new Map<string, DemoFile>();
const batches = new Map<string, Obj>();
const jobs = new Map<string, Obj>();
const stores = new Map<string, Obj>();
const responses = new Map<string, Obj>();
const order = new Map<string, number>();
let seq = 0;

function put<V>(map: Map<string, V>, id: string, v: V): void {
  map.set(id, v);
  order.set(id, seq++);
  if (map.size > MAX_PER_KIND) {
    const oldest = map.keys().next().value as string;
    map.delete(oldest);
    order.delete(oldest);
  }
}

const nowS = () => Math.floor(Date.now() / 1000);
const newId = (prefix: string) => prefix + randomBytes(12).toString('hex');

/** Remembers a response created by the demo `/responses` endpoint so it can be retrieved or deleted. */
export function rememberDemoResponse(full: Record<string, unknown>): void {
  if (typeof full.id === 'string') put(responses, full.id, { ...(full as Obj), created_at: Number(full.created_at ?? nowS()) });
}

function json(status: number, body: unknown): UpstreamResponse {
  const buf = Buffer.from(JSON.stringify(body));
  return { status, headers: { 'content-type': 'application/json' }, body: (async function* () { yield buf; })(), dump() {} };
}

function notFound(what: string, id: string): UpstreamResponse {
  return json(404, { error: { message: `No such ${what}: ${id.slice(0, 100)}`, type: 'invalid_request_error', param: 'id', code: null } });
}

function bad(message: string, param: string | null = null): UpstreamResponse {
  return json(400, { error: { message, type: 'invalid_request_error', param, code: null } });
}

/** A cursor page in OpenAI's list shape (`after`, `limit`, `order`), newest first by default. */
function page(items: Obj[], q: Record<string, string>, defLimit: number): UpstreamResponse {
  const limit = Math.min(Math.max(Number.parseInt(q.limit ?? '', 10) || defLimit, 1), 10_000);
  const asc = q.order === 'asc';
  const sorted = [...items].sort((a, b) => (asc ? 1 : -1) * ((order.get(a.id) ?? 0) - (order.get(b.id) ?? 0)));
  let start = 0;
  if (q.after) {
    const i = sorted.findIndex((o) => o.id === q.after);
    start = i < 0 ? sorted.length : i + 1;
  }
  const data = sorted.slice(start, start + limit);
  return json(200, { object: 'list', data, first_id: data[0]?.id ?? null, last_id: data.at(-1)?.id ?? null, has_more: start + limit < sorted.length });
}

async function readBody(req: RawUpstreamRequest): Promise<Buffer> {
  if (!req.body) return Buffer.alloc(0);
  if (Buffer.isBuffer(req.body)) return req.body;
  const chunks: Buffer[] = [];
  for await (const c of req.body) chunks.push(Buffer.from(c as Uint8Array));
  return Buffer.concat(chunks);
}

async function jsonBody(req: RawUpstreamRequest): Promise<Record<string, unknown> | null> {
  try {
    const v = JSON.parse((await readBody(req)).toString('utf8'));
    return v && typeof v === 'object' && !Array.isArray(v) ? v : null;
  } catch {
    return null;
  }
}

async function uploadFile(req: RawUpstreamRequest): Promise<UpstreamResponse> {
  if (!req.contentType?.toLowerCase().startsWith('multipart/form-data')) return bad('Expected a multipart/form-data upload.');
  let form: FormData;
  try {
    const body = Buffer.isBuffer(req.body) ? req.body : (Readable.toWeb(req.body as Readable) as ReadableStream);
    form = await new Response(body as ConstructorParameters<typeof Response>[0], { headers: { 'content-type': req.contentType } }).formData();
  } catch {
    return bad('Malformed multipart body.');
  }
  const file = form.get('file');
  const purpose = form.get('purpose');
  if (!file || typeof file === 'string') return bad("'file' is required", 'file');
  if (typeof purpose !== 'string' || !purpose) return bad("'purpose' is required", 'purpose');
  const content = Buffer.from(await file.arrayBuffer());
  const id = newId('file-');
  const meta: DemoFile['meta'] = { id, object: 'file', bytes: content.length, created_at: nowS(), filename: (file as File).name || 'upload', purpose, status: 'processed', expires_at: null, status_details: null };
  put(files, id, { meta, content });
  return json(200, meta);
}

function demoChatReply(body: Record<string, unknown>): Record<string, unknown> {
  const msgs = Array.isArray(body.messages) ? body.messages : [];
  const last = msgs.at(-1) as { content?: unknown } | undefined;
  const text = `Demo batch reply to: ${String(typeof last?.content === 'string' ? last.content : '').slice(0, 200)}`;
  return { id: newId('chatcmpl-'), object: 'chat.completion', created: nowS(), model: String(body.model ?? 'demo'), choices: [{ index: 0, message: { role: 'assistant', content: text }, finish_reason: 'stop' }] };
}

function createBatch(b: Record<string, unknown>): UpstreamResponse {
  const input = typeof b.input_file_id === 'string' ? files.get(b.input_file_id) : undefined;
  if (!input) return bad('input_file_id does not name an uploaded file', 'input_file_id');
  if (typeof b.endpoint !== 'string') return bad("'endpoint' is required", 'endpoint');
  const meta = (b.metadata && typeof b.metadata === 'object' ? b.metadata : {}) as Record<string, unknown>;
  const lines = input.content.toString('utf8').split('\n').filter((l) => l.trim());
  const id = newId('batch_');
  const t = nowS();
  const batch: Obj = {
    id, object: 'batch', endpoint: b.endpoint, errors: null, input_file_id: b.input_file_id, completion_window: b.completion_window ?? '24h',
    status: 'in_progress', output_file_id: null, error_file_id: null, created_at: t, in_progress_at: t, completed_at: null, cancelled_at: null,
    request_counts: { total: lines.length, completed: 0, failed: 0 }, metadata: meta,
  };
  if (meta.demo_hold !== 'true') {
    const out: string[] = [];
    for (const line of lines) {
      let r: Record<string, unknown>;
      try {
        r = JSON.parse(line);
      } catch {
        continue;
      }
      out.push(JSON.stringify({ id: newId('batch_req_'), custom_id: r.custom_id ?? null, response: { status_code: 200, request_id: newId('req_'), body: demoChatReply((r.body ?? {}) as Record<string, unknown>) }, error: null }));
    }
    const content = Buffer.from(out.join('\n') + (out.length ? '\n' : ''));
    const fid = newId('file-');
    put(files, fid, { meta: { id: fid, object: 'file', bytes: content.length, created_at: t, filename: 'batch_output.jsonl', purpose: 'batch_output', status: 'processed', expires_at: null, status_details: null }, content });
    Object.assign(batch, { status: 'completed', output_file_id: fid, completed_at: t, request_counts: { total: lines.length, completed: out.length, failed: lines.length - out.length } });
  }
  put(batches, id, batch);
  return json(200, batch);
}

/** Answers one object-endpoint request as an OpenAI-compatible upstream would. */
export async function demoObjects(req: RawUpstreamRequest): Promise<UpstreamResponse> {
  const q = req.query ?? {};
  const parts = req.path.split('/').filter(Boolean);
  const [root, a, b, c] = parts;
  const m = req.method;
  if (root === 'files') {
    if (!a) {
      if (m === 'POST') return uploadFile(req);
      if (m === 'GET') return page([...files.values()].map((f) => f.meta as unknown as Obj).filter((f) => !q.purpose || f.purpose === q.purpose), q, 10_000);
    } else {
      const f = files.get(a);
      if (!f) return notFound('File', a);
      if (m === 'GET' && !b) return json(200, f.meta);
      if (m === 'GET' && b === 'content') {
        const content = f.content;
        return { status: 200, headers: { 'content-type': 'application/octet-stream', 'content-length': String(content.length) }, body: (async function* () { yield content; })(), dump() {} };
      }
      if (m === 'DELETE' && !b) {
        files.delete(a);
        return json(200, { id: a, object: 'file', deleted: true });
      }
    }
  } else if (root === 'batches') {
    if (!a) {
      if (m === 'POST') {
        const body = await jsonBody(req);
        return body ? createBatch(body) : bad('Invalid JSON body.');
      }
      if (m === 'GET') return page([...batches.values()], q, 20);
    } else {
      const bt = batches.get(a);
      if (!bt) return notFound('batch', a);
      if (m === 'GET' && !b) return json(200, bt);
      if (m === 'POST' && b === 'cancel') {
        if (bt.status !== 'in_progress' && bt.status !== 'validating') return bad(`Cannot cancel a batch with status ${String(bt.status)}.`);
        Object.assign(bt, { status: 'cancelled', cancelled_at: nowS() });
        return json(200, bt);
      }
    }
  } else if (root === 'fine_tuning' && a === 'jobs') {
    if (!b) {
      if (m === 'POST') {
        const body = await jsonBody(req);
        if (!body || typeof body.model !== 'string') return bad("'model' is required", 'model');
        if (typeof body.training_file !== 'string' || !files.has(body.training_file)) return bad('training_file does not name an uploaded file', 'training_file');
        const id = newId('ftjob-');
        const job: Obj = {
          id, object: 'fine_tuning.job', model: body.model, created_at: nowS(), finished_at: null, fine_tuned_model: null, organization_id: 'org-demo', result_files: [],
          status: 'queued', validation_file: body.validation_file ?? null, training_file: body.training_file, hyperparameters: body.hyperparameters ?? {}, trained_tokens: null, error: null, seed: 0, metadata: body.metadata ?? null,
        };
        put(jobs, id, job);
        return json(200, job);
      }
      if (m === 'GET') return page([...jobs.values()], q, 20);
    } else {
      const job = jobs.get(b);
      if (!job) return notFound('fine-tuning job', b);
      if (m === 'GET' && !c) return json(200, job);
      if (m === 'POST' && c === 'cancel') {
        if (job.status === 'succeeded' || job.status === 'failed' || job.status === 'cancelled') return bad(`Cannot cancel a job with status ${String(job.status)}.`);
        job.status = 'cancelled';
        return json(200, job);
      }
    }
  } else if (root === 'vector_stores') {
    if (!a) {
      if (m === 'POST') {
        const body = (await jsonBody(req)) ?? {};
        const ids = Array.isArray(body.file_ids) ? body.file_ids.filter((x): x is string => typeof x === 'string') : [];
        if (ids.some((id) => !files.has(id))) return bad('file_ids names a file that does not exist', 'file_ids');
        const id = newId('vs_');
        const vs: Obj = { id, object: 'vector_store', created_at: nowS(), name: body.name ?? null, usage_bytes: 0, file_counts: { in_progress: 0, completed: ids.length, failed: 0, cancelled: 0, total: ids.length }, status: 'completed', expires_after: null, expires_at: null, last_active_at: nowS(), metadata: body.metadata ?? {} };
        put(stores, id, vs);
        return json(200, vs);
      }
      if (m === 'GET') return page([...stores.values()], q, 20);
    } else {
      const vs = stores.get(a);
      if (!vs) return notFound('vector store', a);
      if (m === 'GET' && !b) return json(200, vs);
      if (m === 'DELETE' && !b) {
        stores.delete(a);
        return json(200, { id: a, object: 'vector_store.deleted', deleted: true });
      }
    }
  } else if (root === 'responses' && a && !b) {
    const r = responses.get(a);
    if (!r) return notFound('response', a);
    if (m === 'GET') return json(200, r);
    if (m === 'DELETE') {
      responses.delete(a);
      return json(200, { id: a, object: 'response', deleted: true });
    }
  }
  return json(404, { error: { message: `Unknown request URL: ${m} /v1${req.path.slice(0, 100)}`, type: 'invalid_request_error', param: null, code: 'unknown_url' } });
}
