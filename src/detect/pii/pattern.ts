/**
 * User-configured regular expressions (guards.regex, PII allow/deny lists): compiled and checked
 * for catastrophic backtracking. Kept apart from the recognizers so that validating a config
 * does not load them (libphonenumber metadata, NER…).
 */
import safeRegex from 'safe-regex2';

/** Error thrown when a user-supplied pattern is invalid or could backtrack catastrophically. */
export class UnsafePatternError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UnsafePatternError';
  }
}

/** Longest user pattern accepted, in characters. */
export const MAX_USER_PATTERN_LENGTH = 512;

/**
 * Compiles a user-configured regular expression (string source or RegExp) into a global RegExp,
 * rejecting syntax errors, over-long sources and patterns that `safe-regex2` flags as
 * super-linear (nested quantifiers, backreferences with star height > 1…).
 */
export function compileUserPattern(pattern: string | RegExp, flags = 'i'): RegExp {
  const source = typeof pattern === 'string' ? pattern : pattern.source;
  const f = typeof pattern === 'string' ? flags : pattern.flags;
  if (source.length === 0) throw new UnsafePatternError('pattern is empty');
  if (source.length > MAX_USER_PATTERN_LENGTH) throw new UnsafePatternError(`pattern is longer than ${MAX_USER_PATTERN_LENGTH} characters`);
  let re: RegExp;
  try {
    re = new RegExp(source, f.includes('g') ? f : f + 'g');
  } catch (err) {
    throw new UnsafePatternError(`pattern is not a valid regular expression: ${(err as Error).message}`);
  }
  let safe = false;
  try {
    safe = safeRegex(re);
  } catch {
    safe = false;
  }
  if (!safe) throw new UnsafePatternError(`pattern /${source}/ may backtrack catastrophically (nested or overlapping quantifiers); rewrite it without nested repetition`);
  if (re.test('')) throw new UnsafePatternError(`pattern /${source}/ matches the empty string`);
  re.lastIndex = 0;
  return re;
}
