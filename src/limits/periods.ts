/**
 * Calendar periods (day, month) in an IANA time zone, computed with Intl — except in UTC and its
 * aliases (the default), where Date's own UTC fields answer: a time-zone formatter makes V8 read
 * ICU's locale and zone data, ~6.5 MB of the binary's pages that then count in the process's RSS.
 */

/** True for the names of UTC (`UTC`, `Etc/UTC`, `GMT`, `Zulu`…, any case): offset 0, no DST. */
export function isUtcZone(tz: string): boolean {
  return UTC_ZONE.test(tz);
}
const UTC_ZONE = /^(?:etc\/)?(?:utc|uct|gmt|gmt[+-]?0|universal|zulu|greenwich)$/i;

/** `YYYY-MM-DD` of an instant in UTC (years 0–9999). */
export function utcDay(epochMs: number): string {
  return new Date(epochMs).toISOString().slice(0, 10);
}

/** The current day and month of an instant in a time zone, with their boundaries in epoch ms. */
export interface Periods {
  /** e.g. `2026-11-27` */
  day: string;
  /** e.g. `2026-11` */
  month: string;
  dayStart: number;
  dayEnd: number;
  monthEnd: number;
}

const formatters = new Map<string, Intl.DateTimeFormat>();
function formatter(tz: string): Intl.DateTimeFormat {
  let f = formatters.get(tz);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone: tz,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    formatters.set(tz, f);
  }
  return f;
}

interface Wall {
  y: number;
  m: number;
  d: number;
  h: number;
  mi: number;
  s: number;
}

function wallClock(epochMs: number, tz: string): Wall {
  if (isUtcZone(tz)) {
    const t = new Date(epochMs);
    return { y: t.getUTCFullYear(), m: t.getUTCMonth() + 1, d: t.getUTCDate(), h: t.getUTCHours(), mi: t.getUTCMinutes(), s: t.getUTCSeconds() };
  }
  const parts = formatter(tz).formatToParts(new Date(epochMs));
  const get = (t: string) => Number(parts.find((p) => p.type === t)?.value);
  return { y: get('year'), m: get('month'), d: get('day'), h: get('hour'), mi: get('minute'), s: get('second') };
}

/** Offset (local − UTC) in ms of a time zone at an instant. */
function offsetAt(epochMs: number, tz: string): number {
  const w = wallClock(epochMs, tz);
  const asUtc = Date.UTC(w.y, w.m - 1, w.d, w.h, w.mi, w.s);
  return asUtc - Math.floor(epochMs / 1000) * 1000;
}

/**
 * The first instant whose local wall clock is at or after y-m-d 00:00 in `tz` (handles
 * zones whose midnight is skipped by a DST change). Month/day overflow is normalised.
 */
export function localMidnight(y: number, m: number, d: number, tz: string): number {
  const naive = Date.UTC(y, m - 1, d);
  let guess = naive - offsetAt(naive, tz);
  guess = naive - offsetAt(guess, tz);
  // If the wall clock at guess is still before the target day (skipped midnight), step forward.
  const target = new Date(naive);
  for (let i = 0; i < 4; i++) {
    const w = wallClock(guess, tz);
    const wallDate = Date.UTC(w.y, w.m - 1, w.d);
    if (wallDate >= target.getTime()) break;
    guess += 3600_000 - (guess % 3600_000 === 0 ? 0 : guess % 3600_000);
  }
  return guess;
}

const pad = (n: number) => String(n).padStart(2, '0');

/** Periods of `now` in `tz`. */
export function periodsAt(now: number, tz: string): Periods {
  const w = wallClock(now, tz);
  return {
    day: `${w.y}-${pad(w.m)}-${pad(w.d)}`,
    month: `${w.y}-${pad(w.m)}`,
    dayStart: localMidnight(w.y, w.m, w.d, tz),
    dayEnd: localMidnight(w.y, w.m, w.d + 1, tz),
    monthEnd: localMidnight(w.y, w.m + 1, 1, tz),
  };
}

/** A cache of periodsAt for one time zone: recomputes only when `now` leaves the cached day. */
export function periodCache(tz: string): (now: number) => Periods {
  let cached: Periods | undefined;
  return function periodsFor(now: number): Periods {
    if (cached && now >= cached.dayStart && now < cached.dayEnd) return cached;
    cached = periodsAt(now, tz);
    return cached;
  };
}
