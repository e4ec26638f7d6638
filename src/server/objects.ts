/**
 * Object endpoints with ownership (BOLA defence): files, batches, fine-tuning jobs, vector
 * stores and stored responses are proxied to the first configured provider that has them. The
 * gateway records which tenant (and key) created each object id; an id the caller's tenant does
 * not own answers 404 exactly like an unknown one, list pages are filtered to the caller's
 * objects, and ids referenced inside requests (a batch's input file, `previous_response_id`,
 * `file_id`, `vector_store_ids`) must be the caller's too.
 */
import { Readable, Transform, type TransformCallback } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { GatewayError } from '../errors.js';
import { createOwnershipStore, type ObjectKind, type OutputCheck, type OwnershipStore } from '../policy/ownership.js';
import { denialError, requestDecision, type PolicyModule } from '../policy/module.js';
import { ACTION_RANK } from '../guards/pipeline.js';
import { mapTransportError } from '../providers/http.js';
import type { Provider, RawUpstreamRequest, UpstreamResponse } from '../providers/types.js';
import type { RequestContext, SseEvent } from './context.js';
import { keyGate, type GatewayModule, type ModuleFactory } from './modules.js';
import { identify } from './proxy.js';
import { UpstreamAbort } from '../util/abort.js';
import { readBounded, upstreamStatusError } from './upstream-errors.js';
import { roundLogprobs } from '../analytics/perturb.js';
import type { AnalyticsConfig } from '../analytics/config.js';
import type { ResponseGuardsModule, StoredScan } from '../guards/response/module.js';
import { randomBytes } from 'node:crypto';
import type { Api } from '../providers/types.js';
import { guardScope, requestBlockError, requestRunError, type GuardsModule } from './guard-api.js';
import type { GuardRecord } from '../guards/types.js';
import { guardBatchInput } from './batch-input.js';
import { validateBody } from './validate.js';

/** What one object route does. */
type Action = 'create' | 'list' | 'get' | 'content' | 'delete' | 'cancel';

interface RouteSpec {
  method: 'GET' | 'POST' | 'DELETE';
  url: string;
  kind: ObjectKind;
  action: Action;
  /** Upstream path from the (validated) id. */
  path(id?: string): string;
}

const LABEL: Record<ObjectKind, string> = { files: 'File', batches: 'batch', fine_tuning: 'fine-tuning job', vector_stores: 'vector store', responses: 'response', response_items: 'response item' };

/** The object routes the gateway serves. */
export const OBJECT_ROUTES: readonly RouteSpec[] = [
  { method: 'POST', url: '/v1/files', kind: 'files', action: 'create', path: () => '/files' },
  { method: 'GET', url: '/v1/files', kind: 'files', action: 'list', path: () => '/files' },
  { method: 'GET', url: '/v1/files/:id', kind: 'files', action: 'get', path: (id) => `/files/${id}` },
  { method: 'GET', url: '/v1/files/:id/content', kind: 'files', action: 'content', path: (id) => `/files/${id}/content` },
  { method: 'DELETE', url: '/v1/files/:id', kind: 'files', action: 'delete', path: (id) => `/files/${id}` },
  { method: 'POST', url: '/v1/batches', kind: 'batches', action: 'create', path: () => '/batches' },
  { method: 'GET', url: '/v1/batches', kind: 'batches', action: 'list', path: () => '/batches' },
  { method: 'GET', url: '/v1/batches/:id', kind: 'batches', action: 'get', path: (id) => `/batches/${id}` },
  { method: 'POST', url: '/v1/batches/:id/cancel', kind: 'batches', action: 'cancel', path: (id) => `/batches/${id}/cancel` },
  { method: 'POST', url: '/v1/fine_tuning/jobs', kind: 'fine_tuning', action: 'create', path: () => '/fine_tuning/jobs' },
  { method: 'GET', url: '/v1/fine_tuning/jobs', kind: 'fine_tuning', action: 'list', path: () => '/fine_tuning/jobs' },
  { method: 'GET', url: '/v1/fine_tuning/jobs/:id', kind: 'fine_tuning', action: 'get', path: (id) => `/fine_tuning/jobs/${id}` },
  { method: 'POST', url: '/v1/fine_tuning/jobs/:id/cancel', kind: 'fine_tuning', action: 'cancel', path: (id) => `/fine_tuning/jobs/${id}/cancel` },
  { method: 'POST', url: '/v1/vector_stores', kind: 'vector_stores', action: 'create', path: () => '/vector_stores' },
  { method: 'GET', url: '/v1/vector_stores', kind: 'vector_stores', action: 'list', path: () => '/vector_stores' },
  { method: 'GET', url: '/v1/vector_stores/:id', kind: 'vector_stores', action: 'get', path: (id) => `/vector_stores/${id}` },
  { method: 'DELETE', url: '/v1/vector_stores/:id', kind: 'vector_stores', action: 'delete', path: (id) => `/vector_stores/${id}` },
  { method: 'GET', url: '/v1/responses/:id', kind: 'responses', action: 'get', path: (id) => `/responses/${id}` },
  { method: 'DELETE', url: '/v1/responses/:id', kind: 'responses', action: 'delete', path: (id) => `/responses/${id}` },
];

