/** A small Aho-Corasick automaton over lower-cased ASCII: one linear pass finds every keyword present. */
import { KERNEL, KERNEL_DFA_STRIDE, KERNEL_PREP_MAX } from '../kernel.js';

/** A compiled keyword set; `scan` returns the indexes of keywords that occur in the text. */
export interface KeywordScanner {
  /** The keywords, lower case, in index order. */
  readonly keywords: readonly string[];
  /** Returns the set of keyword indexes found in `text` (case-insensitive for ASCII). */
  scan(text: string): Set<number>;
}

/** Builds an Aho-Corasick DFA (128-symbol alphabet; non-ASCII characters reset to the root). */
export function buildKeywordScanner(words: readonly string[]): KeywordScanner {
  const keywords = words.map((w) => w.toLowerCase());
  const goto: Array<Int32Array> = [new Int32Array(128).fill(-1)];
  const out: number[][] = [[]];
  for (let k = 0; k < keywords.length; k++) {
    const w = keywords[k]!;
    let s = 0;
    for (let i = 0; i < w.length; i++) {
      const c = w.charCodeAt(i);
      if (c >= 128) throw new Error(`keyword must be ASCII: ${JSON.stringify(w)}`);
      let nx = goto[s]![c]!;
      if (nx < 0) {
        nx = goto.length;
        goto.push(new Int32Array(128).fill(-1));
        out.push([]);
        goto[s]![c] = nx;
      }
      s = nx;
    }
    out[s]!.push(k);
  }
  // BFS to fill failure transitions into a full DFA.
  const fail = new Int32Array(goto.length);
  const queue: number[] = [];
  for (let c = 0; c < 128; c++) {
    const nx = goto[0]![c]!;
    if (nx < 0) goto[0]![c] = 0;
    else {
      fail[nx] = 0;
      queue.push(nx);
    }
  }
  while (queue.length > 0) {
    const s = queue.shift()!;
    out[s] = [...out[s]!, ...out[fail[s]!]!];
    for (let c = 0; c < 128; c++) {
      const nx = goto[s]![c]!;
      if (nx < 0) goto[s]![c] = goto[fail[s]!]![c]!;
      else {
        fail[nx] = goto[fail[s]!]![c]!;
        queue.push(nx);
      }
    }
  }
  const n = goto.length;
  // Flat table of premultiplied states (state * 128), upper-case ASCII columns copied from their
  // lower-case ones: one load per character, no case branch, no multiply.
  const table = new Int32Array(n * 128);
  for (let s = 0; s < n; s++) {
    for (let c = 0; c < 128; c++) {
      const l = c >= 65 && c <= 90 ? c + 32 : c;
      table[s * 128 + c] = goto[s]![l]! * 128;
    }
  }
  const hasOut = Uint8Array.from(out, (o) => (o.length > 0 ? 1 : 0));
  const kernelScan = kernelAutomaton(goto, hasOut, keywords);
  const events = KERNEL?.events;
  return {
    keywords,
    scan(text: string): Set<number> {
      const found = new Set<number>();
      if (kernelScan !== undefined && events !== undefined && text.length <= KERNEL_PREP_MAX) {
        // The same walk in WebAssembly: the states with output it reached, in order.
        const count = kernelScan(text);
        for (let x = 0; x < count; x++) for (const k of out[events[x]!]!) found.add(k);
        return found;
      }
      let s = 0;
      for (let i = 0; i < text.length; i++) {
        const c = text.charCodeAt(i);
        if (c >= 128) {
          s = 0;
          continue;
        }
        s = table[s + c]!;
        if (hasOut[s >> 7] === 1) for (const k of out[s >> 7]!) found.add(k);
      }
      return found;
    },
  };
}

/**
 * Loads the automaton into the injection detector's WebAssembly kernel, which holds one (the
 * first built, normally the built-in rules'): next states by character class. The code units
 * below 128 that occur in some keyword get classes 1.. (an upper-case ASCII letter shares its
 * lower-case letter's class, as the table above copies its column); every other one is class 0,
 * which leads every state to the root (a keyword-free character has no edge anywhere). Returns
 * the kernel's scanner, or undefined (the JavaScript walk then runs).
 */
function kernelAutomaton(goto: readonly Int32Array[], hasOut: Uint8Array, keywords: readonly string[]): ((text: string) => number) | undefined {
  if (KERNEL === undefined) return undefined;
  const classes = new Uint8Array(128);
  let count = 1;
  for (const w of keywords) {
    for (let i = 0; i < w.length; i++) {
      const c = w.charCodeAt(i);
      if (classes[c] === 0) classes[c] = count++;
    }
  }
  if (count > KERNEL_DFA_STRIDE) return undefined;
  for (let c = 65; c <= 90; c++) classes[c] = classes[c + 32]!;
  /** A code unit of each class (its lower-case form). */
  const sample = new Int32Array(count);
  for (let c = 0; c < 128; c++) if (classes[c]! > 0 && !(c >= 65 && c <= 90)) sample[classes[c]!] = c;
  const n = goto.length;
  const next = new Uint16Array(n * KERNEL_DFA_STRIDE);
  if (n > 0xffff) return undefined;
  for (let s = 0; s < n; s++) for (let k = 1; k < count; k++) next[s * KERNEL_DFA_STRIDE + k] = goto[s]![sample[k]!]!;
  return KERNEL.loadAutomaton(next, hasOut, classes);
}
