/** Test helper: a pino logger whose JSON lines land, parsed, in an array. */
import { Writable } from 'node:stream';
import pino from 'pino';

/** A logger at `level` (info by default) and the lines it wrote so far, parsed. */
export function memoryLogger(level = 'info'): { logger: pino.Logger; lines: Array<Record<string, any>> } {
  const lines: Array<Record<string, any>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString('utf8').split('\n')) if (l) lines.push(JSON.parse(l));
      cb();
    },
  });
  return { logger: pino({ level }, sink), lines };
}
