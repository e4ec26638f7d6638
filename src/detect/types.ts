/** Shared types of the pure detectors: text in, findings out. No I/O anywhere under detect/. */

/** How bad a finding is. */
export type Severity = 'low' | 'medium' | 'high' | 'critical';

/** Detector families; `injection` covers prompt injection and jailbreaks. */
export type Family = 'injection' | 'pii' | 'secrets' | 'exfil' | 'leakage' | 'unsafe' | 'sql' | 'normalize';

/** One thing a detector found. Offsets always refer to the original (un-normalised) text. */
export interface Finding {
  /** Detector id, e.g. `pii.email`, `secrets.aws-access-key`, `injection.rules`. */
  detector: string;
  /** Category, e.g. `EMAIL`, `aws_access_key`, `instruction_override`. */
  category: string;
  severity: Severity;
  /** Confidence in [0, 1]. */
  score: number;
  /** Span start (UTF-16 code unit offset into the original text). */
  start: number;
  /** Span end (exclusive). */
  end: number;
  /** A short reason that never echoes the matched value. */
  reason: string;
}

/** The trust level of the text being scanned: untrusted content uses stricter thresholds. */
export type Trust = 'trusted' | 'untrusted';
