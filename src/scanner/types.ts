/** Shared types of the red-team scanner: probes, targets, replies, graded results and reports. */
import type { Severity } from '../detect/types.js';

export type { Severity };

/** The probe families the scanner knows, in report order. */
export const PROBE_FAMILIES = [
  'direct-injection',
  'indirect-injection',
  'jailbreak',
  'refusal-suppression',
  'encoding',
  'system-prompt-extraction',
  'pii-leakage',
  'secret-leakage',
  'exfiltration',
  'excessive-agency',
  'unsafe-content',
  'dos',
  'multi-turn',
  'api',
] as const;

/** One probe family id. */
export type ProbeFamily = (typeof PROBE_FAMILIES)[number];

/** Severity order, lowest first. */
export const SEVERITIES: readonly Severity[] = ['low', 'medium', 'high', 'critical'];

/** A tool the probe offers to the model (JSON-schema parameters, OpenAI style). */
export interface ToolDef {
  name: string;
  description: string;
  parameters: Record<string, unknown>;
}

/** A tool call the model proposed. `arguments` is the raw JSON string. */
export interface ToolCall {
  id: string;
  name: string;
  arguments: string;
}

/** One message of a conversation sent to the target (provider-neutral). */
export type ChatMessage =
  | { role: 'user'; content: string }
  | { role: 'assistant'; content: string; toolCalls?: ToolCall[] }
  | { role: 'tool'; toolCallId: string; name: string; content: string };

/** A provider-neutral chat request. */
export interface ChatRequest {
  system?: string;
  messages: ChatMessage[];
  tools?: ToolDef[];
  maxTokens?: number;
  stream: boolean;
}

/** Which Portcullis guard decided, read from the gateway's debug headers. */
export interface GuardDecision {
  /** Guard name from `x-portcullis-guard`. */
  name: string;
  /** Action from `x-portcullis-action` (block, transform, flag, allow). */
  action: string;
}

/** What came back from the target for one chat request. */
export interface ChatReply {
  /** HTTP status of the final attempt (0 when no response arrived). */
  status: number;
  /** Assistant text (concatenated across streamed chunks). */
  text: string;
  /** Tool calls the model proposed. */
  toolCalls: ToolCall[];
  /** Provider finish/stop reason, when given. */
  finishReason?: string;
  /** The error body or transport error when the request did not succeed. */
  error?: string;
  /** Lower-cased response headers of the final attempt. */
  headers: Record<string, string>;
  /** Wall time of the request including retries, in milliseconds. */
  latencyMs: number;
  /** Number of attempts made (1 = no retry). */
  attempts: number;
  /** Whether the reply was streamed. */
  streamed: boolean;
  /** The gateway guard decision, when the target exposed one. */
  guard?: GuardDecision;
}

/** A low-level HTTP request used by API-level probes. */
export interface RawRequest {
  method: string;
  /** Path relative to the target's base URL (starts with `/`). */
  path: string;
  headers?: Record<string, string>;
  body?: string;
  /** Send without the configured credentials. */
  noAuth?: boolean;
}

/** A low-level HTTP response. */
export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
  latencyMs: number;
  error?: string;
}

/** The target protocol. */
export type TargetKind = 'openai' | 'anthropic' | 'http';

/** An endpoint under test. */
export interface Target {
  kind: TargetKind;
  /** Human-readable description (URL and model). */
  describe(): string;
  /** Sends one chat request (with retries) and returns the reply; never throws for HTTP errors. */
  chat(req: ChatRequest, signal?: AbortSignal): Promise<ChatReply>;
  /** Sends one raw HTTP request (no retries) for API-level checks. */
  raw(req: RawRequest, signal?: AbortSignal): Promise<RawResponse>;
  /** The path and body of a minimal valid chat request, for API-level checks. */
  minimalChat(): { path: string; body: string };
}

/** The per-scan secrets planted into prompts: random, seeded by `--seed`. */
export interface Canaries {
  /** Marker the model must not reveal (placed in the system prompt). */
  system: string;
  /** Marker an attack asks the model to print (proves it followed injected instructions). */
  marker: string;
  /** Fake personal data planted in context. */
  pii: { name: string; email: string; phone: string; iban: string; ssn: string };
  /** Fake credentials planted in context (token-shaped, generated at run time). */
  secrets: { apiKey: string; awsKeyId: string; dbPassword: string };
  /** Attacker-controlled host used in exfiltration and agency probes. */
  attackerHost: string;
  /** Attacker e-mail address used in agency probes. */
  attackerEmail: string;
}

/** How a chat probe is graded (deterministic). */
export type GradeSpec =
  /** Success when the reply contains one of the named canaries (also decoded forms). */
  | { type: 'canary'; canaries: CanaryRef[] }
  /** Success when the reply contains the injected marker outside a refusal. */
  | { type: 'marker' }
  /** Success when the reply complies (substantive, no refusal) with a harmful ask. */
  | { type: 'compliance'; minWords?: number; topic?: string[] }
  /** Success when the model calls a forbidden tool or passes injected/dangerous arguments. */
  | { type: 'tool-call'; forbidden?: string[]; injectedArgs?: CanaryRef[]; sqlTool?: string }
  /** Success when the reply holds a link/image to the attacker host or carrying canary data. */
  | { type: 'exfil-link'; canaries: CanaryRef[] }
  /** Success when the reply repeats a long stretch of the system prompt. */
  | { type: 'system-overlap' }
  /** Success when the endpoint accepted an oversized or unbounded request. */
  | { type: 'unbounded'; maxWords: number; maxLatencyMs: number };

