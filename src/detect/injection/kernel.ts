/**
 * The innermost loop of the injection classifier as a small WebAssembly function: count a
 * window's feature buckets (a 2^18-entry u16 table) in order, recording first touches, then the
 * normalised dot product of 1 + ln(count) with int8 weights over the touched buckets in
 * first-touch order, clearing the counts. It is `bumpRange` + `touchedDot` of features.ts, the
 * same arithmetic step for step (f64 multiply and add in the same order, the same 1 + ln(c)
 * values from a table filled by Math.log, a correctly rounded square root), so the result is
 * bit-identical; WebAssembly only drops the JavaScript overheads of these two loops (bounds
 * checks, typed-array dispatch), which were about a third of the classifier's time.
 *
 * The module is assembled here from its instructions (no binary file): one exported function
 * `dot(n, q)` and one exported memory. If WebAssembly is unavailable (`--jitless`), `KERNEL` is
 * undefined and features.ts keeps its JavaScript loops.
 */

/** Largest count the kernel's log table covers: windows of at most WINDOW (1024) units count at most 6 * 1024 + 4. */
export const KERNEL_MAX_COUNT = 8191;

// Memory layout (byte offsets).
const LOG_OFF = 0; // f64 × 8192: 1 + ln(c), 0 for c = 0
const TOUCH_OFF = 65_536; // u32 × 8192: touched buckets in first-touch order
const STAGE_OFF = 98_304; // i32 × 8192: the window's buckets, in bump order
const ACC_OFF = 131_072; // u16 × 2^18: counts (zero between calls)
const Q_OFF = [655_360, 917_504]; // two slots of int8 × 2^18 weights
const PAGES = 18; // 1,179,648 bytes

/** Most buckets one call takes (the staging area). */
export const KERNEL_MAX_BUCKETS = 8192;

function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}

function section(id: number, body: number[]): number[] {
  return [id, ...uleb(body.length), ...body];
}

function name(s: string): number[] {
  return [...uleb(s.length), ...Array.from(s, (c) => c.charCodeAt(0))];
}

/** The module's bytes. */
function assemble(): Uint8Array {
  // Locals: 0 n, 1 q (params); 2 j, 3 nt, 4 k, 5 a, 6 c (i32); 7 s, 8 norm, 9 v (f64).
  const [n, q, j, nt, k, a, c, s, norm, v] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
  const get = (x: number) => [0x20, x];
  const set = (x: number) => [0x21, x];
  const tee = (x: number) => [0x22, x];
  const i32 = (x: number) => [0x41, ...sleb(x)];
  const mem = (op: number, align: number, offset: number) => [op, align, ...uleb(offset)];
  const I32_LOAD = 0x28, I32_LOAD8_S = 0x2c, I32_LOAD16_U = 0x2f, F64_LOAD = 0x2b, I32_STORE = 0x36, I32_STORE16 = 0x3b;
  const ADD = 0x6a, SUB = 0x6b, SHL = 0x74, SHR_U = 0x76, GE_U = 0x4f;
  const F_ADD = 0xa0, F_MUL = 0xa2, F_DIV = 0xa3, F_SQRT = 0x9f, F_GT = 0x64, F_FROM_I32 = 0xb7;
  const f64zero = [0x44, 0, 0, 0, 0, 0, 0, 0, 0];
  const code = [
    // for (j = 0; j < n; j++): k = stage[j]; c = acc[k]; touch[nt] = k; nt += (c - 1) >>> 31; acc[k] = c + 1
    ...i32(0), ...set(j),
    0x02, 0x40, 0x03, 0x40,
    ...get(j), ...get(n), GE_U, 0x0d, 1,
    ...get(j), ...i32(2), SHL, ...mem(I32_LOAD, 2, STAGE_OFF), ...set(k),
    ...get(k), ...i32(1), SHL, ...tee(a), ...mem(I32_LOAD16_U, 1, ACC_OFF), ...set(c),
    ...get(nt), ...i32(2), SHL, ...get(k), ...mem(I32_STORE, 2, TOUCH_OFF),
    ...get(nt), ...get(c), ...i32(1), SUB, ...i32(31), SHR_U, ADD, ...set(nt),
    ...get(a), ...get(c), ...i32(1), ADD, ...mem(I32_STORE16, 1, ACC_OFF),
    ...get(j), ...i32(1), ADD, ...set(j),
    0x0c, 0, 0x0b, 0x0b,
    // for (j = 0; j < nt; j++): k = touch[j]; c = acc[k]; acc[k] = 0; v = log[c]; norm += v * v; s += q[k] * v
    ...i32(0), ...set(j),
    0x02, 0x40, 0x03, 0x40,
    ...get(j), ...get(nt), GE_U, 0x0d, 1,
    ...get(j), ...i32(2), SHL, ...mem(I32_LOAD, 2, TOUCH_OFF), ...set(k),
    ...get(k), ...i32(1), SHL, ...tee(a), ...mem(I32_LOAD16_U, 1, ACC_OFF), ...set(c),
    ...get(a), ...i32(0), ...mem(I32_STORE16, 1, ACC_OFF),
    ...get(c), ...i32(3), SHL, ...mem(F64_LOAD, 3, LOG_OFF), ...set(v),
    ...get(norm), ...get(v), ...get(v), F_MUL, F_ADD, ...set(norm),
    ...get(s), ...get(q), ...get(k), ADD, ...mem(I32_LOAD8_S, 0, 0), F_FROM_I32, ...get(v), F_MUL, F_ADD, ...set(s),
    ...get(j), ...i32(1), ADD, ...set(j),
    0x0c, 0, 0x0b, 0x0b,
    // norm > 0 ? s / sqrt(norm) : 0
    ...get(norm), ...f64zero, F_GT,
    0x04, 0x7c, ...get(s), ...get(norm), F_SQRT, F_DIV, 0x05, ...f64zero, 0x0b,
    0x0b,
  ];
  const locals = [0x02, 5, 0x7f, 3, 0x7c];
  const body = [...locals, ...code];
  const bytes = [
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, [1, 0x60, 2, 0x7f, 0x7f, 1, 0x7c]),
    ...section(3, [1, 0]),
    ...section(5, [1, 0x00, ...uleb(PAGES)]),
    ...section(7, [2, ...name('mem'), 0x02, 0, ...name('dot'), 0x00, 0]),
    ...section(10, [1, ...uleb(body.length), ...body]),
  ];
  return Uint8Array.from(bytes);
}

