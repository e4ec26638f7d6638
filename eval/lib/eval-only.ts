/**
 * Evaluation-only sets (licence: evaluate on them, never train on them) are split in two halves
 * with a fixed hash so that one half can represent them on the validation side (calibration of
 * thresholds, never training) while the other half stays blind for the held-out evaluation.
 * Split key: FNV-1a of `eval-only-split:` + the canonical text (lowercased, whitespace collapsed),
 * odd = calibration half, even = evaluation half. Fixed: never re-drawn after seeing results.
 */
import { fnv1a, canonicalText, type PromptRow } from './datasets.js';

/** Sets that may be evaluated on but never trained on (`wizardlm_testset`: CC BY-NC 4.0). */
export const EVAL_ONLY_SETS: ReadonlySet<string> = new Set(['wizardlm_testset']);

/** Which half of an evaluation-only set a row belongs to. */
export function evalOnlyHalf(row: PromptRow): 'calibration' | 'evaluation' {
  return fnv1a(`eval-only-split:${canonicalText(row.text)}`) % 2 === 1 ? 'calibration' : 'evaluation';
}
