/** The unfinished risky fragment at the end of a streamed output (used by the stream hold-back). */

const WINDOW = 2048;

/**
 * Returns how many trailing characters of `text` form an unfinished link, image, HTML tag,
 * reference definition or URL that must not be released yet (0 when none).
 */
export function exfilRiskyTail(text: string): number {
  const from = Math.max(0, text.length - WINDOW);
  const tail = text.slice(from);
  let earliest = tail.length;
  // An unterminated HTML tag: `<name …` with no closing `>`.
  const lt = tail.lastIndexOf('<');
  // (`a < b` in prose or code is not a tag: a tag name follows `<` directly.)
  if (lt >= 0 && !tail.slice(lt).includes('>') && (lt === tail.length - 1 || /^<[a-zA-Z!/]/.test(tail.slice(lt, lt + 2)))) earliest = Math.min(earliest, lt);
  // An open bracket that may still become a link or image: `[…`, `[…]`, `[…](…` without `)`.
  let depth = 0;
  let nextClose = -1; // index of the nearest `]` after i (one backward pass keeps this linear)
  for (let i = tail.length - 1; i >= Math.max(0, tail.length - 600); i--) {
    const ch = tail[i];
    if (ch === ']') {
      depth++;
      nextClose = i;
    } else if (ch === '[') {
      if (depth > 0) depth--;
      if (nextClose < 0) {
        earliest = Math.min(earliest, i > 0 && tail[i - 1] === '!' ? i - 1 : i);
        continue;
      }
      const rest = tail.slice(i, i + 600);
      const closed = /^\[[^\]]*\](?:\([^)]*\)|\[[^\]]*\]|:[^\n]*\n)/.test(rest) || /^\[[^\]]*\][^(\[:]/.test(rest);
      if (!closed) earliest = Math.min(earliest, i > 0 && tail[i - 1] === '!' ? i - 1 : i);
    }
  }
  // A URL still being written (no whitespace after it yet).
  const m = /(?:\b(?:https?|ftp|data|javascript):|\bwww\.)\S*$/i.exec(tail);
  if (m) earliest = Math.min(earliest, m.index);
  // A trailing `!` may start an image.
  if (earliest === tail.length && tail.endsWith('!')) earliest = tail.length - 1;
  return tail.length - earliest;
}
