/** SARIF 2.1.0 report for code-scanning UIs: one rule per probe, one result per successful attack. */
import { allProbes } from '../probes/library.js';
import type { ScanReport, Severity } from '../types.js';

const LEVEL: Record<Severity, 'note' | 'warning' | 'error'> = { low: 'note', medium: 'warning', high: 'error', critical: 'error' };
const SECURITY_SEVERITY: Record<Severity, string> = { low: '3.0', medium: '5.5', high: '8.0', critical: '9.5' };

/** Renders the report as a SARIF 2.1.0 log (object). */
export function renderSarif(report: ScanReport, artifactUri = 'portcullis-scan-target'): Record<string, unknown> {
  const used = new Set(report.results.map((r) => r.probeId));
  const probes = allProbes().filter((p) => used.has(p.id));
  const ruleIndex = new Map(probes.map((p, i) => [p.id, i]));
  const rules = probes.map((p) => ({
    id: p.id,
    name: p.id.replace(/[^A-Za-z0-9]+(.)?/g, (_: string, c?: string) => (c ? c.toUpperCase() : '')),
    shortDescription: { text: p.description },
    fullDescription: { text: `${p.description} Family: ${p.family}. Source: ${p.source} (${p.licence}).` },
    defaultConfiguration: { level: LEVEL[p.severity] },
    properties: { tags: ['security', 'llm', p.family], 'security-severity': SECURITY_SEVERITY[p.severity], family: p.family },
  }));
  const results = report.results
    .filter((r) => r.outcome === 'succeeded')
    .map((r) => ({
      ruleId: r.probeId,
      ruleIndex: ruleIndex.get(r.probeId) ?? 0,
      level: LEVEL[r.severity],
      message: { text: `Attack succeeded${r.buff ? ` with buff ${r.buff}` : ''}${r.mode === 'stream' ? ' (streamed)' : ''}: ${r.verdict.evidence}` },
      locations: [{ physicalLocation: { artifactLocation: { uri: artifactUri }, region: { startLine: 1 } }, logicalLocations: [{ name: report.target, kind: 'module' }] }],
      partialFingerprints: { portcullisKey: r.key },
      properties: { family: r.family, severity: r.severity, grader: r.verdict.grader, prompt: r.prompt.slice(0, 1000), reply: r.reply.slice(0, 1000), ...(r.judge ? { judge: r.judge } : {}) },
    }));
  return {
    $schema: 'https://json.schemastore.org/sarif-2.1.0.json',
    version: '2.1.0',
    runs: [
      {
        tool: { driver: { name: 'portcullis-scan', informationUri: 'https://github.com/portcullis/portcullis', semanticVersion: '0.1.0', rules } },
        invocations: [{ executionSuccessful: true, startTimeUtc: report.startedAt, endTimeUtc: report.finishedAt }],
        results,
        properties: { target: report.target, seed: report.seed, summary: report.summary.overall },
      },
    ],
  };
}
