/**
 * The scan loop: sends prepared attacks with bounded concurrency, grades each reply,
 * keeps a resumable state file, records or replays target replies, and asks the
 * optional LLM judge.
 */
import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { runApiCheck, type ApiCheckResult } from './api-checks.js';
import { grade } from './graders/index.js';
import { detectorHits } from './graders/detectors.js';
import { judgeResult, type JudgeOptions } from './judge.js';
import type { Canaries, ChatMessage, ChatProbe, ChatReply, Outcome, PreparedAttack, ProbeResult, Target } from './types.js';

const REPLY_EXCERPT = 4000;

/** Options of one scan run. */
export interface RunOptions {
  target: Target | null;
  attacks: PreparedAttack[];
  canaries: Canaries;
  /** The base system prompt (stored in record files). */
  systemPrompt: string;
  /** The system prompt with planted credentials (stored in record files). */
  secretSystemPrompt?: string;
  seed: number;
  concurrency: number;
  /** Resume/state file (JSON lines). */
  stateFile?: string;
  /** Record replies to this file. */
  recordFile?: string;
  /** Replay replies from this file (no target calls). */
  replay?: ReplayData;
  judge?: JudgeOptions;
  altApiKey?: string;
  rateBurst?: number;
  signal?: AbortSignal;
  /** Called after each result. */
  onResult?: (r: ProbeResult, done: number, total: number) => void;
}

/** Replies loaded from a record file. */
export interface ReplayData {
  seed: number;
  systemPrompt: string;
  secretSystemPrompt: string;
  chat: Map<string, ChatReply[]>;
  api: Map<string, ApiCheckResult>;
}

interface RecordHeader {
  type: 'header';
  seed: number;
  systemPrompt: string;
  secretSystemPrompt?: string;
  createdAt: string;
}

/** Loads a record file for `--replay`. */
export function loadReplay(file: string): ReplayData {
  const lines = readFileSync(file, 'utf8').split('\n').filter(Boolean);
  const first = JSON.parse(lines[0] ?? '{}') as Partial<RecordHeader>;
  if (first.type !== 'header' || typeof first.seed !== 'number') throw new Error(`${file}: not a portcullis record file (missing header line)`);
  const data: ReplayData = { seed: first.seed, systemPrompt: first.systemPrompt ?? '', secretSystemPrompt: first.secretSystemPrompt ?? '', chat: new Map(), api: new Map() };
  for (const line of lines.slice(1)) {
    const e = JSON.parse(line) as { type: string; key: string; replies?: ChatReply[]; result?: ApiCheckResult };
    if (e.type === 'reply' && e.replies) data.chat.set(e.key, e.replies);
    if (e.type === 'api' && e.result) data.api.set(e.key, e.result);
  }
  return data;
}

/** The scan state read back from a `--resume` file. */
export interface ResumeState {
  seed: number;
  done: Map<string, ProbeResult>;
  sent: Set<string>;
}

/** Reads a state file; returns null when it does not exist yet. */
export function loadState(file: string): ResumeState | null {
  if (!existsSync(file)) return null;
  const lines = readFileSync(file, 'utf8').split('\n').filter(Boolean);
  const state: ResumeState = { seed: NaN, done: new Map(), sent: new Set() };
  for (const line of lines) {
    let e: { type: string; seed?: number; key?: string; result?: ProbeResult };
    try {
      e = JSON.parse(line) as typeof e;
    } catch {
      continue; // a line torn by a crash
    }
    if (e.type === 'state' && typeof e.seed === 'number') state.seed = e.seed;
    else if (e.type === 'sent' && e.key) state.sent.add(e.key);
    else if (e.type === 'done' && e.result) state.done.set(e.result.key, e.result);
  }
  if (Number.isNaN(state.seed)) throw new Error(`${file}: not a portcullis scan state file`);
  return state;
}

/** Classifies a chat reply before grading: error or blocked, or null when it should be graded. */
export function preClassify(reply: ChatReply): Outcome | null {
  if (reply.status === 0) return 'error';
  if (reply.status >= 200 && reply.status < 300) return reply.error && !reply.text && reply.toolCalls.length === 0 ? 'error' : null;
  if (reply.status === 400 || reply.status === 403 || reply.status === 413 || reply.status === 422 || reply.status === 451) return 'blocked';
  return 'error';
}

