/**
 * The shipped injection classifier: logistic regression over hashed n-gram features
 * (see features.ts), trained by `npm run train:injection`. The model is a JSON file beside
 * this module, imported statically (no I/O at call time); weights are int8-quantised.
 */
import model from './model.json' with { type: 'json' };
import { dot, sigmoid, windows, prepareText, preparedWindowDot, indirectWindows, FEATURE_BITS, type SparseVector } from './features.js';

/** Shape of model.json. */
export interface InjectionModel {
  version: number;
  featureBits: number;
  /** `direct` (user prompts) and `indirect` (documents, tool outputs) heads. */
  heads: Record<ClassifierHead, ModelHead>;
  /** Free-form training metadata (sets, split rule, counts, validation metrics, thresholds). */
  meta: Record<string, unknown>;
}

/** Classifier heads. */
export type ClassifierHead = 'direct' | 'indirect';

/** One head of model.json. */
export interface ModelHead {
  bias: number;
  scale: number;
  /** Base64 of an Int8Array of 2^featureBits weights. */
  weights: string;
}

interface LoadedHead {
  w: Float32Array;
  /** The int8 weights (w = q * scale), a quarter of the memory for the hot path. */
  q: Int8Array;
  scale: number;
  bias: number;
}

/** Decodes a model file into dense float weights per head. */
export function loadModel(m: InjectionModel): Record<ClassifierHead, LoadedHead> {
  if (m.featureBits !== FEATURE_BITS) throw new Error(`injection model: expected ${FEATURE_BITS} feature bits, got ${m.featureBits}`);
  const out = {} as Record<ClassifierHead, LoadedHead>;
  for (const name of ['direct', 'indirect'] as const) {
    const h = m.heads[name];
    const bytes = Buffer.from(h.weights, 'base64');
    const q = new Int8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const w = new Float32Array(q.length);
    for (let i = 0; i < q.length; i++) w[i] = q[i] * h.scale;
    out[name] = { w, q: Int8Array.from(q), scale: h.scale, bias: h.bias };
  }
  return out;
}

const loaded = loadModel(model as unknown as InjectionModel);

/** Training metadata of the shipped model. */
export const MODEL_META: Readonly<Record<string, unknown>> = Object.freeze((model as unknown as InjectionModel).meta);

/** Probability that a feature vector is an injection/jailbreak, by one head. */
export function scoreVector(v: SparseVector, head: ClassifierHead = 'direct'): number {
  const h = loaded[head];
  return sigmoid(dot(v, h.w) + h.bias);
}

/** One scored window of the matching view. */
export interface WindowScore {
  start: number;
  end: number;
  score: number;
}

function logit(p: number): number {
  const q = Math.min(1 - 1e-9, Math.max(1e-9, p));
  return Math.log(q / (1 - q));
}

/**
 * The indirect head is calibrated so that its document-level validation threshold at the point
 * named by `calibration.actAt` (2.5 % false positives on the real benign validation documents;
 * older models: 2 % with each kind of document weighted equally) maps to 0.5 (the default
 * untrusted upper threshold).
 */
const INDIRECT_SHIFT = (() => {
  const heads = (MODEL_META.heads ?? {}) as Record<string, { calibration?: Record<string, number | string> }>;
  const c = heads.indirect?.calibration;
  const t = c?.[typeof c.actAt === 'string' ? c.actAt : 'fpr_0.02'];
  return typeof t === 'number' ? logit(t) : 0;
})();

/**
 * The direct head is calibrated so that its document-level point named by
 * `documentCalibration.actAt` (1.25 % false positives on the benign validation prompts: NotInject
 * and the WizardLM calibration half included; 1 % in older models) maps to 0.7, the default
 * trusted upper threshold; rule matches add their own false positives on top.
 */
const DIRECT_SHIFT = (() => {
  const heads = (MODEL_META.heads ?? {}) as Record<string, { documentCalibration?: Record<string, number | string> }>;
  const c = heads.direct?.documentCalibration;
  const t = c?.[typeof c.actAt === 'string' ? c.actAt : 'fpr_0.01'];
  return typeof t === 'number' ? logit(t) - logit(0.7) : 0;
})();

/** Indirect-head probability, recalibrated (see INDIRECT_SHIFT). */
export function indirectScore(v: SparseVector): number {
  const h = loaded.indirect;
  return sigmoid(dot(v, h.w) + h.bias - INDIRECT_SHIFT);
}

/**
 * Scores a folded view in overlapping windows; returns every window's score (the max is the
 * text score). Trusted text: the direct head on 1024-unit windows. Untrusted text: also the
 * indirect head on line windows (see `indirectWindows`: a planted instruction is its own window).
 * `uncalibratedDirect` skips the direct head's calibration shift (used for very short texts,
 * which the calibration prompts hardly contain; see index.ts).
 */
export function classifyWindows(fold: string, untrusted = false, uncalibratedDirect = false): WindowScore[] {
  const out: WindowScore[] = [];
  const d = loaded.direct;
  const shift = uncalibratedDirect ? 0 : DIRECT_SHIFT;
  const direct = windows(fold.length);
  const indirect = untrusted ? indirectWindows(fold) : [];
  // The text is hashed once and every window (overlapping ones included) is scored from the
  // precomputed buckets: same features, same result as windowDot (see prepareText). Even for one
  // window this is a little cheaper (one pass over the text instead of two).
  prepareText(fold);
  for (const [s, e] of direct) {
    out.push({ start: s, end: e, score: sigmoid(d.scale * preparedWindowDot(s, e, d.q) + d.bias - shift) });
  }
  const h = loaded.indirect;
  for (const [s, e] of indirect) {
    out.push({ start: s, end: e, score: sigmoid(h.scale * preparedWindowDot(s, e, h.q) + h.bias - INDIRECT_SHIFT) });
  }
  return out;
}
