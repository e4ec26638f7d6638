/**
 * The guard contract (DESIGN.md "The guard contract"): segments with a role and a trust
 * level go in, a verdict (`allow | flag | transform | block`) comes out. The pipeline
 * decides what happens next; guards never call each other.
 */
import type { Finding, Trust } from '../detect/types.js';

/** The fixed list of stages a guard can run at; registering for another name throws. */
export const STAGES = ['request', 'response', 'stream', 'tool_call'] as const;

/** A stage of the request/response lifecycle. */
export type Stage = (typeof STAGES)[number];

/** Cost classes, cheapest first: the pipeline runs guards in this order. */
export const COSTS = ['cheap', 'moderate', 'model'] as const;

/** How expensive a guard is: rules and local detectors are cheap, HTTP judges are `model`. */
export type Cost = (typeof COSTS)[number];

/** Who wrote a segment. `retrieved` is a document the client marked as retrieved content. */
export type SegmentRole = 'system' | 'developer' | 'user' | 'assistant' | 'tool' | 'retrieved';

/** All segment roles. */
export const SEGMENT_ROLES: readonly SegmentRole[] = ['system', 'developer', 'user', 'assistant', 'tool', 'retrieved'];

/** Where a segment's text lives in the provider body: object keys and array indexes from the root. */
export type SegmentPath = ReadonlyArray<string | number>;

/** One piece of text of a request or response, with who wrote it and how far it is trusted. */
export interface Segment {
  /** Stable id within one inspected body (e.g. `s0`, `s1` …). */
  id: string;
  /** Who wrote it. */
  role: SegmentRole;
  /** `untrusted` for tool results and retrieved documents: stricter thresholds apply. */
  trust: Trust;
  /** The text as the client sent it (or as a previous guard rewrote it). */
  text: string;
  /** Where the text lives in the body, so a transform can be written back. */
  path: SegmentPath;
  /**
   * Set when the text was decoded from token ids (completions `prompt`, embeddings `input`): a
   * transformed text is written back as the codec's token ids, in the shape the client sent.
   */
  tokens?: TokenCodec;
  /**
   * Set on the text parts of one message's content array (the same value for all of them): the
   * model reads them as one text, so a detector can also look at them joined.
   */
  group?: string;
}

/** Token ids ↔ text for one model's tokenizer (the gateway builds these from `limits.tokenizers`). */
export interface TokenCodec {
  /** Undefined for ids outside the vocabulary. */
  decode(ids: readonly number[]): string | undefined;
  encode(text: string): number[];
}

/** A finding located in one segment (`segment` is the segment id). */
export interface SegmentFinding extends Finding {
  segment: string;
}

/** What a guard is told about the request besides the segments. */
export interface GuardInput {
  stage: Stage;
  /** The segments to inspect (already rewritten by earlier guards of this run). */
  segments: readonly Segment[];
  /** The API of the body (`text` for plain text given to `check`). */
  api: string;
  /**
   * Who the request is for (the gateway passes `<tenant id>/<key id>`): scopes the pseudonym
   * vault, so a conversation id guessed by another key cannot pull its values.
   */
  tenant?: string;
  /** Conversation id from `x-portcullis-conversation-id`, when sent. */
  conversationId?: string;
  requestId?: string;
  /** Aborted when the guard's timeout fires; async guards should pass it to their I/O. */
  signal: AbortSignal;
  /** Per-run scratch shared by the guards of one run (pseudonym mapping, notes). */
  run: RunScratch;
}

/** Shared per-run state: what transforms need to hand to the response side. */
export interface RunScratch {
  /** Placeholder → real value for pseudonymised values (restored in the response). */
  pseudonyms: Map<string, string>;
  /** Short system notes to add to the request (e.g. the spotlighting note). */
  systemNotes: string[];
}

/** A verdict with nothing found. */
export interface AllowVerdict {
  action: 'allow';
  findings?: readonly SegmentFinding[];
  /** Highest detector score seen, for the record (optional). */
  score?: number;
}

/** Findings recorded, traffic unchanged. */
export interface FlagVerdict {
  action: 'flag';
  findings: readonly SegmentFinding[];
  categories: readonly string[];
  score?: number;
  /** Set when the flag comes from the uncertainty band (between the lower and upper threshold). */
  uncertain?: boolean;
}

/** Findings plus rewritten segment texts (redacted, masked, pseudonymised, spotlighted). */
export interface TransformVerdict {
  action: 'transform';
  findings: readonly SegmentFinding[];
  categories: readonly string[];
  /** New text per segment id. */
  rewrites: Readonly<Record<string, string>>;
  score?: number;
}

/** The request/response is refused with a sanitised error listing `categories`. */
export interface BlockVerdict {
  action: 'block';
  findings: readonly SegmentFinding[];
  /** Categories reported to the client (never the matched text). */
  categories: readonly string[];
  score?: number;
}

/** The result of one guard check. */
export type Verdict = AllowVerdict | FlagVerdict | TransformVerdict | BlockVerdict;

/** The action of a verdict. */
export type VerdictAction = Verdict['action'];

/** A guard: made by a factory that validated its options once. */
export interface Guard {
  /** Unique name within a pipeline (used in headers, logs and shadow results). */
  readonly name: string;
  /** Stages this guard runs at (a subset of STAGES). */
  readonly stages: readonly Stage[];
  /** Cost class; cheaper guards run first. */
  readonly cost: Cost;
  /** Longest time the check may take before it counts as failed. */
  readonly timeoutMs: number;
  /** What a failure (throw or timeout) means: `closed` refuses the request, `open` lets it pass. */
  readonly failMode: 'open' | 'closed';
  /** `shadow` evaluates and records what it would have done, without acting. */
  readonly mode: 'enforce' | 'shadow';
  /** Inspects the segments and returns a verdict. */
  check(input: GuardInput): Verdict | Promise<Verdict>;
}

/** One recorded guard evaluation (for the request log, audit trail and shadow results). */
export interface GuardRecord {
  guard: string;
  stage: Stage;
  mode: 'enforce' | 'shadow';
  /** The verdict's action (for shadow guards: what it would have done). */
  action: VerdictAction;
  /** Categories found (never values). */
  categories: string[];
  /** Number of findings. */
  findings: number;
  /** Highest score, when the guard reported one. */
  score?: number;
  /** Set when the verdict came from the uncertainty band. */
  uncertain?: boolean;
  latencyMs: number;
  /** Set when the guard threw or timed out. */
  error?: 'timeout' | 'error';
  /** Set when the action was applied (false for shadow guards and for fail-open failures). */
  applied: boolean;
}

/** The combined outcome of a pipeline run. */
export interface PipelineOutcome {
  /** The strongest applied action: block > transform > flag > allow. */
  action: VerdictAction;
  /** The guard that blocked (or the last one that transformed/flagged). */
  decidedBy?: string;
  /** Set when the block comes from a fail-closed guard failure rather than a finding. */
  failed?: boolean;
  /** Categories of the applied verdicts (for the block error and headers). */
  categories: string[];
  /** Findings of the applied verdicts, with the segment they belong to. */
  findings: SegmentFinding[];
  /** Segments after every applied transform. */
  segments: Segment[];
  /** Segment ids whose text changed. */
  changed: Set<string>;
  /** Every evaluation, in run order, with latency. */
  records: GuardRecord[];
  /** Highest score seen across applied and shadow verdicts. */
  score: number;
  /** Scratch the guards filled in (pseudonyms, system notes). */
  run: RunScratch;
}
