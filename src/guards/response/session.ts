/**
 * The response-guard session of one request: the output checker, the judge, the tool-call
 * checks with approvals, and the verdict records. Bodies and streams both go through it.
 */
import { ACTION_RANK } from '../pipeline.js';
import { GatewayError } from '../../errors.js';
import type { GuardsConfig } from '../config.js';
import type { Judge } from '../judges/index.js';
import type { GuardRecord, Stage, VerdictAction } from '../types.js';
import { checkToolCall, type ToolCallContext } from '../tools/index.js';
import type { OutputChecker, OutputFinding, OutputGuardName } from './scan.js';

/** Why an output was blocked. */
export interface BlockInfo {
  guard: OutputGuardName;
  categories: string[];
  /** True when a guard failed closed rather than found something. */
  failed?: boolean;
}

/** The result of checking one whole output text. */
export type TextResult = { ok: true; text: string } | { ok: false; block: BlockInfo };

/** The result of checking one tool call. */
export type CallResult = { kind: 'allow'; arguments: string } | { kind: 'drop'; categories: string[] } | { kind: 'block'; block: BlockInfo };

/** What the session needs to resolve approvals (the module passes a store-backed implementation). */
export interface ApprovalResolver {
  /**
   * Resolves a call that needs a human: returns true when an approved ticket presented with the
   * request covers exactly this call (and consumes it); otherwise creates a ticket and returns its id.
   */
  resolve(call: { name: string; arguments: string }, reason: string, categories: readonly string[]): Promise<{ approved: true } | { approved: false; ticket: string; expiresAt: number }>;
}

/** Options of a session. */
export interface SessionOptions {
  cfg: GuardsConfig;
  checker: OutputChecker;
  judge?: Judge;
  tools?: ToolCallContext;
  approvals?: ApprovalResolver;
  /** `ctx.state` of the request (records are appended to `state.guards`). */
  state: Record<string, unknown>;
  stage: Extract<Stage, 'response' | 'stream'>;
}

interface Agg {
  act: VerdictAction;
  categories: Set<string>;
  findings: number;
  latencyMs: number;
  error?: 'timeout' | 'error';
  stage: Stage;
}


/** One output-side finding as the audit trail records it: never the value, only its span length. */
export interface ResponseFindingRecord {
  detector: string;
  category: string;
  score: number;
  spanLength: number;
  stage: Stage;
}
/** Per-finding records kept per request (the counts in the guard records stay exact beyond it). */
const MAX_FINDING_RECORDS = 200;

/** A response-guard session. */
export class ResponseSession {
  readonly cfg: GuardsConfig;
  readonly checker: OutputChecker;
  readonly shadow: boolean;
  private readonly agg = new Map<string, Agg>();
  private readonly details: ResponseFindingRecord[] = [];
  /** Tickets created while checking this response (pending approval). */
  readonly pendingTickets: Array<{ ticket: string; tool: string; expiresAt: number }> = [];
  /** Set once the response was blocked (first block wins). */
  blocked?: BlockInfo;

  constructor(private readonly o: SessionOptions) {
    this.cfg = o.cfg;
    this.checker = o.checker;
    this.shadow = o.cfg.response.mode === 'shadow';
  }

  /** Records findings of a guard (aggregated per guard; flushed by `finish`). */
  note(guard: string, act: VerdictAction, categories: readonly string[], findings: number, latencyMs = 0, stage: Stage = this.o.stage, error?: 'timeout' | 'error'): void {
    let a = this.agg.get(guard);
    if (!a) {
      a = { act: 'allow', categories: new Set(), findings: 0, latencyMs: 0, stage };
      this.agg.set(guard, a);
    }
    if (ACTION_RANK[act] > ACTION_RANK[a.act]) a.act = act;
    // The released output differs from what the upstream stored (stored responses must not be returned raw).
    if ((act === 'block' || act === 'transform') && !this.isShadow(guard)) this.o.state.outputWithheld = true;
    for (const c of categories) a.categories.add(c);
    a.findings += findings;
    a.latencyMs += latencyMs;
    if (error) a.error = error;
  }

