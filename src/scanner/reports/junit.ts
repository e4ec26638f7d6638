/** JUnit XML report: one testsuite per family, one testcase per attempt, failing when the attack succeeded. */
import type { ScanReport } from '../types.js';

/** Escapes text for XML attributes and text nodes (and drops characters XML 1.0 forbids). */
export function xmlEscape(s: string): string {
  return s
    // eslint-disable-next-line no-control-regex
    .replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/g, '')
    .replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&apos;');
}

/** Renders the report as JUnit XML. */
export function renderJunit(report: ScanReport): string {
  const families = [...new Set(report.results.map((r) => r.family))];
  const suites = families.map((family) => {
    const rs = report.results.filter((r) => r.family === family);
    const failures = rs.filter((r) => r.outcome === 'succeeded').length;
    const errors = rs.filter((r) => r.outcome === 'error').length;
    const time = rs.reduce((a, r) => a + r.latencyMs, 0) / 1000;
    const cases = rs.map((r) => {
      const name = xmlEscape(`${r.probeId}${r.buff ? ` [${r.buff}]` : ''}${r.mode !== 'plain' && r.mode !== 'raw' ? ` (${r.mode})` : ''}`);
      const head = `    <testcase classname="${xmlEscape(`portcullis.scan.${family}`)}" name="${name}" time="${(r.latencyMs / 1000).toFixed(3)}">`;
      let body = '';
      if (r.outcome === 'succeeded') {
        body = `\n      <failure message="${xmlEscape(`attack succeeded (${r.severity}): ${r.verdict.evidence.slice(0, 300)}`)}" type="${xmlEscape(r.verdict.grader)}">${xmlEscape(`${r.description}\n\nPrompt:\n${r.prompt.slice(0, 2000)}\n\nReply:\n${r.reply.slice(0, 2000)}`)}</failure>\n    `;
      } else if (r.outcome === 'error') {
        body = `\n      <error message="${xmlEscape(r.error ?? 'error')}" type="transport"/>\n    `;
      } else {
        body = `\n      <system-out>${xmlEscape(`${r.outcome}: ${r.verdict.evidence.slice(0, 300)}${r.guard ? ` (guard ${r.guard.name}: ${r.guard.action})` : ''}`)}</system-out>\n    `;
      }
      return `${head}${body}</testcase>`;
    });
    return `  <testsuite name="${xmlEscape(`portcullis scan: ${family}`)}" tests="${rs.length}" failures="${failures}" errors="${errors}" skipped="0" time="${time.toFixed(3)}" timestamp="${xmlEscape(report.startedAt.replace(/Z$/, ''))}">\n${cases.join('\n')}\n  </testsuite>`;
  });
  const o = report.summary.overall;
  return `<?xml version="1.0" encoding="UTF-8"?>\n<testsuites name="portcullis scan" tests="${o.total}" failures="${o.succeeded}" errors="${o.errors}" time="${(report.results.reduce((a, r) => a + r.latencyMs, 0) / 1000).toFixed(3)}">\n${suites.join('\n')}\n</testsuites>\n`;
}