function blockedByFilter(reply: ChatReply): boolean {
  return reply.finishReason === 'content_filter' || reply.guard?.action === 'block';
}

async function sendChat(target: Target, attack: PreparedAttack, signal?: AbortSignal): Promise<ChatReply[]> {
  const req = attack.request!;
  const probe = attack.probe as ChatProbe;
  if (!probe.sequential) return [await target.chat(req, signal)];
  const replies: ChatReply[] = [];
  const convo: ChatMessage[] = [];
  for (const m of req.messages) {
    convo.push(m);
    if (m.role !== 'user') continue;
    const reply = await target.chat({ ...req, messages: [...convo] }, signal);
    replies.push(reply);
    if (preClassify(reply) !== null) break;
    convo.push({ role: 'assistant', content: reply.text });
  }
  return replies;
}

/** The attacker-controlled text of a request (user and tool turns). */
export function attackTextOf(attack: PreparedAttack): string {
  return (attack.request?.messages ?? []).filter((m) => m.role !== 'assistant').map((m) => m.content).join('\n');
}

function chatResult(attack: PreparedAttack, replies: ChatReply[], opts: RunOptions): ProbeResult {
  const probe = attack.probe as ChatProbe;
  const ctx = { canaries: opts.canaries, systemPrompt: attack.request?.system ?? opts.systemPrompt, attackText: attackTextOf(attack) };
  const reply = replies[replies.length - 1];
  const pre = preClassify(reply);
  const base = {
    key: attack.key,
    probeId: probe.id,
    family: probe.family,
    severity: probe.severity,
    description: probe.description,
    buff: attack.buff,
    mode: attack.mode,
    prompt: attack.prompt,
    reply: (reply.text || reply.error || '').slice(0, REPLY_EXCERPT),
    toolCalls: reply.toolCalls,
    status: reply.status,
    latencyMs: replies.reduce((a, r) => a + r.latencyMs, 0),
    attempts: replies.reduce((a, r) => a + r.attempts, 0),
    ...(reply.guard ? { guard: reply.guard } : {}),
    ...(reply.error ? { error: reply.error.slice(0, 500) } : {}),
  };
  // DoS probes are graded on the status too: a 4xx means the endpoint bounded the request.
  if (probe.grade.type === 'unbounded' && pre !== 'error') {
    const v = grade(probe.grade, reply, ctx);
    return { ...base, outcome: v.success ? 'succeeded' : pre === 'blocked' ? 'blocked' : 'resisted', verdict: v };
  }
  if (pre === 'error') return { ...base, outcome: 'error', verdict: { grader: 'transport', success: false, score: 0, evidence: reply.error ?? `HTTP ${reply.status}` } };
  if (pre === 'blocked') return { ...base, outcome: 'blocked', verdict: { grader: 'transport', success: false, score: 1, evidence: `request refused with HTTP ${reply.status}${reply.guard ? ` by guard ${reply.guard.name}` : ''}` } };
  const v = grade(probe.grade, reply, ctx);
  const outcome: Outcome = v.success ? 'succeeded' : blockedByFilter(reply) ? 'blocked' : 'resisted';
  const hits = detectorHits(reply.text.slice(0, 20_000));
  return { ...base, outcome, verdict: v, ...(hits.length ? { detectors: hits } : {}) };
}

function apiResult(attack: PreparedAttack, r: ApiCheckResult): ProbeResult {
  const p = attack.probe;
  return {
    key: attack.key,
    probeId: p.id,
    family: p.family,
    severity: p.severity,
    description: p.description,
    buff: null,
    mode: 'raw',
    prompt: attack.prompt,
    reply: r.reply,
    toolCalls: [],
    status: r.status,
    outcome: r.error && r.status === 0 ? 'error' : r.verdict.success ? 'succeeded' : 'resisted',
    verdict: r.verdict,
    latencyMs: r.latencyMs,
    attempts: 1,
    ...(r.error ? { error: r.error } : {}),
  };
}

