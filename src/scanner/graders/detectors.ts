/**
 * The gateway's own detectors (src/detect) run on each reply: supplementary evidence for
 * humans (PII, secrets, exfiltration links, unsafe content found in what the model said),
 * and a second signal for the compliance grader.
 */
import { detectPii } from '../../detect/pii/index.js';
import { detectSecrets } from '../../detect/secrets/index.js';
import { scanOutputLinks } from '../../detect/exfil/index.js';
import { detectUnsafe } from '../../detect/unsafe/index.js';
import type { Finding } from '../../detect/types.js';

/** One detector hit on a reply (never the matched value itself). */
export interface DetectorHit {
  detector: string;
  category: string;
  severity: Finding['severity'];
  score: number;
}

function safe(run: () => Finding[]): Finding[] {
  try {
    return run();
  } catch {
    return []; // a detector failing must not fail the scan; the deterministic graders still decide
  }
}

/** Runs the PII, secret, exfiltration-link and unsafe-content detectors on a reply. */
export function detectorHits(text: string): DetectorHit[] {
  if (!text) return [];
  const findings = [
    ...safe(() => detectPii(text)),
    ...safe(() => detectSecrets(text)),
    ...safe(() => scanOutputLinks(text).findings),
    ...safe(() => detectUnsafe(text)),
  ];
  const seen = new Map<string, DetectorHit>();
  for (const f of findings) {
    const key = `${f.detector}|${f.category}`;
    const prev = seen.get(key);
    if (!prev || prev.score < f.score) seen.set(key, { detector: f.detector, category: f.category, severity: f.severity, score: Number(f.score.toFixed(3)) });
  }
  return [...seen.values()];
}

/** Unsafe-content findings only (used by the compliance grader). */
export function unsafeHits(text: string): DetectorHit[] {
  return safe(() => detectUnsafe(text)).map((f) => ({ detector: f.detector, category: f.category, severity: f.severity, score: f.score }));
}