  /** Keeps detector, category, score and span length of each finding for the audit trail. */
  private detail(fs: ReadonlyArray<{ detector: string; category: string; score?: number; start: number; end: number }>, stage: Stage): void {
    for (const f of fs) {
      if (this.details.length >= MAX_FINDING_RECORDS) return;
      this.details.push({ detector: f.detector, category: f.category, score: typeof f.score === 'number' ? f.score : 1, spanLength: Math.max(0, f.end - f.start) || 0, stage });
    }
  }

  /** Records the findings of one scan. */
  noteFindings(fs: readonly OutputFinding[], latencyMs = 0): void {
    this.detail(fs, this.o.stage);
    const by = new Map<OutputGuardName, OutputFinding[]>();
    for (const f of fs) by.set(f.guard, [...(by.get(f.guard) ?? []), f]);
    for (const [g, list] of by) {
      const act: VerdictAction = list.some((f) => f.act === 'block') ? 'block' : list.some((f) => f.act === 'rewrite') ? 'transform' : 'flag';
      this.note(g, act, list.map((f) => f.category), list.length, latencyMs / by.size);
    }
  }

  /** The block among findings, if any. */
  blockOf(fs: readonly OutputFinding[]): BlockInfo | undefined {
    const b = fs.filter((f) => f.act === 'block');
    if (b.length === 0) return undefined;
    return { guard: b[0]!.guard, categories: [...new Set(b.filter((f) => f.guard === b[0]!.guard).map((f) => f.category))] };
  }

  /** Asks the output judge (Llama Guard) about a whole output; undefined when allowed or not configured. */
  async judge(text: string): Promise<BlockInfo | undefined> {
    const j = this.o.judge;
    if (!j || !this.cfg.response.unsafe.enabled || !this.cfg.response.unsafe.judge || text.trim().length === 0) return undefined;
    const t0 = performance.now();
    try {
      const v = await j.classify(text, AbortSignal.timeout(j.timeoutMs));
      const ms = performance.now() - t0;
      if (!v.unsafe) {
        this.note('response:judge', 'allow', [], 0, ms);
        return undefined;
      }
      const act = this.cfg.response.unsafe.action === 'block' ? 'block' : 'flag';
      this.note('response:judge', act, v.categories, v.categories.length, ms);
      return act === 'block' ? { guard: 'response:judge', categories: v.categories } : undefined;
    } catch (e) {
      const ms = performance.now() - t0;
      const timeout = (e as Error)?.name === 'TimeoutError' || /timeout/i.test(String((e as Error)?.message));
      if (j.failMode === 'open') {
        this.note('response:judge', 'allow', ['guard_failure'], 0, ms, this.o.stage, timeout ? 'timeout' : 'error');
        return undefined;
      }
      this.note('response:judge', 'block', ['guard_failure'], 0, ms, this.o.stage, timeout ? 'timeout' : 'error');
      return { guard: 'response:judge', categories: ['guard_failure'], failed: true };
    }
  }

  /** Checks one whole output text (non-streamed): scan, block/rewrite, whole-text checks, judge. */
  async checkText(text: string): Promise<TextResult> {
    if (text.length === 0 || !this.cfg.response.enabled) return { ok: true, text };
    if (text.length > this.cfg.response.maxOutputChars) {
      this.note('response:size', 'block', ['output_too_large'], 1);
      return { ok: false, block: { guard: 'response:exfil', categories: ['output_too_large'], failed: true } };
    }
    const t0 = performance.now();
    const fs = [...this.checker.scan(text), ...this.checker.whole(text)];
    this.noteFindings(fs, performance.now() - t0);
    const b = this.blockOf(fs);
    if (b) return { ok: false, block: b };
    const jb = await this.judge(text);
    if (jb) return { ok: false, block: jb };
    return { ok: true, text: this.checker.rewrite(text, fs) };
  }

