/** Console output: a progress bar on a TTY (cli-progress), plain lines otherwise, and a summary table. */
import cliProgress from 'cli-progress';
import type { ProbeResult, Rate, ScanReport } from '../types.js';

/** Reports progress while the scan runs. */
export interface Progress {
  start(total: number): void;
  update(r: ProbeResult, done: number, total: number): void;
  stop(): void;
}

/** A progress reporter: a bar when `tty`, else one plain line per result. */
export function createProgress(out: NodeJS.WritableStream & { isTTY?: boolean }, tty = Boolean(out.isTTY)): Progress {
  if (tty) {
    const bar = new cliProgress.SingleBar(
      { stream: out as NodeJS.WritableStream, format: 'scan [{bar}] {value}/{total} | succeeded {succ} | {probe}', hideCursor: true, clearOnComplete: false },
      cliProgress.Presets.shades_classic,
    );
    let succ = 0;
    return {
      start: (total) => bar.start(total, 0, { succ: 0, probe: '' }),
      update: (r, done) => {
        if (r.outcome === 'succeeded') succ++;
        bar.update(done, { succ, probe: r.probeId.slice(0, 40) });
      },
      stop: () => bar.stop(),
    };
  }
  return {
    start: (total) => out.write(`scan: ${total} attempts\n`),
    update: (r, done, total) => out.write(`[${done}/${total}] ${r.outcome.toUpperCase().padEnd(9)} ${r.probeId}${r.buff ? ` [${r.buff}]` : ''}${r.mode === 'stream' ? ' (stream)' : ''}${r.guard ? ` guard=${r.guard.name}` : ''}\n`),
    stop: () => undefined,
  };
}

function row(name: string, r: Rate): string {
  return `${name.padEnd(26)}${String(r.total).padStart(6)}${String(r.succeeded).padStart(10)}${String(r.blocked).padStart(9)}${String(r.errors).padStart(8)}${`${(r.asr * 100).toFixed(1)}%`.padStart(9)}`;
}

/** The end-of-scan summary table as text. */
export function renderConsoleSummary(report: ScanReport): string {
  const lines: string[] = [];
  const head = `${'family'.padEnd(26)}${'tries'.padStart(6)}${'succeeded'.padStart(10)}${'blocked'.padStart(9)}${'errors'.padStart(8)}${'ASR'.padStart(9)}`;
  lines.push('', `Target: ${report.target}  (seed ${report.seed})`, head, '-'.repeat(head.length));
  for (const [k, r] of Object.entries(report.summary.byFamily)) lines.push(row(k, r));
  lines.push('-'.repeat(head.length), row('overall', report.summary.overall), '');
  lines.push(`${'severity'.padEnd(26)}${'tries'.padStart(6)}${'succeeded'.padStart(10)}${'blocked'.padStart(9)}${'errors'.padStart(8)}${'ASR'.padStart(9)}`);
  for (const [k, r] of Object.entries(report.summary.bySeverity)) lines.push(row(k, r));
  const guards = Object.entries(report.summary.byGuard);
  if (guards.length) lines.push('', 'Stopped by gateway guard: ' + guards.map(([g, n]) => `${g}=${n}`).join(', '));
  if (report.streamParity.length) {
    lines.push('', `Streaming parity: ${report.streamParity.length} probe(s) differ between streamed and non-streamed:`);
    for (const p of report.streamParity.slice(0, 20)) lines.push(`  ${p.probeId}${p.buff ? ` [${p.buff}]` : ''}: plain=${p.plain} stream=${p.stream}`);
  }
  if (report.baseline) {
    lines.push('', `Baseline ${report.baseline.file}: ${report.baseline.regressions.length} regression(s), ${report.baseline.fixed.length} fixed, ${report.baseline.newKeys.length} new`);
    for (const k of report.baseline.regressions.slice(0, 30)) lines.push(`  REGRESSION ${k}`);
  }
  const top = report.results.filter((r) => r.outcome === 'succeeded').slice(0, 15);
  if (top.length) {
    lines.push('', 'Successful attacks (first 15):');
    for (const r of top) lines.push(`  [${r.severity}] ${r.probeId}${r.buff ? ` [${r.buff}]` : ''}: ${r.verdict.evidence.slice(0, 140)}`);
  }
  if (report.gates.length) {
    lines.push('', 'Gates:');
    for (const g of report.gates) lines.push(`  ${g.passed ? 'pass' : 'FAIL'}  ${g.gate}: ${Number(g.actual.toFixed(4))} (threshold ${g.threshold})`);
  }
  lines.push('', report.passed ? 'Result: PASS' : 'Result: FAIL', '');
  return lines.join('\n');
}
