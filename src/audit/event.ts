/**
 * The audit event: one per proxied request and one per admin action. Metadata, keyed hashes and
 * findings only — never prompt text, output text or matched values.
 */
import { randomFillSync } from 'node:crypto';
import { keyedSha256For } from '../util/hmac.js';
import type { ResponseFindingRecord } from '../guards/response/session.js';
import type { RequestContext } from '../server/context.js';
import { deltaText, outputText } from '../server/usage.js';

/** One guard evaluation as audited. */
export interface AuditGuardVerdict {
  guard: string;
  stage: string;
  mode: string;
  action: string;
  categories: string[];
  findings: number;
  score?: number;
  latencyMs?: number;
  error?: string;
  applied?: boolean;
}

/** One finding as audited: detector, category, score and the LENGTH of the span, never its value. */
export interface AuditFinding {
  detector: string;
  category: string;
  severity?: string;
  score?: number;
  spanLength: number;
  /** Role of the segment it was found in (user, tool, retrieved, …; `assistant` for outputs). */
  role?: string;
  /** Output-side findings: `response`, `stream` or `tool_call` (absent for the request stage). */
  stage?: string;
}

/** An audit event (sent to sinks as JSON; stored as the `audit_events` columns plus the JSON of the other fields: see rowData). */
export interface AuditEvent {
  /** Unique, idempotent id (`aud_…` for requests, `adm_<n>` for bridged admin events). */
  id: string;
  /** Epoch milliseconds. */
  ts: number;
  kind: 'request' | 'admin';
  requestId?: string;
  tenantId?: string;
  keyId?: string;
  /** End user (the request's `user` field or the JWT subject). */
  user?: string;
  clientIp?: string;
  route?: string;
  /** API (chat, completions, embeddings, responses, messages) or policy operation. */
  api?: string;
  operation?: string;
  model?: string;
  upstreamModel?: string;
  provider?: string;
  stream?: boolean;
  status?: number;
  errorCode?: string;
  aborted?: boolean;
  /** Total time in the gateway including the upstream. */
  latencyMs?: number;
  /** Gateway's own share (total − upstream). */
  gatewayMs?: number;
  upstreamMs?: number;
  ttfbMs?: number;
  tokensIn?: number;
  tokensOut?: number;
  cachedTokensIn?: number;
  costUsd?: number;
  /** Strongest guard action applied (allow, flag, transform, block). */
  guardAction?: string;
  guards?: AuditGuardVerdict[];
  findings?: AuditFinding[];
  /** Union of finding categories (searchable). */
  categories?: string[];
  /** Limits: admission decision, estimated input tokens, settlement. */
  limits?: { decision?: string; estimatedInputTokens?: number; settled?: string; estimatedOutputTokens?: number };
  /** Policy: operation, decision, denial layer and reason. */
  policy?: { operation?: string; decision?: string; reason?: string; layer?: string };
  /** Approval tickets requested/used/denied. */
  approvals?: Array<{ event: string; ticket?: string; tool?: string }>;
  /** HMAC-SHA256 (audit hash key) of the canonical prompt, hex; and of the output text. */
  promptHash?: string;
  outputHash?: string;
  promptChars?: number;
  outputChars?: number;
  /** Set when an encrypted payload was captured for this event. */
  payload?: boolean;
  /**
   * Fields cut to keep the event small (see EVENT_TEXT_MAX, EVENT_LIST_MAX): `model`,
   * `upstreamModel`, `user`, `clientIp`, `route`, `errorCode`, `operation`, `policy`, `guards`,
   * `findings`, `categories`, `approvals`. Absent when nothing was cut.
   */
  truncated?: string[];
  // admin events
  action?: string;
  actor?: string;
  actorRole?: string;
  source?: string;
  targetType?: string;
  targetId?: string;
  detail?: unknown;
}

/** An event on its way to the store, with its encrypted payload (never sent to sinks). */
export interface QueuedEvent {
  event: AuditEvent;
  payload?: { tenantId: string; expiresAt: number; request: string | null; response: string | null };
}

/** Random bytes for event ids, refilled 400 ids at a time (one CSPRNG call instead of one per id). */
const ID_POOL = Buffer.alloc(4000);
let idPoolAt = ID_POOL.length;

