/**
 * Model-glob tables: `{ 'gpt-4o*': …, '*': … }` looked up by model name, most specific
 * pattern first, with a bounded per-table cache of answers.
 */

interface Compiled<T> {
  pattern: string;
  re: RegExp;
  /** Literal characters in the pattern; more literal = more specific. */
  weight: number;
  value: T;
}

function compile(glob: string): RegExp {
  let out = '^';
  for (const ch of glob) {
    if (ch === '*') out += '.*';
    else if (ch === '?') out += '.';
    else out += ch.replace(/[.+^${}()|[\]\\/-]/g, '\\$&');
  }
  return new RegExp(out + '$', 's');
}

/** A lookup table keyed by model globs (`*` any run, `?` one character). */
export interface GlobTable<T> {
  /** The value of the most specific matching glob (exact names beat globs), or undefined. */
  get(model: string): T | undefined;
}

/** Builds a GlobTable; ties between equally specific globs go to the one listed first. */
export function globTable<T>(entries: Record<string, T>, cacheSize = 1000): GlobTable<T> {
  const list: Compiled<T>[] = Object.entries(entries).map(([pattern, value]) => ({
    pattern,
    re: compile(pattern),
    weight: pattern.replace(/[*?]/g, '').length + (/[*?]/.test(pattern) ? 0 : 1e6),
    value,
  }));
  list.sort((a, b) => b.weight - a.weight);
  const cache = new Map<string, T | undefined>();
  return {
    get(model: string): T | undefined {
      const known = cache.get(model);
      if (known !== undefined || cache.has(model)) return known;
      const hit = list.find((c) => c.re.test(model))?.value;
      if (cache.size >= cacheSize) cache.clear();
      cache.set(model, hit);
      return hit;
    },
  };
}