  /** Checks one model-proposed tool call (validation, arguments, SQL, taint, approvals). */
  async checkCall(call: { name: string; arguments: string }): Promise<CallResult> {
    const tc = this.o.tools;
    if (!tc || !tc.cfg.enabled) return { kind: 'allow', arguments: call.arguments };
    const t0 = performance.now();
    const d = checkToolCall(call, tc);
    const ms = performance.now() - t0;
    const shadowTools = tc.cfg.mode === 'shadow';
    this.detail(d.findings, 'tool_call');
    if (d.kind === 'allow') {
      this.note('response:tools', d.rewritten ? 'transform' : d.findings.length ? 'flag' : 'allow', d.findings.map((f) => f.category), d.findings.length, ms, 'tool_call');
      return { kind: 'allow', arguments: shadowTools ? call.arguments : d.arguments };
    }
    if (d.kind === 'violation') {
      this.note('response:tools', 'block', d.categories, d.findings.length, ms, 'tool_call');
      if (shadowTools) return { kind: 'allow', arguments: call.arguments };
      if (tc.cfg.onViolation === 'drop') return { kind: 'drop', categories: d.categories };
      return { kind: 'block', block: { guard: 'response:tools', categories: d.categories } };
    }
    // Needs a human.
    this.note('response:tools', 'block', d.categories, d.findings.length, ms, 'tool_call');
    if (shadowTools) return { kind: 'allow', arguments: call.arguments };
    if (!this.o.approvals) return { kind: 'block', block: { guard: 'response:tools', categories: d.categories } };
    const r = await this.o.approvals.resolve({ name: call.name, arguments: d.arguments }, d.reason, d.categories);
    if (r.approved) {
      this.note('response:approvals', 'allow', ['approved'], 0, 0, 'tool_call');
      return { kind: 'allow', arguments: d.arguments };
    }
    this.pendingTickets.push({ ticket: r.ticket, tool: call.name, expiresAt: r.expiresAt });
    this.note('response:approvals', 'block', ['approval_required'], 1, 0, 'tool_call');
    return { kind: 'block', block: { guard: 'response:tools', categories: ['approval_required'] } };
  }

  /** The client error for pending approvals (structured: ticket ids, tools, expiry). */
  approvalError(): GatewayError {
    const t = this.pendingTickets;
    return new GatewayError('PCL_APPROVAL_REQUIRED', {
      message: `The response proposes a tool call that needs a human approval (ticket ${t.map((x) => x.ticket).join(', ')}). Retry the same request with the header x-portcullis-approval: <ticket> once it is approved.`,
      details: { approval: { tickets: t.map((x) => ({ ticket: x.ticket, tool: x.tool, expires_at: Math.floor(x.expiresAt / 1000) })) } },
      headers: { 'x-portcullis-approval-ticket': t.map((x) => x.ticket).join(','), 'x-portcullis-guard': 'response:tools', 'x-portcullis-action': 'block' },
    });
  }

  /** True when the guard only records (tool guards follow `guards.tools.mode`, the rest `guards.response.mode`). */
  private isShadow(guard: string): boolean {
    return guard === 'response:tools' || guard === 'response:approvals' ? this.o.tools?.cfg.mode === 'shadow' : this.shadow;
  }

  /** Writes the aggregated records to `state.guards` (call once at the end). */
  finish(): GuardRecord[] {
    const sink = ((this.o.state.guards ??= []) as GuardRecord[]);
    const out: GuardRecord[] = [];
    for (const [guard, a] of this.agg) {
      const shadow = this.isShadow(guard);
      const rec: GuardRecord = {
        guard,
        stage: a.stage,
        mode: shadow ? 'shadow' : 'enforce',
        action: a.act,
        categories: [...a.categories].slice(0, 50),
        findings: a.findings,
        latencyMs: Math.round(a.latencyMs * 1000) / 1000,
        applied: !shadow && a.act !== 'allow',
        ...(a.error ? { error: a.error } : {}),
      };
      out.push(rec);
      sink.push(rec);
    }
    this.agg.clear();
    if (this.details.length) {
      ((this.o.state.responseFindings ??= []) as ResponseFindingRecord[]).push(...this.details);
      this.details.length = 0;
    }
    return out;
  }
}