/**
 * A new request event id: `aud_` + 12 hex digits of the epoch milliseconds + 20 random hex digits
 * (80 bits). Time-ordered, so the primary-key index grows at its right edge instead of taking a
 * random page per insert (a 200 000-event SQLite trail wrote 2.3× faster); still unique and
 * idempotent for replays.
 */
export function newEventId(now = Date.now()): string {
  if (idPoolAt + 10 > ID_POOL.length) {
    randomFillSync(ID_POOL);
    idPoolAt = 0;
  }
  const rnd = ID_POOL.toString('hex', idPoolAt, idPoolAt + 10);
  idPoolAt += 10;
  // The 48-bit millisecond count as 12 hex digits, in two 24-bit halves: small integers format
  // without the floating-point radix conversion a 41-bit number takes.
  const hi = Math.floor(now / 0x1000000);
  const lo = now - hi * 0x1000000;
  return 'aud_' + hex6(hi) + hex6(lo) + rnd;
}

function hex6(n: number): string {
  const h = n.toString(16);
  return h.length === 6 ? h : '000000'.slice(h.length) + h;
}

/** The canonical prompt of a request body: the fields that carry what the user sent, not sampling options. */
export function canonicalPrompt(body: Record<string, unknown>): string {
  // The JSON.stringify of an object holding the defined ones of these fields in this order,
  // written out without building that object.
  let s = '';
  for (const k of PROMPT_FIELDS) {
    const v = body[k];
    if (v === undefined) continue;
    const j = JSON.stringify(v);
    if (j === undefined) continue; // a function or symbol: JSON.stringify leaves the key out
    s += (s ? ',"' : '{"') + k + '":' + j;
  }
  return s ? s + '}' : '{}';
}

const PROMPT_FIELDS = ['system', 'instructions', 'messages', 'input', 'prompt'] as const;

/** HMAC-SHA256 of a text under the audit hash key, hex. */
export function keyedHash(key: Buffer, text: string): string {
  return keyedSha256For(key).hex(text);
}

const round = (n: number) => Math.round(n * 100) / 100;

const utf8 = new TextEncoder();

/**
 * The longest prefix of `s` whose UTF-8 encoding takes at most `maxBytes` bytes. Cut between
 * characters: never inside a multi-byte character or a surrogate pair (`encodeInto` writes only
 * whole characters and reports the UTF-16 units it consumed).
 */
export function utf8Head(s: string, maxBytes: number): string {
  if (maxBytes <= 0) return '';
  // Each UTF-16 unit takes at least one byte: a string of at most maxBytes units may fit whole.
  if (s.length <= maxBytes && Buffer.byteLength(s, 'utf8') <= maxBytes) return s;
  const { read } = utf8.encodeInto(s, new Uint8Array(maxBytes));
  return s.slice(0, read);
}

/**
 * Collects the output text of a response for hashing (and the captured body, when wanted): the
 * proxy calls `body` with the JSON body sent, or `event` with each SSE event sent.
 */
export class OutputTap {
  private text = '';
  /** Whole bodies whose text is read out when it is asked for (after the response, not before it). */
  private bodies: Array<Record<string, unknown>> = [];
  private raw: string[] = [];
  private rawBytes = 0;
  private truncated = false;
  constructor(private readonly captureBytes = 0) {}
  /** A whole JSON body sent to the client. */
  body(o: Record<string, unknown>, serialized: string): void {
    this.bodies.push(o);
    this.keep(serialized);
  }
  /**
   * One SSE event's data sent to the client. `parsed` is `JSON.parse(data)` when the caller already
   * has it (the proxy parses every upstream event; an event relayed unchanged need not be parsed
   * twice); without it the data is parsed here.
   */
  event(data: string, parsed?: unknown): void {
    if (data !== '[DONE]') {
      try {
        this.text += deltaText(parsed === undefined ? JSON.parse(data) : parsed);
      } catch {
        /* not JSON */
      }
    }
    if (this.captureBytes > 0) this.keep(`data: ${data}\n\n`);
  }
  /** Keeps `s` for the capture, counting UTF-8 bytes; the part beyond `captureBytes` is cut on a character boundary. */
  private keep(s: string): void {
    if (this.captureBytes <= 0 || this.truncated) return;
    const bytes = Buffer.byteLength(s, 'utf8');
    if (this.rawBytes + bytes > this.captureBytes) {
      this.raw.push(utf8Head(s, this.captureBytes - this.rawBytes));
      this.truncated = true;
      this.rawBytes = this.captureBytes;
      return;
    }
    this.raw.push(s);
    this.rawBytes += bytes;
  }
  /** The output text seen so far. */
  outputText(): string {
    if (this.bodies.length > 0) {
      for (const b of this.bodies) this.text += outputText(b);
      this.bodies = [];
    }
    return this.text;
  }
  /** The captured response (when capture is on), with a truncation marker. */
  captured(): string | null {
    if (this.captureBytes <= 0) return null;
    return this.raw.join('') + (this.truncated ? '\n[truncated]' : '');
  }
}