/** Moves the guard records `scratch` collected into `into`, one per guard and mode (counts summed, the strongest action kept). */
function mergeRecords(into: Map<string, GuardRecord>, scratch: Record<string, unknown>): void {
  const recs = scratch.guards as GuardRecord[] | undefined;
  scratch.guards = undefined;
  scratch.responseFindings = undefined;
  if (!recs) return;
  for (const r of recs) {
    const k = `${r.guard}\u0000${r.mode}`;
    const m = into.get(k);
    if (!m) {
      into.set(k, { ...r, categories: [...r.categories] });
      continue;
    }
    if (ACTION_RANK[r.action] > ACTION_RANK[m.action]) m.action = r.action;
    for (const c of r.categories) if (!m.categories.includes(c) && m.categories.length < 50) m.categories.push(c);
    m.findings += r.findings;
    m.latencyMs = Math.round((m.latencyMs + r.latencyMs) * 1000) / 1000;
    m.applied ||= r.applied;
    if (r.error) m.error = r.error;
  }
}

const NEWLINE = Buffer.from('\n');

/** The API of an answer in a batch output line, by its `object`. */
const OUTPUT_APIS: Record<string, string> = { 'chat.completion': 'chat', text_completion: 'completions', response: 'responses' };

/** Object ids: provider ids such as `file-abc`, `batch_abc`, `vs_abc` (never `.`/`..`, never a path). */
const ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}$/;
/** Upstream pages scanned at most per list call while collecting the caller's objects. */
const MAX_LIST_PAGES = 20;

/** The refusal of a stored response the response guards blocked or changed when it was made. */
export function responseWithheld(id: string, reference?: 'previous_response_id' | 'item_reference'): GatewayError {
  return new GatewayError('PCL_CONTENT_POLICY', {
    message: reference
      ? `${reference} names ${reference === 'item_reference' ? 'an output item of a response' : 'response'} ${id}, which the response guards blocked or changed when it was created; it cannot be continued through the gateway.`
      : `Response ${id} was blocked or changed by the response guards when it was created; the gateway does not return it.`,
    param: reference ?? 'id',
    headers: { 'x-portcullis-guard': 'response:stored', 'x-portcullis-action': 'block' },
    internal: { withheld: id },
  });
}

/**
 * The output check of a stored response answered without a stream: what the response guards
 * decided (`ctx.state.outputGuarded`/`outputWithheld`, set by the response-guards module), and
 * whether the body holds the whole output (a background or unfinished response does not).
 */
function bodyOutputCheck(ctx: RequestContext, body: Record<string, unknown>): OutputCheck {
  return outputCheck(ctx, ctx.body.background !== true && body.status !== 'queued' && body.status !== 'in_progress');
}

/** What the response guards made of the output sent: withheld, passed (checked in enforce mode, and `whole`), or unscanned. */
function outputCheck(ctx: RequestContext, whole: boolean): OutputCheck {
  if (ctx.state.outputWithheld === true) return 'withheld';
  return ctx.state.outputGuarded === true && whole ? 'passed' : 'unscanned';
}

/** The 404 for an object that does not exist or belongs to another tenant (same answer for both). */
export function objectNotFound(kind: ObjectKind, id: string): GatewayError {
  const shown = ID_RE.test(id) ? id : 'invalid id';
  return new GatewayError('PCL_NOT_FOUND', { message: `No such ${LABEL[kind]}: ${shown}`, param: 'id', internal: { bola: kind } });
}

/**
 * Object ids a chat/responses request body refers to: `file_id`s, `vector_store_ids`,
 * `previous_response_id`, and the output items Responses `item_reference`s name (in the input,
 * the tools and prompt-template variables alike).
 */
