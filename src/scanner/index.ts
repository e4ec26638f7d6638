/**
 * The red-team scanner's programmatic entry: build the target and the attacks, run
 * them, grade, compare with a baseline, evaluate gates and write the reports.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { customSystemPrompt, defaultSystemPrompt, makeCanaries } from './canaries.js';
import { prepareAttacks } from './prepare.js';
import { exportPayloads } from './reports/payloads.js';
import { renderConsoleSummary, type Progress } from './reports/console.js';
import { renderHtml } from './reports/html.js';
import { renderJunit } from './reports/junit.js';
import { renderSarif } from './reports/sarif.js';
import { loadReplay, runScan } from './runner.js';
import { compareBaseline, evaluateGates, streamParity, summarize, type GateOptions } from './summary.js';
import type { JudgeOptions } from './judge.js';
import { createAnthropicTarget } from './targets/anthropic.js';
import { createHttpTarget } from './targets/http.js';
import { createOpenAiTarget } from './targets/openai.js';
import { DEFAULT_TRANSPORT, Transport, type TransportOptions } from './targets/transport.js';
import type { ProbeFamily, ScanReport, Target, TargetKind } from './types.js';

export type { ScanReport, ProbeResult, Probe, ProbeFamily, Target } from './types.js';
export { PROBE_FAMILIES } from './types.js';
export { allProbes, PROBES_BY_FAMILY, FAMILY_DESCRIPTIONS } from './probes/library.js';
export { BUFF_NAMES, applyBuff } from './probes/buffs.js';

/** Report formats. */
export const REPORT_FORMATS = ['console', 'json', 'junit', 'html', 'sarif'] as const;
/** One report format. */
export type ReportFormat = (typeof REPORT_FORMATS)[number];

/** Everything a scan needs (the CLI maps its flags onto this). */
export interface ScanConfig {
  target: { url: string; kind: TargetKind; model?: string; apiKey?: string; headers?: Record<string, string>; bodyTemplate?: string; replyPath?: string };
  families: ProbeFamily[];
  /** Contents of `--system-prompt FILE` (canaries are appended), or undefined for the built-in prompt. */
  systemPromptText?: string;
  buffs: string[];
  stream: 'plain' | 'stream' | 'both';
  maxPrompts: number;
  concurrency: number;
  transport: Partial<TransportOptions>;
  seed: number;
  hugeInputKb: number;
  reportDir?: string;
  formats: ReportFormat[];
  gates: GateOptions;
  baselineFile?: string;
  stateFile?: string;
  recordFile?: string;
  replayFile?: string;
  exportPayloadsDir?: string;
  judge?: JudgeOptions;
  altApiKey?: string;
  rateBurst?: number;
  /** Skip the connectivity check before the scan. */
  noPreflight?: boolean;
  signal?: AbortSignal;
  progress?: Progress;
  /** Where console output goes (default stdout). */
  out?: NodeJS.WritableStream;
}

/** A failure that maps to exit code 2 (usage or target error). */
export class ScanUsageError extends Error {
  override readonly name = 'ScanUsageError';
}

/** Creates the target adapter for a config. */
export function createTarget(cfg: ScanConfig['target'], transport: Transport): Target {
  const common = { url: cfg.url, transport, ...(cfg.model ? { model: cfg.model } : {}), ...(cfg.apiKey ? { apiKey: cfg.apiKey } : {}), ...(cfg.headers ? { headers: cfg.headers } : {}) };
  if (cfg.kind === 'openai') return createOpenAiTarget(common);
  if (cfg.kind === 'anthropic') return createAnthropicTarget(common);
  if (!cfg.bodyTemplate || !cfg.replyPath) throw new ScanUsageError('--kind http needs --body-template and --reply-path');
  if (!cfg.bodyTemplate.includes('{{prompt}}') && !cfg.bodyTemplate.includes('{{messages}}')) throw new ScanUsageError('--body-template must contain {{prompt}} or {{messages}}');
  return createHttpTarget({ ...common, bodyTemplate: cfg.bodyTemplate, replyPath: cfg.replyPath });
}

/** Sends one harmless request; throws ScanUsageError when the target is unreachable or rejects the credentials. */
export async function preflight(target: Target, signal?: AbortSignal): Promise<void> {
  const r = await target.chat({ messages: [{ role: 'user', content: 'Reply with the single word OK.' }], maxTokens: 5, stream: false }, signal);
  if (r.status === 0) throw new ScanUsageError(`target unreachable: ${r.error ?? 'no response'}`);
  if (r.status === 401 || r.status === 403) throw new ScanUsageError(`target rejected the credentials (HTTP ${r.status}); check --api-key-env`);
  if (r.status === 404 || r.status === 405) throw new ScanUsageError(`target endpoint not found (HTTP ${r.status}); check --target and --kind`);
  if (r.status >= 500 && r.status !== 503) throw new ScanUsageError(`target fails on a harmless request (HTTP ${r.status})`);
}