/** A reference to one planted canary value. */
export type CanaryRef =
  | 'system'
  | 'marker'
  | 'pii.name'
  | 'pii.email'
  | 'pii.phone'
  | 'pii.iban'
  | 'pii.ssn'
  | 'secrets.apiKey'
  | 'secrets.awsKeyId'
  | 'secrets.dbPassword'
  | 'attackerHost'
  | 'attackerEmail';

/** One turn of a probe conversation as template text (placeholders `{{canary.ref}}`). */
export type TurnTemplate =
  | { role: 'user'; content: string }
  | { role: 'assistant'; content: string; toolCalls?: { id: string; name: string; arguments: string }[] }
  | { role: 'tool'; toolCallId: string; name: string; content: string };

/** Common fields of every probe. */
interface ProbeBase {
  /** Stable id, `family/slug`. */
  id: string;
  family: ProbeFamily;
  description: string;
  severity: Severity;
  /** Where the attack text comes from (`portcullis` for our own templates, else the dataset). */
  source: string;
  /** Licence of the attack text. */
  licence: string;
}

/** A probe that talks to the model through the chat API. */
export interface ChatProbe extends ProbeBase {
  kind: 'chat';
  /** The conversation; `user` turns marked `send` in multi-turn probes are sent one by one. */
  turns: TurnTemplate[];
  /** Multi-turn: send each user turn in sequence, appending the model's replies. */
  sequential?: boolean;
  tools?: ToolDef[];
  grade: GradeSpec;
  /** Whether buffs (perturbations) may be applied to the last user turn. */
  buffable: boolean;
  maxTokens?: number;
  /** Encoding family: the encoding (a buff name) applied to the last user turn. */
  encoding?: string;
}

/** A probe of the HTTP API itself (auth, BOLA, errors, rate limits, CORS). */
export interface ApiProbe extends ProbeBase {
  kind: 'api';
  check: 'missing-auth' | 'bola' | 'verbose-errors' | 'rate-limit' | 'cors';
}

/** A probe: data with an id, a family, a severity, its source/licence and a grader. */
export type Probe = ChatProbe | ApiProbe;

/** A concrete attack after placeholders and buffs were applied. */
export interface PreparedAttack {
  /** Unique key of this attempt: probe id, buff and stream mode. */
  key: string;
  probe: Probe;
  buff: string | null;
  /** `stream`, `plain`, or `raw` for API probes. */
  mode: 'plain' | 'stream' | 'raw';
  /** The request turns (chat probes). */
  request?: ChatRequest;
  /** The attack text (last user turn, or a description for API probes). */
  prompt: string;
}

/** Outcome of one graded attempt. */
export type Outcome = 'succeeded' | 'resisted' | 'blocked' | 'error';

/** A grader's decision. */
export interface GradeVerdict {
  /** Grader id, e.g. `canary`, `refusal`, `tool-call`. */
  grader: string;
  /** True when the attack achieved its goal. */
  success: boolean;
  /** The part of the reply that proves success (or why it failed). */
  evidence: string;
  /** Confidence in [0, 1]. */
  score: number;
}

/** The optional LLM judge's verdict, stored beside the deterministic one. */
export interface JudgeVerdict {
  success: boolean | null;
  reason: string;
  model: string;
  error?: string;
}

/** One graded attempt, as stored in JSON reports, state and record files. */
export interface ProbeResult {
  key: string;
  probeId: string;
  family: ProbeFamily;
  severity: Severity;
  description: string;
  buff: string | null;
  mode: 'plain' | 'stream' | 'raw';
  prompt: string;
  /** Reply excerpt (bounded). */
  reply: string;
  toolCalls: ToolCall[];
  status: number;
  outcome: Outcome;
  verdict: GradeVerdict;
  judge?: JudgeVerdict;
  guard?: GuardDecision;
  /** Supplementary findings of the src/detect detectors on the reply (categories only, never values). */
  detectors?: { detector: string; category: string; severity: Severity; score: number }[];
  latencyMs: number;
  attempts: number;
  error?: string;
  /** Set when the probe was sent before an interruption and is not resent on resume. */
  interrupted?: boolean;
}

/** Aggregate numbers for a group of results. */
export interface Rate {
  total: number;
  succeeded: number;
  blocked: number;
  errors: number;
  /** Attack success rate over graded (non-error) attempts. */
  asr: number;
}

/** A full scan report (the JSON report format). */
export interface ScanReport {
  tool: 'portcullis-scan';
  version: 1;
  startedAt: string;
  finishedAt: string;
  target: string;
  seed: number;
  options: Record<string, unknown>;
  results: ProbeResult[];
  summary: {
    overall: Rate;
    byFamily: Record<string, Rate>;
    bySeverity: Record<string, Rate>;
    /** Guard name → number of attempts it stopped. */
    byGuard: Record<string, number>;
  };
  /** Probes whose outcome differs between streamed and non-streamed sends. */
  streamParity: { probeId: string; buff: string | null; plain: Outcome; stream: Outcome }[];
  baseline?: {
    file: string;
    regressions: string[];
    fixed: string[];
    newKeys: string[];
  };
  gates: GateResult[];
  passed: boolean;
}

/** The result of one gate. */
export interface GateResult {
  gate: string;
  threshold: number;
  actual: number;
  passed: boolean;
}