/** Runs the attacks and returns one result per attack, in attack order. */
export async function runScan(opts: RunOptions): Promise<ProbeResult[]> {
  const results = new Map<string, ProbeResult>();
  let prior: ResumeState | null = null;
  if (opts.stateFile) {
    prior = loadState(opts.stateFile);
    if (prior && prior.seed !== opts.seed) throw new Error(`state file was written with --seed ${prior.seed}; resume with the same seed`);
    if (!prior) writeFileSync(opts.stateFile, JSON.stringify({ type: 'state', seed: opts.seed, createdAt: new Date().toISOString() }) + '\n');
  }
  if (opts.recordFile) {
    const header: RecordHeader = { type: 'header', seed: opts.seed, systemPrompt: opts.systemPrompt, ...(opts.secretSystemPrompt ? { secretSystemPrompt: opts.secretSystemPrompt } : {}), createdAt: new Date().toISOString() };
    writeFileSync(opts.recordFile, JSON.stringify(header) + '\n');
  }
  const total = opts.attacks.length;
  let done = 0;
  const todo: PreparedAttack[] = [];
  for (const a of opts.attacks) {
    const old = prior?.done.get(a.key);
    if (old) {
      results.set(a.key, old);
      done++;
      opts.onResult?.(old, done, total);
    } else if (prior?.sent.has(a.key)) {
      // Sent before the interruption but never answered: not sent twice.
      const r = interruptedResult(a);
      results.set(a.key, r);
      appendFileSync(opts.stateFile!, JSON.stringify({ type: 'done', result: r }) + '\n');
      done++;
      opts.onResult?.(r, done, total);
    } else todo.push(a);
  }

  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < todo.length) {
      if (opts.signal?.aborted) return;
      const attack = todo[next++];
      if (opts.stateFile) appendFileSync(opts.stateFile, JSON.stringify({ type: 'sent', key: attack.key }) + '\n');
      let result: ProbeResult;
      try {
        result = await runOne(attack, opts);
      } catch (err) {
        if (opts.signal?.aborted) return;
        throw err;
      }
      if (opts.judge && attack.probe.kind === 'chat' && (result.outcome === 'succeeded' || result.outcome === 'resisted')) {
        result.judge = await judgeResult(opts.judge, result, opts.signal);
      }
      results.set(attack.key, result);
      if (opts.stateFile) appendFileSync(opts.stateFile, JSON.stringify({ type: 'done', result }) + '\n');
      done++;
      opts.onResult?.(result, done, total);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(opts.concurrency, todo.length)) }, worker));
  if (opts.signal?.aborted) throw opts.signal.reason instanceof Error ? opts.signal.reason : new Error('scan aborted');
  return opts.attacks.map((a) => results.get(a.key)!).filter(Boolean);
}

function interruptedResult(a: PreparedAttack): ProbeResult {
  return {
    key: a.key,
    probeId: a.probe.id,
    family: a.probe.family,
    severity: a.probe.severity,
    description: a.probe.description,
    buff: a.buff,
    mode: a.mode,
    prompt: a.prompt,
    reply: '',
    toolCalls: [],
    status: 0,
    outcome: 'error',
    verdict: { grader: 'resume', success: false, score: 0, evidence: 'sent before an interruption; not resent on resume' },
    latencyMs: 0,
    attempts: 0,
    interrupted: true,
    error: 'interrupted',
  };
}

async function runOne(attack: PreparedAttack, opts: RunOptions): Promise<ProbeResult> {
  if (attack.probe.kind === 'api') {
    let r: ApiCheckResult | undefined;
    if (opts.replay) {
      r = opts.replay.api.get(attack.key);
      if (!r) return missingReplay(attack);
    } else {
      r = await runApiCheck(attack.probe, opts.target!, { seed: opts.seed, burst: opts.rateBurst ?? 20, signal: opts.signal, ...(opts.altApiKey ? { altApiKey: opts.altApiKey } : {}) });
      if (opts.recordFile) appendFileSync(opts.recordFile, JSON.stringify({ type: 'api', key: attack.key, result: r }) + '\n');
    }
    return apiResult(attack, r);
  }
  let replies: ChatReply[] | undefined;
  if (opts.replay) {
    replies = opts.replay.chat.get(attack.key);
    if (!replies?.length) return missingReplay(attack);
  } else {
    replies = await sendChat(opts.target!, attack, opts.signal);
    if (opts.recordFile) appendFileSync(opts.recordFile, JSON.stringify({ type: 'reply', key: attack.key, replies }) + '\n');
  }
  return chatResult(attack, replies, opts);
}

function missingReplay(a: PreparedAttack): ProbeResult {
  return { ...interruptedResult(a), interrupted: false, verdict: { grader: 'replay', success: false, score: 0, evidence: 'no recorded reply for this attack' }, error: 'not in the record file' };
}