/** Audit state a request carries in `ctx.state.audit`. */
export interface AuditRequestState {
  /** The body as the client sent it (before request-stage transforms). */
  clientBody?: Record<string, unknown>;
  tap?: OutputTap;
  capture?: boolean;
}

/**
 * Longest text a request event keeps of a value that may come from the client or the upstream, in
 * UTF-16 code units (a longer one is cut and its field named in `truncated`): the model names as
 * the `model` column holds them, the end user as the proxy and the JWT login keep it, and the
 * names and codes of the guard, finding, policy and approval records. Without these caps a request
 * with a 3 MB model name made a 3 MB event, held as such in every sink's queue (150 such requests
 * to a stalled webhook: ~500 MB of heap).
 */
export const EVENT_TEXT_MAX = { model: 200, user: 256, clientIp: 100, route: 200, name: 100 } as const;

/** Longest lists a request event keeps: guard records, categories of one record, the union of categories, approvals (findings stop at 200 per side). */
export const EVENT_LIST_MAX = { guards: 100, guardCategories: 100, categories: 200, approvals: 100 } as const;

/**
 * `s` cut to at most `max` UTF-16 code units, never between the two halves of a surrogate pair.
 * The cut is a copy: V8's `slice` of a long string is a view that keeps the whole string alive
 * (a 200-character model name cut from a 3 MB one still held the 3 MB in every queued event);
 * UTF-16LE gives every code unit back as it was, lone surrogates included.
 */
export function cutText(s: string, max: number): string {
  if (s.length <= max) return s;
  const last = s.charCodeAt(max - 1);
  const next = s.charCodeAt(max);
  const pair = last >= 0xd800 && last <= 0xdbff && next >= 0xdc00 && next <= 0xdfff;
  return Buffer.from(s.slice(0, pair ? max - 1 : max), 'utf16le').toString('utf16le');
}

/**
 * Fields cut while the current request event is built (requestEvent runs synchronously, one at a
 * time, and resets it): the helpers below are module functions, not closures made per event
 * (those took the building of a typical event from 0.65 to 1.5 µs; these, to 0.70 µs).
 */
let truncated: string[] | undefined;

function markCut(field: string): void {
  if (!truncated) truncated = [field];
  else if (!truncated.includes(field)) truncated.push(field);
}

/** `v` as a string of at most `max` code units; a cut one names `field` in `truncated`. */
function fit(field: string, v: unknown, max: number = EVENT_TEXT_MAX.name): string {
  const s = typeof v === 'string' ? v : String(v);
  if (s.length <= max) return s;
  markCut(field);
  return cutText(s, max);
}

/** The first `max` items of a list; a cut one names `field` in `truncated`. */
function head<T>(field: string, list: T[], max: number): T[] {
  if (list.length <= max) return list;
  markCut(field);
  return list.slice(0, max);
}

/** Builds the request event from a finished request context. */
export function requestEvent(ctx: RequestContext, hashKey: Buffer, now = Date.now()): AuditEvent {
  truncated = undefined;
  try {
    return buildRequestEvent(ctx, hashKey, now);
  } finally {
    truncated = undefined;
  }
}

