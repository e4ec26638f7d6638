/**
 * Parser for Llama Guard replies (pure; the HTTP judge lives in guards/).
 *
 * Llama Guard answers `safe`, or `unsafe` followed by a line of comma-separated category
 * codes (`S1`…`S14`). Anything that is not clearly `safe` is treated as unsafe (fail closed).
 */

/** Parsed verdict of a Llama Guard reply. */
export interface LlamaGuardVerdict {
  safe: boolean;
  /** Category codes such as `S1`, upper-case, deduplicated, in reply order. */
  categories: string[];
}

/** Parses a Llama Guard reply: `safe`, or `unsafe` plus category codes. Unrecognised replies count as unsafe. */
export function parseLlamaGuard(reply: string): LlamaGuardVerdict {
  const text = reply.replace(/<\|[a-z_]+\|>/gi, ' ').trim();
  const first = /^[^a-z]*([a-z]+)/i.exec(text)?.[1]?.toLowerCase();
  const categories: string[] = [];
  for (const m of text.matchAll(/\bS(\d{1,2})\b/gi)) {
    const code = `S${Number(m[1])}`;
    if (!categories.includes(code)) categories.push(code);
  }
  if (first === 'safe') return { safe: true, categories: [] };
  return { safe: false, categories };
}