export function referencedObjects(body: Record<string, unknown>): Array<[ObjectKind, string]> {
  const out: Array<[ObjectKind, string]> = [];
  if (typeof body.previous_response_id === 'string') out.push(['responses', body.previous_response_id]);
  // Responses input items the upstream fills in from storage by their id: an `item_reference`
  // (typed below; its `type` is optional), and a reasoning item sent without its content.
  if (Array.isArray(body.input)) {
    for (const it of body.input) {
      if (!it || typeof it !== 'object' || Array.isArray(it)) continue;
      const o = it as Record<string, unknown>;
      if (o.id === undefined || o.id === null) continue;
      const ref = ((o.type === undefined || o.type === null) && o.role === undefined) || (o.type === 'reasoning' && o.encrypted_content == null && o.summary == null);
      if (ref) out.push(['response_items', typeof o.id === 'string' ? o.id : String(o.id)]);
    }
  }
  // Every value is visited; a body with more than the walk checks is refused, not half-checked.
  let budget = MAX_REFERENCE_WALK;
  const walk = (v: unknown, depth: number): void => {
    if (!v || typeof v !== 'object') return;
    if (depth > MAX_REFERENCE_DEPTH || --budget < 0) {
      throw new GatewayError('PCL_INVALID_REQUEST', { message: `The request has more parts (or deeper ones) than the gateway checks for object references (${MAX_REFERENCE_WALK} values, ${MAX_REFERENCE_DEPTH} levels).` });
    }
    if (Array.isArray(v)) {
      for (const x of v) walk(x, depth + 1);
      return;
    }
    const o = v as Record<string, unknown>;
    if (o.type === 'item_reference') out.push(['response_items', typeof o.id === 'string' ? o.id : String(o.id)]);
    for (const [k, x] of Object.entries(v)) {
      if (k === 'file_id' && typeof x === 'string') {
        out.push(['files', x]);
      } else if (k === 'vector_store_ids' && Array.isArray(x)) {
        for (const id of x) if (typeof id === 'string') out.push(['vector_stores', id]);
      } else {
        walk(x, depth + 1);
      }
    }
  };
  walk(body.input, 0);
  walk(body.messages, 0);
  walk(body.tools, 0);
  walk(body.tool_resources, 0);
  const prompt = body.prompt as { variables?: unknown } | undefined;
  if (prompt && typeof prompt === 'object') walk(prompt.variables, 0);
  return out;
}

/**
 * Whether a body offers tools whose calls the client runs (function and custom tools, legacy
 * `functions`), which the tool guards check in each answer; the provider's own tools (web and
 * file search, code interpreter) run upstream and are not among them.
 */
function offersFunctionTools(body: Record<string, unknown>): boolean {
  if (Array.isArray(body.functions) && body.functions.length > 0) return true;
  if (!Array.isArray(body.tools)) return false;
  return body.tools.some((t) => {
    const type = t && typeof t === 'object' ? (t as { type?: unknown }).type : undefined;
    return type === undefined || type === 'function' || type === 'custom';
  });
}

/** Values and nesting levels `referencedObjects` walks at most (a body beyond them is refused). */
const MAX_REFERENCE_WALK = 200_000;
const MAX_REFERENCE_DEPTH = 128;

/** Output item ids of a Responses body (`output[].id`), at most 1 000. */
function outputItemIds(response: unknown): string[] {
  const output = (response as { output?: unknown } | undefined)?.output;
  if (!Array.isArray(output)) return [];
  const ids: string[] = [];
  for (const it of output) if (it && typeof it === 'object' && typeof (it as { id?: unknown }).id === 'string' && ID_RE.test((it as { id: string }).id) && ids.length < 1000) ids.push((it as { id: string }).id);
  return ids;
}

/** Counts bytes of a streamed upload and fails once it exceeds the limit (nothing is buffered). */
class ByteLimit extends Transform {
  seen = 0;
  exceeded = false;
  constructor(private readonly limit: number) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.seen += chunk.length;
    if (this.seen > this.limit) {
      this.exceeded = true;
      cb(new GatewayError('PCL_BODY_TOO_LARGE'));
      return;
    }
    cb(null, chunk);
  }
}

/** The objects module: routes, ownership store, and the reference/ownership steps for `/v1/responses` and chat. */
export interface ObjectsModule extends GatewayModule {
  owners: OwnershipStore;
}