function buildRequestEvent(ctx: RequestContext, hashKey: Buffer, now: number): AuditEvent {
  const st = (ctx.state.audit ?? {}) as AuditRequestState;
  const p = ctx.principal;
  const totalMs = performance.now() - ctx.startedAt;
  const ev: AuditEvent = {
    id: newEventId(now),
    ts: now,
    kind: 'request',
    requestId: ctx.requestId,
    clientIp: fit('clientIp', ctx.clientIp, EVENT_TEXT_MAX.clientIp),
    route: fit('route', ctx.route, EVENT_TEXT_MAX.route),
    api: ctx.api,
    stream: ctx.stream,
    latencyMs: round(totalMs),
    gatewayMs: round(totalMs - (ctx.upstreamMs ?? 0)),
  };
  if (p) {
    ev.tenantId = p.tenantId;
    if (p.keyId) ev.keyId = p.keyId;
    if (p.user) ev.user = fit('user', p.user, EVENT_TEXT_MAX.user);
  }
  if (ctx.model) ev.model = fit('model', ctx.model, EVENT_TEXT_MAX.model);
  if (ctx.upstreamModel) ev.upstreamModel = fit('upstreamModel', ctx.upstreamModel, EVENT_TEXT_MAX.model);
  if (ctx.provider) ev.provider = ctx.provider.name;
  const errState = ctx.state.error as { code?: string } | undefined;
  const sent = typeof ctx.state.httpStatus === 'number' ? (ctx.state.httpStatus as number) : undefined;
  const status = ctx.status ?? sent ?? (ctx.aborted ? 499 : undefined);
  if (status !== undefined) ev.status = status;
  if (ctx.errorCode) ev.errorCode = fit('errorCode', ctx.errorCode);
  else if (errState?.code) ev.errorCode = fit('errorCode', errState.code);
  if (ctx.aborted) ev.aborted = true;
  if (ctx.upstreamMs !== undefined) ev.upstreamMs = round(ctx.upstreamMs);
  if (ctx.ttfbMs !== undefined) ev.ttfbMs = round(ctx.ttfbMs);
  if (ctx.usage) {
    ev.tokensIn = ctx.usage.inputTokens;
    ev.tokensOut = ctx.usage.outputTokens;
    if (ctx.usage.cachedInputTokens) ev.cachedTokensIn = ctx.usage.cachedInputTokens;
  }
  const lim = ctx.state.limits as { decision?: string; estimatedInputTokens?: number; settled?: string; estimatedOutputTokens?: number; costUsd?: number } | undefined;
  if (lim) {
    const l: NonNullable<AuditEvent['limits']> = {};
    if (lim.decision) l.decision = lim.decision;
    if (lim.estimatedInputTokens !== undefined) l.estimatedInputTokens = lim.estimatedInputTokens;
    if (lim.settled) l.settled = lim.settled;
    if (lim.estimatedOutputTokens !== undefined) l.estimatedOutputTokens = lim.estimatedOutputTokens;
    ev.limits = l;
    if (typeof lim.costUsd === 'number') ev.costUsd = lim.costUsd;
  }
  const pol = ctx.state.policy as { operation?: string; decision?: string; reason?: string; layer?: string } | undefined;
  if (pol) {
    ev.operation = pol.operation === undefined ? undefined : fit('operation', pol.operation);
    const o: NonNullable<AuditEvent['policy']> = { operation: pol.operation === undefined ? undefined : fit('policy', pol.operation), decision: pol.decision === undefined ? undefined : fit('policy', pol.decision) };
    if (pol.reason) o.reason = fit('policy', pol.reason);
    if (pol.layer) o.layer = fit('policy', pol.layer);
    ev.policy = o;
  }
  const recs = ctx.state.guards as Array<Record<string, any>> | undefined;
  const cats = new Set<string>();
  if (Array.isArray(recs) && recs.length) {
    ev.guards = head('guards', recs, EVENT_LIST_MAX.guards).map((r) => {
      const rc: unknown[] = Array.isArray(r.categories) ? r.categories : [];
      const categories = head('guards', rc, EVENT_LIST_MAX.guardCategories).map((c) => fit('guards', c));
      for (const c of categories) cats.add(c);
      const g: AuditGuardVerdict = { guard: fit('guards', r.guard), stage: fit('guards', r.stage), mode: fit('guards', r.mode ?? 'enforce'), action: fit('guards', r.action), categories, findings: Number(r.findings ?? 0) };
      if (typeof r.score === 'number') g.score = r.score;
      if (typeof r.latencyMs === 'number') g.latencyMs = r.latencyMs;
      if (r.error) g.error = fit('guards', r.error);
      if (typeof r.applied === 'boolean') g.applied = r.applied;
      return g;
    });
  }
  const run = ctx.state.guardRun as { outcome?: { action?: string; findings?: Array<Record<string, any>>; segments?: Array<{ id: string; role: string }> } } | undefined;
  const outcome = run?.outcome;
  if (outcome?.action) ev.guardAction = outcome.action;
  if (Array.isArray(outcome?.findings) && outcome.findings.length) {
    const roles = new Map((outcome.segments ?? []).map((s) => [s.id, s.role]));
    ev.findings = outcome.findings.slice(0, 200).map((f) => {
      const category = fit('findings', f.category);
      cats.add(category);
      const a: AuditFinding = { detector: fit('findings', f.detector), category, spanLength: Math.max(0, Number(f.end) - Number(f.start)) || 0 };
      if (f.severity) a.severity = fit('findings', f.severity);
      if (typeof f.score === 'number') a.score = f.score;
      const role = roles.get(String(f.segment));
      if (role) a.role = fit('findings', role); // the role of a message is the client's
      return a;
    });
  }
  // Output-side findings (response guards, streams, tool calls): the same fields, never values.
  const outFindings = ctx.state.responseFindings as ResponseFindingRecord[] | undefined;
  if (Array.isArray(outFindings) && outFindings.length) {
    const list = (ev.findings ??= []);
    for (const f of outFindings) {
      if (list.length >= 400) break;
      const category = fit('findings', f.category);
      cats.add(category);
      list.push({ detector: fit('findings', f.detector), category, score: f.score, spanLength: f.spanLength, role: 'assistant', stage: f.stage });
    }
  }
  if (!ev.guardAction && ev.guards?.some((g) => g.action === 'block' && g.applied)) ev.guardAction = 'block';
  if (cats.size) ev.categories = head('categories', [...cats].sort(), EVENT_LIST_MAX.categories);
  const approvals = ctx.state.approvals as Array<{ event: string; ticket?: string; tool?: string }> | undefined;
  // The tool of an approval is named by the upstream's tool call.
  if (Array.isArray(approvals) && approvals.length) ev.approvals = head('approvals', approvals, EVENT_LIST_MAX.approvals).map((a) => ({ event: fit('approvals', a.event), ...(a.ticket ? { ticket: fit('approvals', a.ticket) } : {}), ...(a.tool ? { tool: fit('approvals', a.tool) } : {}) }));
  const body = st.clientBody ?? ctx.body;
  if (body && hasKeys(body)) {
    const prompt = canonicalPrompt(body);
    ev.promptHash = keyedHash(hashKey, prompt);
    ev.promptChars = prompt.length;
  }
  const out = st.tap?.outputText();
  if (out) {
    ev.outputHash = keyedHash(hashKey, out);
    ev.outputChars = out.length;
  }
  if (truncated) ev.truncated = truncated;
  return ev;
}

function hasKeys(o: object): boolean {
  for (const _ in o) return true;
  return false;
}

/** An `admin_events` row as an audit event (id `adm_<row id>`, so bridging twice is harmless). */
export function adminEvent(row: { id: number | string; ts: number | string; actor: string; actor_role: string | null; action: string; target_type: string | null; target_id: string | null; tenant_id: string | null; source: string | null; request_id: string | null; detail: string | null }): AuditEvent {
  let detail: unknown = undefined;
  if (row.detail) {
    try {
      detail = JSON.parse(row.detail);
    } catch {
      detail = row.detail;
    }
  }
  return {
    id: `adm_${row.id}`,
    ts: Number(row.ts),
    kind: 'admin',
    action: row.action,
    actor: row.actor,
    ...(row.actor_role ? { actorRole: row.actor_role } : {}),
    ...(row.tenant_id ? { tenantId: row.tenant_id } : {}),
    ...(row.source ? { source: row.source } : {}),
    ...(row.request_id ? { requestId: row.request_id } : {}),
    ...(row.target_type ? { targetType: row.target_type } : {}),
    ...(row.target_id ? { targetId: row.target_id } : {}),
    ...(detail !== undefined ? { detail } : {}),
  };
}
