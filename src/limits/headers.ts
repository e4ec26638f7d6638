/** OpenAI-style rate-limit headers. */

/** Formats a duration like OpenAI's `x-ratelimit-reset-*` headers: `20ms`, `1.2s`, `30s`, `6m0s`, `1h2m3s` (rounded up). */
export function formatResetDuration(ms: number): string {
  if (!(ms > 0)) return '0s';
  if (ms < 1000) return `${Math.ceil(ms)}ms`;
  if (ms < 60_000) return `${Number((Math.ceil(ms) / 1000).toFixed(3))}s`;
  const total = Math.ceil(ms / 1000);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  if (h > 0) return `${h}h${m}m${s}s`;
  if (m > 0) return `${m}m${s}s`;
  return `${s}s`;
}

/** Retry-After value: whole seconds, at least 1. */
export function retryAfterSeconds(ms: number): string {
  return String(Math.max(1, Math.ceil(ms / 1000)));
}