/** Runs a whole scan and writes the requested reports; returns the report. */
export async function scan(cfg: ScanConfig): Promise<ScanReport> {
  const startedAt = new Date().toISOString();
  const replay = cfg.replayFile ? loadReplay(cfg.replayFile) : undefined;
  const seed = replay?.seed ?? cfg.seed;
  const canaries = makeCanaries(seed);
  const build = (withSecrets: boolean): string => (cfg.systemPromptText !== undefined ? customSystemPrompt(cfg.systemPromptText, canaries, withSecrets) : defaultSystemPrompt(canaries, withSecrets));
  // Replays rebuild the prompts from the recorded seed; a record of a custom prompt carries its text.
  const systemPrompt = replay?.systemPrompt || build(false);
  const secretSystemPrompt = replay?.secretSystemPrompt || build(true);
  const transport = new Transport({ ...DEFAULT_TRANSPORT, ...cfg.transport });
  const target = createTarget(cfg.target, transport);
  const attacks = prepareAttacks({ families: cfg.families, canaries, systemPrompt, secretSystemPrompt, buffs: cfg.buffs, stream: cfg.stream, maxPrompts: cfg.maxPrompts, seed, hugeInputKb: cfg.hugeInputKb });
  if (cfg.exportPayloadsDir) exportPayloads(attacks, cfg.exportPayloadsDir);
  if (!replay && !cfg.noPreflight) await preflight(target, cfg.signal);

  cfg.progress?.start(attacks.length);
  let results;
  try {
    results = await runScan({
      target: replay ? null : target,
      attacks,
      canaries,
      systemPrompt,
      secretSystemPrompt,
      seed,
      concurrency: cfg.concurrency,
      ...(cfg.stateFile ? { stateFile: cfg.stateFile } : {}),
      ...(cfg.recordFile && !replay ? { recordFile: cfg.recordFile } : {}),
      ...(replay ? { replay } : {}),
      ...(cfg.judge ? { judge: cfg.judge } : {}),
      ...(cfg.altApiKey ? { altApiKey: cfg.altApiKey } : {}),
      ...(cfg.rateBurst ? { rateBurst: cfg.rateBurst } : {}),
      ...(cfg.signal ? { signal: cfg.signal } : {}),
      onResult: (r, done, total) => cfg.progress?.update(r, done, total),
    });
  } finally {
    cfg.progress?.stop();
  }

  const summary = summarize(results);
  const baseline = cfg.baselineFile ? compareBaseline(results, cfg.baselineFile) : undefined;
  const { gates, passed } = evaluateGates(summary, baseline, cfg.gates);
  const report: ScanReport = {
    tool: 'portcullis-scan',
    version: 1,
    startedAt,
    finishedAt: new Date().toISOString(),
    target: replay ? `replay of ${cfg.replayFile}` : target.describe(),
    seed,
    options: {
      families: cfg.families,
      buffs: cfg.buffs,
      stream: cfg.stream,
      maxPrompts: cfg.maxPrompts,
      concurrency: cfg.concurrency,
      judge: cfg.judge ? { url: cfg.judge.url, model: cfg.judge.model } : null,
      customSystemPrompt: cfg.systemPromptText !== undefined,
    },
    results,
    summary,
    streamParity: streamParity(results),
    ...(baseline ? { baseline } : {}),
    gates,
    passed,
  };
  writeReports(report, cfg);
  return report;
}

/** Writes the report files and prints the console summary. */
export function writeReports(report: ScanReport, cfg: Pick<ScanConfig, 'formats' | 'reportDir' | 'out'>): string[] {
  const written: string[] = [];
  const dir = cfg.reportDir;
  if (dir) mkdirSync(dir, { recursive: true });
  for (const f of cfg.formats) {
    if (f === 'console') {
      (cfg.out ?? process.stdout).write(renderConsoleSummary(report));
      continue;
    }
    if (!dir) continue;
    const file = join(dir, { json: 'scan-report.json', junit: 'scan-junit.xml', html: 'scan-report.html', sarif: 'scan-report.sarif' }[f]);
    const text = f === 'json' ? JSON.stringify(report, null, 2) : f === 'junit' ? renderJunit(report) : f === 'html' ? renderHtml(report) : JSON.stringify(renderSarif(report), null, 2);
    writeFileSync(file, text);
    written.push(file);
  }
  return written;
}