/** The instantiated kernel and views of its memory. */
export interface Kernel {
  /** The window's buckets, in bump order, go here (at most KERNEL_MAX_BUCKETS). */
  stage: Int32Array;
  /** `dot(n, weights)`: counts stage[0, n) and returns the normalised dot product with the weights. */
  dot(n: number, weights: Int8Array): number;
}

/** The part of the WebAssembly API used here (the project's TypeScript libs do not declare it). */
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object) => { exports: Record<string, unknown> };
}

function instantiate(wasm: WasmApi): Kernel {
  const instance = new wasm.Instance(new wasm.Module(assemble()));
  const wasmDot = instance.exports.dot as (n: number, q: number) => number;
  const buffer = (instance.exports.mem as { buffer: ArrayBuffer }).buffer;
  const log = new Float64Array(buffer, LOG_OFF, KERNEL_MAX_COUNT + 1);
  for (let i = 1; i <= KERNEL_MAX_COUNT; i++) log[i] = 1 + Math.log(i);
  const bytes = new Int8Array(buffer);
  // Weight tables copied into the two slots (the classifier has two heads); a third table
  // (tests) replaces the slot used least recently.
  const slots: (Int8Array | undefined)[] = [undefined, undefined];
  let older = 0;
  return {
    stage: new Int32Array(buffer, STAGE_OFF, KERNEL_MAX_BUCKETS),
    dot(count: number, weights: Int8Array): number {
      let slot = slots[0] === weights ? 0 : slots[1] === weights ? 1 : -1;
      if (slot < 0) {
        slot = older;
        bytes.set(weights, Q_OFF[slot]!);
        slots[slot] = weights;
      }
      older = 1 - slot;
      return wasmDot(count, Q_OFF[slot]!);
    },
  };
}

/** The kernel, or undefined where WebAssembly cannot run. */
export const KERNEL: Kernel | undefined = (() => {
  const wasm = (globalThis as { WebAssembly?: WasmApi }).WebAssembly;
  try {
    return wasm === undefined ? undefined : instantiate(wasm);
  } catch {
    return undefined;
  }
})();
