/** `Retry-After` (RFC 9110 §10.2.3), read once for every client of the project (audit webhook sink, scanner transport). */

/** The longest wait a `Retry-After` value is taken to ask for (a day); callers cap it lower. */
const MAX_MS = 86_400_000;

/**
 * Milliseconds a `Retry-After` value asks for: delay-seconds (a fractional value is read too, as
 * some servers send one) or an HTTP date (the time left until it, 0 when past). Undefined when
 * absent or unreadable (a negative or overlong number included). Capped at a day, so an absurd value cannot overflow a timer.
 */
export function retryAfterMs(value: string | null | undefined, now = Date.now()): number | undefined {
  if (!value) return undefined;
  const v = value.trim();
  if (/^\d{1,12}(?:\.\d{1,6})?$/.test(v)) return Math.min(MAX_MS, Math.round(Number(v) * 1000));
  // Every HTTP-date form starts with a day name; anything else (a sign, too many digits) is unreadable.
  if (!/^[A-Za-z]/.test(v)) return undefined;
  const t = Date.parse(v);
  return Number.isNaN(t) ? undefined : Math.min(MAX_MS, Math.max(0, t - now));
}
