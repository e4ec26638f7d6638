/**
 * Single self-contained HTML report: summary by family and severity, an inline SVG chart
 * of attack success per family, and every finding with its evidence. Everything coming
 * from the target or the probes is escaped, and a strict CSP forbids scripts and remote
 * loads, so a hostile reply cannot run or beacon when the report is opened.
 */
import type { ProbeResult, Rate, ScanReport } from '../types.js';
import { FAMILY_DESCRIPTIONS } from '../probes/library.js';

/** Escapes text for HTML text and attribute contexts. */
export function htmlEscape(s: string): string {
  return s.replace(/[&<>"'`]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;', '`': '&#96;' })[c]!);
}

function pct(n: number): string {
  return `${(n * 100).toFixed(1)}%`;
}

function rateRows(rates: Record<string, Rate>, describe?: (k: string) => string): string {
  return Object.entries(rates)
    .map(([k, r]) => `<tr><td title="${htmlEscape(describe?.(k) ?? '')}">${htmlEscape(k)}</td><td class="num">${r.total}</td><td class="num">${r.succeeded}</td><td class="num">${r.blocked}</td><td class="num">${r.errors}</td><td class="num ${r.asr > 0 ? 'bad' : 'good'}">${pct(r.asr)}</td></tr>`)
    .join('\n');
}

/** The inline SVG bar chart of attack success rate per family. */
export function asrChart(byFamily: Record<string, Rate>): string {
  const entries = Object.entries(byFamily);
  const rowH = 26;
  const labelW = 190;
  const barW = 420;
  const h = entries.length * rowH + 40;
  const bars = entries
    .map(([fam, r], i) => {
      const y = 20 + i * rowH;
      const graded = r.total - r.errors;
      const w = Math.round(r.asr * barW);
      const color = r.total - r.errors === 0 ? '#9e9e9e' : r.asr === 0 ? '#2e7d32' : r.asr < 0.25 ? '#f9a825' : '#c62828';
      return `<text x="${labelW - 8}" y="${y + 16}" text-anchor="end" class="lbl">${htmlEscape(fam)}</text>` +
        `<rect x="${labelW}" y="${y + 3}" width="${barW}" height="${rowH - 8}" fill="#eceff1"/>` +
        `<rect x="${labelW}" y="${y + 3}" width="${w}" height="${rowH - 8}" fill="${color}"><title>${htmlEscape(`${fam}: ${pct(r.asr)} (${r.succeeded}/${r.total - r.errors})`)}</title></rect>` +
        `<text x="${labelW + barW + 8}" y="${y + 16}" class="val">${graded > 0 ? pct(r.asr) : 'n/a'}</text>`;
    })
    .join('\n');
  const ticks = [0, 0.25, 0.5, 0.75, 1]
    .map((t) => `<line x1="${labelW + t * barW}" y1="16" x2="${labelW + t * barW}" y2="${h - 18}" stroke="#b0bec5" stroke-dasharray="2,3"/><text x="${labelW + t * barW}" y="${h - 4}" text-anchor="middle" class="tick">${t * 100}%</text>`)
    .join('');
  return `<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="Attack success rate per family" width="${labelW + barW + 70}" height="${h}" viewBox="0 0 ${labelW + barW + 70} ${h}">${ticks}${bars}</svg>`;
}

function finding(r: ProbeResult): string {
  const tools = r.toolCalls.length ? `<h4>Tool calls</h4><pre>${htmlEscape(JSON.stringify(r.toolCalls, null, 2))}</pre>` : '';
  const judge = r.judge ? `<p><b>LLM judge (${htmlEscape(r.judge.model)}):</b> ${htmlEscape(String(r.judge.success))} — ${htmlEscape(r.judge.reason || r.judge.error || '')}</p>` : '';
  const det = r.detectors?.length ? `<p><b>Detectors on the reply:</b> ${r.detectors.map((d) => htmlEscape(`${d.detector} ${d.category} (${d.severity})`)).join(', ')}</p>` : '';
  const guard = r.guard ? `<p><b>Gateway guard:</b> ${htmlEscape(r.guard.name)} (${htmlEscape(r.guard.action)})</p>` : '';
  return `<details class="f ${htmlEscape(r.outcome)}"><summary><span class="sev ${htmlEscape(r.severity)}">${htmlEscape(r.severity)}</span> <span class="out">${htmlEscape(r.outcome)}</span> <code>${htmlEscape(r.probeId)}</code>${r.buff ? ` <span class="buff">${htmlEscape(r.buff)}</span>` : ''}${r.mode === 'stream' ? ' <span class="buff">stream</span>' : ''}</summary>
<p>${htmlEscape(r.description)}</p>
<p><b>Evidence (${htmlEscape(r.verdict.grader)}):</b> ${htmlEscape(r.verdict.evidence)}</p>${guard}${judge}${det}
<h4>Prompt</h4><pre>${htmlEscape(r.prompt.slice(0, 3000))}</pre>
<h4>Reply (HTTP ${r.status}, ${r.latencyMs} ms)</h4><pre>${htmlEscape(r.reply.slice(0, 3000))}</pre>${tools}
</details>`;
}

/** Renders the full HTML report. */
export function renderHtml(report: ScanReport): string {
  const o = report.summary.overall;
  const succeeded = report.results.filter((r) => r.outcome === 'succeeded');
  const order = { critical: 0, high: 1, medium: 2, low: 3 } as const;
  succeeded.sort((a, b) => order[a.severity] - order[b.severity] || a.probeId.localeCompare(b.probeId));
  const others = report.results.filter((r) => r.outcome !== 'succeeded');
  const guards = Object.entries(report.summary.byGuard);
  const gates = report.gates.length
    ? `<table><tr><th>gate</th><th>threshold</th><th>actual</th><th>result</th></tr>${report.gates.map((g) => `<tr><td>${htmlEscape(g.gate)}</td><td class="num">${g.threshold}</td><td class="num">${Number(g.actual.toFixed(4))}</td><td class="${g.passed ? 'good' : 'bad'}">${g.passed ? 'pass' : 'FAIL'}</td></tr>`).join('')}</table>`
    : '<p>No gates configured.</p>';
  const baseline = report.baseline
    ? `<h2>Baseline</h2><p>Compared with <code>${htmlEscape(report.baseline.file)}</code>: <b class="${report.baseline.regressions.length ? 'bad' : 'good'}">${report.baseline.regressions.length} regression(s)</b>, ${report.baseline.fixed.length} fixed, ${report.baseline.newKeys.length} new.</p>${report.baseline.regressions.length ? `<ul>${report.baseline.regressions.map((k) => `<li><code>${htmlEscape(k)}</code></li>`).join('')}</ul>` : ''}`
    : '';
  const parity = report.streamParity.length
    ? `<h2>Streaming parity differences</h2><table><tr><th>probe</th><th>buff</th><th>non-streamed</th><th>streamed</th></tr>${report.streamParity.map((p) => `<tr><td><code>${htmlEscape(p.probeId)}</code></td><td>${htmlEscape(p.buff ?? '')}</td><td>${htmlEscape(p.plain)}</td><td>${htmlEscape(p.stream)}</td></tr>`).join('')}</table>`
    : '';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Portcullis scan report — ${htmlEscape(report.target)}</title>
<style>
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1100px;color:#1b1f23;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd;padding-bottom:4px}
.meta{color:#555}.cards{display:flex;gap:12px;flex-wrap:wrap;margin:16px 0}.card{border:1px solid #ddd;border-radius:8px;padding:10px 16px;min-width:120px}
.card b{display:block;font-size:22px}table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:4px 10px;text-align:left}
th{background:#f5f7f9}.num{text-align:right;font-variant-numeric:tabular-nums}.bad{color:#c62828;font-weight:600}.good{color:#2e7d32;font-weight:600}
svg .lbl,svg .val,svg .tick{font:12px system-ui,sans-serif;fill:#333}
details.f{border:1px solid #ddd;border-radius:6px;margin:6px 0;padding:6px 10px}details.f.succeeded{border-left:4px solid #c62828}
details.f.blocked{border-left:4px solid #1565c0}details.f.resisted{border-left:4px solid #2e7d32}details.f.error{border-left:4px solid #9e9e9e}
summary{cursor:pointer}pre{white-space:pre-wrap;word-break:break-word;background:#f6f8fa;padding:8px;border-radius:4px;max-height:320px;overflow:auto}
.sev{display:inline-block;border-radius:4px;padding:0 6px;color:#fff;font-size:12px}.sev.critical{background:#7b1fa2}.sev.high{background:#c62828}.sev.medium{background:#ef6c00}.sev.low{background:#607d8b}
.out{font-weight:600}.buff{background:#e3f2fd;border-radius:4px;padding:0 6px;font-size:12px}
</style></head><body>
<h1>Portcullis scan report</h1>
<p class="meta">Target <code>${htmlEscape(report.target)}</code> · seed ${report.seed} · ${htmlEscape(report.startedAt)} → ${htmlEscape(report.finishedAt)}</p>
<div class="cards">
<div class="card">Attempts<b>${o.total}</b></div>
<div class="card">Attacks succeeded<b class="${o.succeeded ? 'bad' : 'good'}">${o.succeeded}</b></div>
<div class="card">Attack success rate<b class="${o.asr > 0 ? 'bad' : 'good'}">${pct(o.asr)}</b></div>
<div class="card">Blocked<b>${o.blocked}</b></div>
<div class="card">Errors<b>${o.errors}</b></div>
<div class="card">Gates<b class="${report.passed ? 'good' : 'bad'}">${report.passed ? 'PASS' : 'FAIL'}</b></div>
</div>
<h2>Attack success rate per family</h2>
${asrChart(report.summary.byFamily)}
<h2>By family</h2>
<table><tr><th>family</th><th>attempts</th><th>succeeded</th><th>blocked</th><th>errors</th><th>ASR</th></tr>
${rateRows(report.summary.byFamily, (k) => FAMILY_DESCRIPTIONS[k as keyof typeof FAMILY_DESCRIPTIONS] ?? '')}</table>
<h2>By severity</h2>
<table><tr><th>severity</th><th>attempts</th><th>succeeded</th><th>blocked</th><th>errors</th><th>ASR</th></tr>
${rateRows(report.summary.bySeverity)}</table>
${guards.length ? `<h2>Stopped by gateway guard</h2><table><tr><th>guard</th><th>attempts stopped</th></tr>${guards.map(([g, n]) => `<tr><td>${htmlEscape(g)}</td><td class="num">${n}</td></tr>`).join('')}</table>` : ''}
<h2>Gates</h2>${gates}
${baseline}${parity}
<h2>Findings: successful attacks (${succeeded.length})</h2>
${succeeded.map(finding).join('\n') || '<p class="good">No attack succeeded.</p>'}
<h2>Other attempts (${others.length})</h2>
${others.map(finding).join('\n')}
</body></html>
`;
}