/** Creates the objects module. */
export const objectsModule: ModuleFactory = ({ config, db, identity, router, modules }) => {
  const owners = createOwnershipStore(db.kysely);
  const policy = () => {
    const p = modules.get('policy') as PolicyModule | undefined;
    if (!p) throw new GatewayError('PCL_INTERNAL', { internal: 'policy module missing' });
    return p;
  };
  const provider = (): Provider | undefined => [...router.providers.values()].find((p) => typeof p.request === 'function');
  const analyticsCfg = (config as { analytics?: AnalyticsConfig }).analytics;
  /** Decimals stored responses' log-probabilities are rounded to (analytics.perturb.roundDecimals), when analytics is on. */
  const roundDecimals = analyticsCfg?.enabled ? analyticsCfg.perturb.roundDecimals : undefined;
  /** Suspended and throttled keys (see keyGate); the object context carries no body, so it perturbs nothing. */
  const gate = keyGate(modules);

  async function checkOwned(ctx: RequestContext, kind: ObjectKind, id: string): Promise<OutputCheck | null> {
    const row = ID_RE.test(id) ? await owners.lookup(kind, id) : null;
    if (!row || row.tenantId !== ctx.principal!.tenantId) throw objectNotFound(kind, id);
    return row.outputCheck;
  }

  /**
   * The objects a chat/responses body names must be the caller's, and a withheld response (or one
   * of its output items) cannot be continued: handing it back to the model as context would return
   * what the guards withheld. A Responses `conversation` is refused: the gateway does not route the
   * Conversations API, so it cannot know who owns one.
   */
  async function checkReferences(ctx: RequestContext, api: string, body: Record<string, unknown>): Promise<void> {
    if (api !== 'responses' && api !== 'chat') return;
    if (api === 'responses' && body.conversation !== undefined && body.conversation !== null) {
      throw new GatewayError('PCL_INVALID_REQUEST', { message: 'Responses `conversation` is not supported through this gateway (it cannot check who owns a conversation): continue with previous_response_id.', param: 'conversation' });
    }
    for (const [kind, id] of referencedObjects(body)) {
      const check = await checkOwned(ctx, kind, id);
      if ((kind === 'responses' || kind === 'response_items') && check === 'withheld') throw responseWithheld(id, kind === 'responses' ? 'previous_response_id' : 'item_reference');
    }
  }

  /**
   * A stored response read back: a withheld one is refused, one the guards passed whole is
   * returned, and any other (background, cut short, made before the check existed or with the
   * guards off) goes through the response guards' read-time check.
   */
  async function guardStored(ctx: RequestContext, id: string, check: OutputCheck | null, obj: Record<string, unknown>): Promise<Record<string, unknown>> {
    if (check === 'withheld') throw responseWithheld(id);
    if (check === 'passed') return obj;
    const r = await scanStored(ctx, obj, 'responses');
    if (r.action !== 'allow') {
      ctx.responseHeaders['x-portcullis-guard'] = r.guard ?? 'response';
      ctx.responseHeaders['x-portcullis-action'] = r.action;
    }
    return r.body;
  }

  /** The response guards' read-time check (none when the module is not loaded or guards are off). */
  function scanStored(ctx: RequestContext, body: Record<string, unknown>, api: string, state?: Record<string, unknown>): Promise<StoredScan> | StoredScan {
    const rg = modules.get('response-guards') as Partial<ResponseGuardsModule> | undefined;
    return rg?.scanStored ? rg.scanStored(ctx, body, api, state) : { body, action: 'allow' };
  }

  /**
   * A batch output file read back: each line's response body (chat, completions, Responses)
   * through the read-time check, streamed line by line (a line over `upstream.maxResponseBytes`
   * ends the download). Lines that are not such an answer (errors, embeddings) pass as they are.
   * The verdicts go to the audit event, one record per guard for the whole file.
   */
  async function* guardedOutputFile(ctx: RequestContext, src: AsyncIterable<Uint8Array>): AsyncGenerator<Buffer> {
    const scratch: Record<string, unknown> = {};
    const merged = new Map<string, GuardRecord>();
    const max = config.upstream.maxResponseBytes;
    const guardLine = async (bytes: Buffer): Promise<Buffer> => {
      let line: { response?: { body?: unknown } };
      try {
        line = JSON.parse(bytes.toString('utf8'));
      } catch {
        return bytes; // not a result line: nothing the model wrote is readable in it as JSON
      }
      const body = line?.response?.body as Record<string, unknown> | undefined;
      const api = body && typeof body === 'object' ? OUTPUT_APIS[String(body.object)] : undefined;
      if (!api) return bytes;
      const r = await scanStored(ctx, body!, api, scratch);
      mergeRecords(merged, scratch);
      return r.action === 'allow' ? bytes : Buffer.from(JSON.stringify({ ...line, response: { ...line.response, body: r.body } }));
    };
    let parts: Buffer[] = [];
    let pending = 0;
    try {
      for await (const c of src) {
        let chunk = Buffer.from(c.buffer, c.byteOffset, c.byteLength);
        for (let nl = chunk.indexOf(0x0a); nl >= 0; nl = chunk.indexOf(0x0a)) {
          parts.push(chunk.subarray(0, nl));
          const line = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
          parts = [];
          pending = 0;
          yield Buffer.concat([await guardLine(line), NEWLINE]);
          chunk = chunk.subarray(nl + 1);
        }
        if (chunk.length > 0) {
          parts.push(chunk);
          pending += chunk.length;
          if (pending > max) throw new GatewayError('PCL_UPSTREAM_BAD_RESPONSE', { internal: `a batch output line over ${max} bytes` });
        }
      }
      if (pending > 0) yield await guardLine(Buffer.concat(parts));
    } finally {
      if (merged.size > 0) ((ctx.state.guards ??= []) as GuardRecord[]).push(...merged.values());
    }
  }

  async function call(req: FastifyRequest, reply: FastifyReply, up: Omit<RawUpstreamRequest, 'signal' | 'requestId'>, p: Provider): Promise<UpstreamResponse> {
    const ac = new UpstreamAbort();
    const onClose = () => {
      if (!reply.raw.writableFinished) ac.abort(new GatewayError('PCL_UPSTREAM_ERROR', { internal: 'client closed the connection' }));
    };
    reply.raw.once('close', onClose);
    const total = setTimeout(() => ac.abort(new GatewayError('PCL_UPSTREAM_TIMEOUT', { internal: 'total timeout' })), config.upstream.totalTimeoutMs);
    total.unref();
    try {
      const res = await p.request!({ ...up, signal: ac, requestId: req.pcl.requestId });
      if (res.status >= 400) throw await upstreamStatusError(res);
      return res;
    } catch (e) {
      throw mapTransportError(e, p.name);
    } finally {
      clearTimeout(total);
      reply.raw.off('close', onClose);
    }
  }

  async function readJson(res: UpstreamResponse, p: Provider): Promise<Record<string, unknown>> {
    let buf: Buffer;
    try {
      buf = await readBounded(res.body, config.upstream.maxResponseBytes);
    } catch (e) {
      throw mapTransportError(e, p.name);
    }
    try {
      const v = JSON.parse(buf.toString('utf8'));
      if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error('not an object');
      return v;
    } catch {
      throw new GatewayError('PCL_UPSTREAM_BAD_RESPONSE', { internal: { bodyPrefix: buf.subarray(0, 200).toString('utf8') } });
    }
  }

  /** Policy and request guards over one batch line's body, as a live request of `api` gets them. */
  async function checkBatchLine(ctx: RequestContext, api: Api, body: Record<string, unknown>): Promise<Record<string, unknown>> {
    const pr = ctx.principal!;
    // The shape the proxy requires of a live request: content the guards cannot read is refused.
    validateBody(api, body);
    // The objects it names must be the caller's (and not withheld), as for a live request.
    await checkReferences(ctx, api, body);
    const engine = (modules.get('guards') as GuardsModule | undefined)?.engine;
    const scope = guardScope(pr);
    // The tool guards check a model's proposed calls in its answer (allow-list, arguments, SQL,
    // approvals), which a batch's output file cannot give them: no tools while they are enforced.
    const gcfg = engine?.configFor(scope);
    if (gcfg?.enabled && gcfg.tools.enabled && gcfg.tools.mode === 'enforce' && offersFunctionTools(body)) {
      throw new GatewayError('PCL_INVALID_REQUEST', { message: 'Lines that offer function tools cannot run in a batch while the tool guards are enforced (they check each proposed call when it is answered).', param: 'tools' });
    }
    const pol = modules.get('policy') as PolicyModule | undefined;
    if (pol) {
      const d = requestDecision(pol.engine, pr, api, body, typeof body.model === 'string' ? body.model : undefined, false);
      if (!d.allow) throw denialError(d);
    }
    if (!engine || !engine.hasRequestGuards(scope)) return body;
    let run;
    try {
      run = await engine.runRequest(api, body, { ...scope, tenant: `${pr.tenantId}/${pr.keyId ?? pr.subject}`, requestId: ctx.requestId });
    } catch (e) {
      throw requestRunError(e);
    }
    const { outcome } = run;
    // The verdicts that acted or would have, for the audit event (bounded).
    const recs = ((ctx.state.guards ??= []) as GuardRecord[]);
    for (const r of outcome.records) if ((r.action !== 'allow' || r.error) && recs.length < 200) recs.push(r);
    if (outcome.action === 'block') throw requestBlockError(outcome);
    return run.body;
  }

  /**
   * The input file a batch may run: its lines checked (checkBatchLine). Unchanged, the caller's
   * file; with lines the guards rewrote, a new file of the rewritten lines, uploaded and owned by
   * the caller. Files over `server.bodyLimit` (the largest upload the gateway takes) are refused.
   */
  async function guardedBatchFile(req: FastifyRequest, reply: FastifyReply, ctx: RequestContext, fileId: string, p: Provider): Promise<string> {
    const res = await call(req, reply, { method: 'GET', path: `/files/${fileId}/content` }, p);
    let buf: Buffer;
    try {
      buf = await readBounded(res.body, config.server.bodyLimit);
    } catch (e) {
      if (e instanceof GatewayError && e.code === 'PCL_UPSTREAM_BAD_RESPONSE') throw new GatewayError('PCL_BODY_TOO_LARGE', { message: `Batch input file ${fileId} is larger than the gateway checks (server.bodyLimit).`, param: 'input_file_id' });
      throw mapTransportError(e, p.name);
    }
    const g = await guardBatchInput(buf, fileId, config.server.maxJsonDepth, (api, body) => checkBatchLine(ctx, api, body));
    if (!g.changed) return fileId;
    const boundary = `portcullis-${randomBytes(12).toString('hex')}`;
    const head = `--${boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="guarded-${fileId}.jsonl"\r\nContent-Type: application/jsonl\r\n\r\n`;
    const body = Buffer.concat([Buffer.from(head), Buffer.from(g.text), Buffer.from(`\r\n--${boundary}--\r\n`)]);
    const up = await readJson(await call(req, reply, { method: 'POST', path: '/files', contentType: `multipart/form-data; boundary=${boundary}`, body }, p), p);
    if (typeof up.id !== 'string' || !ID_RE.test(up.id)) throw new GatewayError('PCL_UPSTREAM_BAD_RESPONSE', { internal: 'guarded batch file without a usable id' });
    const pr = ctx.principal!;
    await owners.record('files', up.id, { tenantId: pr.tenantId, keyId: pr.keyId, subject: pr.subject });
    ctx.responseHeaders['x-portcullis-action'] = 'transform';
    ctx.responseHeaders['x-portcullis-batch-input-file'] = up.id;
    return up.id;
  }

  /** Records objects the upstream made on the caller's behalf (batch output files, fine-tuning result files). */
  async function adoptDerived(kind: ObjectKind, obj: Record<string, unknown>, ctx: RequestContext): Promise<void> {
    const p = ctx.principal!;
    const owner = { tenantId: p.tenantId, keyId: p.keyId, subject: p.subject };
    const ids: string[] = [];
    if (kind === 'batches') for (const k of ['output_file_id', 'error_file_id']) if (typeof obj[k] === 'string') ids.push(obj[k] as string);
    if (kind === 'fine_tuning' && Array.isArray(obj.result_files)) for (const f of obj.result_files) if (typeof f === 'string') ids.push(f);
    // A batch's output holds what the model wrote, unseen by the gateway: checked when it is read.
    for (const id of ids) {
      if (!ID_RE.test(id)) continue;
      // A batch is polled: a file already recorded (with its check) costs one read, no write.
      const row = await owners.lookup('files', id);
      if (row && (kind !== 'batches' || row.outputCheck !== null)) continue;
      if (!row) await owners.record('files', id, owner, kind === 'batches' ? 'unscanned' : undefined);
      // An output file adopted before the check existed gets it now.
      else await owners.fillOutputCheck('files', id, 'unscanned');
    }
  }

  async function list(req: FastifyRequest, reply: FastifyReply, spec: RouteSpec, p: Provider): Promise<Record<string, unknown>> {
    const ctx = req.pcl;
    const q = (req.query ?? {}) as Record<string, unknown>;
    const maxLimit = spec.kind === 'files' ? 10_000 : 100;
    const defLimit = spec.kind === 'files' ? 10_000 : 20;
    const limitRaw = typeof q.limit === 'string' ? Number.parseInt(q.limit, 10) : NaN;
    const limit = Number.isFinite(limitRaw) ? Math.min(Math.max(limitRaw, 1), maxLimit) : defLimit;
    const fwd: Record<string, string> = { limit: String(Math.max(limit, Math.min(100, maxLimit))) };
    if (typeof q.order === 'string' && (q.order === 'asc' || q.order === 'desc')) fwd.order = q.order;
    if (spec.kind === 'files' && typeof q.purpose === 'string' && q.purpose.length <= 100) fwd.purpose = q.purpose;
    let after = typeof q.after === 'string' ? q.after : undefined;
    if (after !== undefined) await checkOwned(ctx, spec.kind, after); // a cursor is an object reference too
    const data: Array<Record<string, unknown>> = [];
    let hasMore = false;
    for (let pageNo = 0; ; pageNo++) {
      const res = await call(req, reply, { method: 'GET', path: spec.path(), query: { ...fwd, ...(after ? { after } : {}) } }, p);
      const page = await readJson(res, p);
      const items = Array.isArray(page.data) ? (page.data as Array<Record<string, unknown>>).filter((x) => x && typeof x.id === 'string') : [];
      const mine = await owners.ownedAmong(spec.kind, items.map((x) => x.id as string), ctx.principal!.tenantId);
      let i = 0;
      for (; i < items.length && data.length < limit; i++) if (mine.has(items[i]!.id as string)) data.push(items[i]!);
      if (data.length >= limit) {
        hasMore = items.slice(i).some((x) => mine.has(x.id as string)) || page.has_more === true;
        break;
      }
      if (page.has_more !== true || items.length === 0) break;
      if (pageNo + 1 >= MAX_LIST_PAGES) {
        hasMore = true;
        break;
      }
      after = items.at(-1)!.id as string;
    }
    return { object: 'list', data, first_id: data[0]?.id ?? null, last_id: data.at(-1)?.id ?? null, has_more: hasMore };
  }

  async function handle(spec: RouteSpec, req: FastifyRequest, reply: FastifyReply): Promise<unknown> {
    const ctx = req.pcl;
    ctx.principal = await identify({ identity }, req);
    const body = req.body;
    const json = spec.action === 'create' && spec.kind !== 'files' ? (body as Record<string, unknown> | undefined) : undefined;
    if (spec.action === 'create' && spec.kind !== 'files' && (!json || typeof json !== 'object' || json instanceof Readable)) {
      throw new GatewayError('PCL_INVALID_REQUEST', { message: 'The request body must be a JSON object.' });
    }
    const model = spec.kind === 'fine_tuning' && typeof json?.model === 'string' ? json.model : undefined;
    if (model !== undefined) ctx.model = model;
    policy().enforce(ctx, spec.kind, model);
    const gated = gate(ctx);
    if (gated) await gated;
    const id = (req.params as { id?: string } | undefined)?.id;
    ctx.state.objects = { kind: spec.kind, action: spec.action, ...(id ? { id: id.slice(0, 200) } : {}) };
    const check = id !== undefined ? await checkOwned(ctx, spec.kind, id) : null;
    // Refused before the upstream is asked: the gateway never returns a withheld response.
    if (spec.kind === 'responses' && spec.action === 'get' && check === 'withheld') throw responseWithheld(id!);

    // Objects named inside a create request must be the caller's as well.
    if (json) {
      const refs: Array<[ObjectKind, unknown]> = [];
      if (spec.kind === 'batches') refs.push(['files', json.input_file_id]);
      if (spec.kind === 'fine_tuning') refs.push(['files', json.training_file], ['files', json.validation_file]);
      if (spec.kind === 'vector_stores' && Array.isArray(json.file_ids)) for (const f of json.file_ids) refs.push(['files', f]);
      for (const [k, v] of refs) if (v !== undefined && v !== null) await checkOwned(ctx, k, String(v));
    }

    const p = provider();
    if (!p) throw new GatewayError('PCL_ROUTE_NOT_FOUND', { message: 'No configured provider serves object endpoints.' });
    ctx.provider = p;
    const t0 = performance.now();
    try {
      // A batch runs every line of its input file as a request: each is checked like a live one.
      if (spec.kind === 'batches' && spec.action === 'create' && json && typeof json.input_file_id === 'string') {
        const fileId = await guardedBatchFile(req, reply, ctx, json.input_file_id, p);
        if (fileId !== json.input_file_id) req.body = { ...json, input_file_id: fileId };
      }
      if (spec.action === 'list') return reply.code(200).headers(ctx.responseHeaders).send(await list(req, reply, spec, p));

      let up: Omit<RawUpstreamRequest, 'signal' | 'requestId'>;
      let limiter: ByteLimit | undefined;
      if (spec.kind === 'files' && spec.action === 'create') {
        if (!(body instanceof Readable)) throw new GatewayError('PCL_BAD_CONTENT_TYPE', { message: 'File uploads must be multipart/form-data.' });
        const declared = Number(req.headers['content-length']);
        if (Number.isFinite(declared) && declared > config.server.bodyLimit) throw new GatewayError('PCL_BODY_TOO_LARGE');
        limiter = new ByteLimit(config.server.bodyLimit);
        body.on('error', (e) => limiter!.destroy(e));
        up = { method: 'POST', path: spec.path(), contentType: String(req.headers['content-type']), body: body.pipe(limiter) };
      } else {
        const sent = json ? (req.body as Record<string, unknown>) : undefined; // the batch's guarded input file, when it changed
        up = { method: spec.method, path: spec.path(id), ...(sent ? { contentType: 'application/json', body: Buffer.from(JSON.stringify(sent)) } : {}) };
      }
      let res: UpstreamResponse;
      try {
        res = await call(req, reply, up, p);
      } catch (e) {
        if (limiter?.exceeded) throw new GatewayError('PCL_BODY_TOO_LARGE');
        throw e;
      }
      if (limiter?.exceeded) {
        res.dump();
        throw new GatewayError('PCL_BODY_TOO_LARGE');
      }
      ctx.status = res.status;
      if (spec.action === 'content') {
        const ct = res.headers['content-type'];
        // An error of the upstream body after the download began ends it (the client sees a cut
        // body); it must not go unhandled. A client that leaves releases the upstream body at once.
        const upstream = res.body as Partial<Readable>;
        upstream.on?.('error', () => {});
        reply.raw.once('close', () => {
          if (!reply.raw.writableFinished) upstream.destroy?.();
        });
        if (check === 'unscanned') {
          return reply.code(res.status).headers(ctx.responseHeaders).header('content-type', typeof ct === 'string' ? ct : 'application/octet-stream').send(Readable.from(guardedOutputFile(ctx, res.body)));
        }
        const len = res.headers['content-length'];
        reply.code(res.status).headers(ctx.responseHeaders).header('content-type', typeof ct === 'string' ? ct : 'application/octet-stream');
        if (typeof len === 'string' && /^\d+$/.test(len)) reply.header('content-length', len);
        return reply.send(Readable.from(res.body));
      }
      let obj = await readJson(res, p);
      if (spec.kind === 'responses' && spec.action === 'get') {
        // Its output items, when it was not seen whole (background, a stream cut short): an
        // `item_reference` to them is its owner's, as for one it saw (the check the response has).
        const items = outputItemIds(obj);
        if (items.length > 0 && check !== 'passed') {
          const pr = ctx.principal!;
          await owners.recordMany('response_items', items, { tenantId: pr.tenantId, keyId: pr.keyId, subject: pr.subject }, check ?? 'unscanned');
        }
        obj = await guardStored(ctx, id!, check, obj);
        // A stored response carries the log-probabilities it was created with: rounded like a live one.
        if (roundDecimals !== undefined) obj = roundLogprobs(obj, roundDecimals);
      }
      const pr = ctx.principal!;
      if (spec.action === 'create') {
        if (typeof obj.id !== 'string' || !ID_RE.test(obj.id)) throw new GatewayError('PCL_UPSTREAM_BAD_RESPONSE', { internal: 'created object without a usable id' });
        await owners.record(spec.kind, obj.id, { tenantId: pr.tenantId, keyId: pr.keyId, subject: pr.subject });
      }
      if (spec.action === 'get' || spec.action === 'create') await adoptDerived(spec.kind, obj, ctx);
      if (spec.action === 'delete' && obj.deleted === true && id) await owners.forget(spec.kind, id);
      return reply.code(res.status).headers(ctx.responseHeaders).header('content-type', 'application/json; charset=utf-8').send(JSON.stringify(obj));
    } finally {
      ctx.upstreamMs = performance.now() - t0;
    }
  }

  const mod: ObjectsModule = {
    name: 'objects',
    owners,
    steps: {
      /** `previous_response_id`, `file_id`s and `vector_store_ids` in chat/responses requests must be the caller's. */
      authorize(ctx) {
        if (ctx.api !== 'responses' && ctx.api !== 'chat') return undefined;
        return checkReferences(ctx, ctx.api, ctx.body);
      },
      /** Stored responses created through the proxy belong to the caller, with what the response guards made of them. */
      responseGuards(ctx, body) {
        if (ctx.api === 'responses' && ctx.principal && typeof body.id === 'string' && ID_RE.test(body.id) && ctx.body.store !== false) {
          const owner = { tenantId: ctx.principal.tenantId, keyId: ctx.principal.keyId, subject: ctx.principal.subject };
          const check = bodyOutputCheck(ctx, body);
          const items = outputItemIds(body);
          return owners
            .record('responses', body.id, owner, check)
            .then(() => (items.length > 0 ? owners.recordMany('response_items', items, owner, check) : undefined))
            .then(() => body);
        }
        return body; // not a stored response: nothing to wait for
      },
      /**
       * A streamed stored response is recorded `unscanned` at its first event that names it (a
       * read while it streams is checked at read time), then settled at the end of the stream,
       * before its last events reach the client: `withheld` when the guards blocked or changed
       * what was released, `passed` when they checked it to its terminal event.
       */
      streamGuards(ctx) {
        if (ctx.api !== 'responses' || !ctx.principal || ctx.body.store === false) return undefined;
        const pr = ctx.principal;
        const owner = { tenantId: pr.tenantId, keyId: pr.keyId, subject: pr.subject };
        let recorded: string | undefined;
        // Output item ids seen (what a later `item_reference` may name), recorded with the final check.
        const items = new Set<string>();
        return {
          async onEvent(ev: SseEvent, parsed: unknown) {
            const p = parsed as { type?: string; response?: { id?: unknown }; item?: { id?: unknown } } | undefined;
            const r = p?.response;
            if (recorded === undefined && r && typeof r.id === 'string' && ID_RE.test(r.id)) {
              recorded = r.id;
              ctx.state.streamedResponseId = r.id;
              await owners.record('responses', r.id, owner, 'unscanned');
            }
            const itemId = p?.item?.id;
            if (typeof itemId === 'string' && ID_RE.test(itemId) && items.size < 1000) items.add(itemId);
            if (r && p?.type === 'response.completed') for (const id of outputItemIds(r)) if (items.size < 1000) items.add(id);
            return [ev];
          },
          async end() {
            if (recorded === undefined) return [];
            const check = outputCheck(ctx, ctx.outputComplete === true);
            if (check !== 'unscanned') await owners.setOutputCheck('responses', recorded, check);
            if (items.size > 0) await owners.recordMany('response_items', [...items], owner, check);
            return [];
          },
        };
      },
      /** A stream that failed after the guards withheld part of it (an approval hold, an upstream error) never reached `end`. */
      done(ctx) {
        const id = ctx.state.streamedResponseId;
        if (typeof id === 'string' && ctx.state.outputWithheld === true) return owners.setOutputCheck('responses', id, 'withheld');
        return undefined;
      },
    },
    routes(app: FastifyInstance) {
      // A child context only so the streaming multipart parser applies to these routes alone.
      return app.register(async (scope) => {
        scope.addContentTypeParser('multipart/form-data', (_req, payload, done) => done(null, payload));
        for (const spec of OBJECT_ROUTES) scope.route({ method: spec.method, url: spec.url, handler: (req, reply) => handle(spec, req, reply) });
      }) as unknown as Promise<void>;
    },
  };
  return mod;
};
