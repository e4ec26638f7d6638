/** `--export-payloads DIR`: each family's attack strings as plain payload lists, one per line. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { PreparedAttack } from '../types.js';

/** Writes `<family>.txt` files (newlines inside payloads escaped as `\n`); returns the files written. */
export function exportPayloads(attacks: PreparedAttack[], dir: string): string[] {
  mkdirSync(dir, { recursive: true });
  const byFamily = new Map<string, Set<string>>();
  for (const a of attacks) {
    if (a.probe.kind !== 'chat' || a.mode === 'stream') continue;
    const set = byFamily.get(a.probe.family) ?? new Set<string>();
    const msgs = a.request?.messages ?? [];
    const last = [...msgs].reverse().find((m) => m.role === 'user' || m.role === 'tool');
    const text = a.probe.sequential ? msgs.filter((m) => m.role === 'user').map((m) => m.content).join('\n') : (last?.content ?? a.prompt);
    if (text.length <= 20_000) set.add(text.replace(/\\/g, '\\\\').replace(/\r?\n/g, '\\n'));
    byFamily.set(a.probe.family, set);
  }
  const files: string[] = [];
  for (const [family, set] of byFamily) {
    const file = join(dir, `${family}.txt`);
    writeFileSync(file, [...set].join('\n') + '\n');
    files.push(file);
  }
  return files;
}
