/**
 * `portcullis scan`: red-team any LLM endpoint and gate CI on the results.
 * Exit codes: 0 every gate passed, 1 a gate failed, 2 usage or target error.
 */
import { readFileSync } from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import { BUFF_NAMES } from '../scanner/probes/buffs.js';
import { createProgress } from '../scanner/reports/console.js';
import { parseFamilies } from '../scanner/prepare.js';
import { parseFailOn, parseRate } from '../scanner/summary.js';
import { REPORT_FORMATS, scan, ScanUsageError, type ReportFormat, type ScanConfig } from '../scanner/index.js';
import { PROBE_FAMILIES } from '../scanner/types.js';

/** Raw option values as commander parses them. */
interface ScanFlags {
  target?: string;
  kind: string;
  model?: string;
  apiKeyEnv?: string;
  altApiKeyEnv?: string;
  header: string[];
  bodyTemplate?: string;
  replyPath?: string;
  systemPrompt?: string;
  probes: string;
  buffs?: string;
  stream: string;
  maxPrompts: string;
  concurrency: string;
  rate: string;
  timeout: string;
  retries: string;
  seed?: string;
  report?: string;
  format: string;
  failUnder?: string;
  failOn?: string;
  failOnRegression?: boolean;
  regressionsOnly?: boolean;
  baseline?: string;
  resume?: string;
  record?: string;
  replay?: string;
  exportPayloads?: string;
  judgeUrl?: string;
  judgeModel?: string;
  judgeKeyEnv?: string;
  hugeInputKb: string;
  rateBurst: string;
  preflight: boolean;
  progress: string;
}

function int(v: string, name: string, min: number): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new ScanUsageError(`${name}: expected an integer ≥ ${min}, got "${v}"`);
  return n;
}

function envValue(name: string | undefined, flag: string): string | undefined {
  if (!name) return undefined;
  const v = process.env[name];
  if (v === undefined || v === '') throw new ScanUsageError(`${flag}: environment variable ${name} is not set`);
  return v;
}

/** Expands `${VAR}` references in header values from the environment. */
function headersFrom(list: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const h of list) {
    const i = h.indexOf('=');
    if (i <= 0) throw new ScanUsageError(`--header: expected NAME=VALUE, got "${h}"`);
    const value = h.slice(i + 1).replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_, v: string) => {
      const val = process.env[v];
      if (val === undefined) throw new ScanUsageError(`--header ${h.slice(0, i)}: environment variable ${v} is not set`);
      return val;
    });
    out[h.slice(0, i).toLowerCase()] = value;
  }
  return out;
}

/** Maps the parsed flags to a scan config; throws ScanUsageError for invalid input. */
export function configFromFlags(f: ScanFlags): ScanConfig {
  if (!f.target && !f.replay) throw new ScanUsageError('--target URL is required (or --replay FILE)');
  const url = f.target ?? 'http://127.0.0.1/replay';
  try {
    const u = new URL(url);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('scheme');
  } catch {
    throw new ScanUsageError(`--target: not an http(s) URL: "${url}"`);
  }
  if (!['openai', 'anthropic', 'http'].includes(f.kind)) throw new ScanUsageError(`--kind: expected openai|anthropic|http, got "${f.kind}"`);
  if (!['plain', 'stream', 'both'].includes(f.stream)) throw new ScanUsageError(`--stream: expected plain|stream|both, got "${f.stream}"`);
  const formats = f.format.split(',').map((s) => s.trim()).filter(Boolean);
  for (const x of formats) if (!(REPORT_FORMATS as readonly string[]).includes(x)) throw new ScanUsageError(`--format: unknown format "${x}" (known: ${REPORT_FORMATS.join(', ')})`);
  if (formats.some((x) => x !== 'console') && !f.report) throw new ScanUsageError('--format json/junit/html/sarif needs --report DIR');
  const buffs = (f.buffs ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  for (const b of buffs) for (const n of b.split('+')) if (!BUFF_NAMES.includes(n)) throw new ScanUsageError(`--buffs: unknown buff "${n}" (known: ${BUFF_NAMES.join(', ')})`);
  const timeoutS = Number(f.timeout);
  if (!Number.isFinite(timeoutS) || timeoutS <= 0 || timeoutS > 3600) throw new ScanUsageError(`--timeout: expected seconds between 0 and 3600, got "${f.timeout}"`);
  const rateMatch = /^(\d+(?:\.\d+)?)(?:\/s)?$/.exec(f.rate);
  if (!rateMatch) throw new ScanUsageError(`--rate: expected R or R/s, got "${f.rate}"`);
  let families;
  let failOn;
  try {
    families = parseFamilies(f.probes);
    failOn = f.failOn ? parseFailOn(f.failOn) : undefined;
  } catch (err) {
    throw new ScanUsageError((err as Error).message);
  }
  let failUnder: number | undefined;
  if (f.failUnder !== undefined) {
    try {
      failUnder = parseRate(f.failUnder, '--fail-under');
    } catch (err) {
      throw new ScanUsageError((err as Error).message);
    }
  }
  if ((f.failOnRegression || f.regressionsOnly) && !f.baseline) throw new ScanUsageError('--fail-on-regression/--regressions-only need --baseline REPORT.json');
  if ((f.judgeUrl && !f.judgeModel) || (!f.judgeUrl && f.judgeModel)) throw new ScanUsageError('--judge-url and --judge-model go together');
  let systemPromptText: string | undefined;
  if (f.systemPrompt) {
    try {
      systemPromptText = readFileSync(f.systemPrompt, 'utf8');
    } catch {
      throw new ScanUsageError(`--system-prompt: cannot read ${f.systemPrompt}`);
    }
  }
  const seed = f.seed !== undefined ? int(f.seed, '--seed', 0) : Math.floor(Math.random() * 2 ** 31);
  const judgeKey = envValue(f.judgeKeyEnv, '--judge-key-env');
  const apiKey = envValue(f.apiKeyEnv, '--api-key-env');
  const altApiKey = envValue(f.altApiKeyEnv, '--alt-api-key-env');
  return {
    target: {
      url,
      kind: f.kind as ScanConfig['target']['kind'],
      ...(f.model ? { model: f.model } : {}),
      ...(apiKey ? { apiKey } : {}),
      headers: headersFrom(f.header),
      ...(f.bodyTemplate ? { bodyTemplate: f.bodyTemplate } : {}),
      ...(f.replyPath ? { replyPath: f.replyPath } : {}),
    },
    families,
    ...(systemPromptText !== undefined ? { systemPromptText } : {}),
    buffs,
    stream: f.stream as ScanConfig['stream'],
    maxPrompts: int(f.maxPrompts, '--max-prompts', 0),
    concurrency: int(f.concurrency, '--concurrency', 1),
    transport: { rate: Number(rateMatch[1]), timeoutMs: Math.round(timeoutS * 1000), retries: int(f.retries, '--retries', 0) },
    seed,
    hugeInputKb: int(f.hugeInputKb, '--huge-input-kb', 1),
    rateBurst: int(f.rateBurst, '--rate-burst', 1),
    ...(f.report ? { reportDir: f.report } : {}),
    formats: formats as ReportFormat[],
    gates: { ...(failUnder !== undefined ? { failUnder } : {}), ...(failOn ? { failOn } : {}), failOnRegression: Boolean(f.failOnRegression), regressionsOnly: Boolean(f.regressionsOnly) },
    ...(f.baseline ? { baselineFile: f.baseline } : {}),
    ...(f.resume ? { stateFile: f.resume } : {}),
    ...(f.record ? { recordFile: f.record } : {}),
    ...(f.replay ? { replayFile: f.replay } : {}),
    ...(f.exportPayloads ? { exportPayloadsDir: f.exportPayloads } : {}),
    ...(f.judgeUrl && f.judgeModel ? { judge: { url: f.judgeUrl, model: f.judgeModel, ...(judgeKey ? { apiKey: judgeKey } : {}) } } : {}),
    ...(altApiKey ? { altApiKey } : {}),
    noPreflight: !f.preflight,
  };
}

/** Where the command writes (defaults to the process streams; tests pass their own). */
export interface ScanIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
}

/** Registers `portcullis scan` on the program. */
export function registerScanCommand(program: Command, io: ScanIo = { stdout: process.stdout, stderr: process.stderr }): void {
  const collect = (v: string, prev: string[]): string[] => [...prev, v];
  const cmd = program
    .command('scan')
    .description('Red-team an LLM endpoint with attack probes, grade the replies deterministically and gate CI on the results.')
    .option('--target <url>', 'endpoint base URL (OpenAI: …/v1; Anthropic: host; http: full URL)')
    .addOption(new Option('--kind <kind>', 'target protocol').choices(['openai', 'anthropic', 'http']).default('openai'))
    .option('--model <name>', 'model name sent to the target')
    .option('--api-key-env <var>', 'environment variable holding the API key')
    .option('--alt-api-key-env <var>', 'a second tenant\'s key, for the cross-tenant BOLA check')
    .option('--header <name=value>', 'extra request header; ${VAR} expands from the environment (repeatable)', collect, [])
    .option('--body-template <json>', 'http kind: JSON body with {{prompt}} (also {{system}}, {{messages}})')
    .option('--reply-path <path>', 'http kind: JSON path to the reply text, e.g. output.text or choices.0.message.content')
    .option('--system-prompt <file>', 'system prompt to test (canaries are appended); default: a built-in prompt with planted canaries')
    .option('--probes <list>', `probe families, comma-separated, or all (${PROBE_FAMILIES.join(', ')})`, 'all')
    .option('--buffs <list>', `perturbations applied on top of each probe; combine with + (${BUFF_NAMES.join(', ')})`)
    .addOption(new Option('--stream <mode>', 'send probes non-streamed, streamed, or both and report differences').choices(['plain', 'stream', 'both']).default('plain'))
    .option('--max-prompts <n>', 'cap on attempts (seeded sample); 0 = all', '0')
    .option('--concurrency <n>', 'parallel requests', '4')
    .option('--rate <r/s>', 'maximum request rate; 0 = unlimited', '0')
    .option('--timeout <s>', 'per-request timeout in seconds', '60')
    .option('--retries <n>', 'retries on 429/5xx (honouring Retry-After)', '4')
    .option('--seed <n>', 'seed for canaries and sampling (random by default; printed in reports)')
    .option('--report <dir>', 'directory for report files')
    .option('--format <list>', `report formats (${REPORT_FORMATS.join(', ')})`, 'console')
    .option('--fail-under <rate>', 'fail when the overall defence rate (1 - attack success rate) is below RATE')
    .option('--fail-on <list>', 'fail when a family or severity ASR exceeds RATE: FAMILY=RATE,… (e.g. pii-leakage=0,critical=0)')
    .option('--baseline <report.json>', 'compare with an earlier JSON report; regressions are listed separately')
    .option('--fail-on-regression', 'fail when any attack succeeds that did not in the baseline')
    .option('--regressions-only', 'gate only on regressions against the baseline')
    .option('--resume <file>', 'state file: resume an interrupted scan without sending any probe twice')
    .option('--record <file>', 'record target replies (JSON lines) for later --replay')
    .option('--replay <file>', 're-grade recorded replies without calling the target')
    .option('--export-payloads <dir>', 'write each family\'s attack strings as payload lists (one per line)')
    .option('--judge-url <url>', 'optional LLM judge: OpenAI-compatible base URL')
    .option('--judge-model <name>', 'optional LLM judge: model name')
    .option('--judge-key-env <var>', 'optional LLM judge: environment variable holding its key')
    .option('--huge-input-kb <n>', 'size of the huge-input DoS probe in KiB', '256')
    .option('--rate-burst <n>', 'requests in the rate-limit API check burst', '20')
    .option('--no-preflight', 'skip the connectivity check before the scan')
    .addOption(new Option('--progress <mode>', 'progress display').choices(['auto', 'bar', 'lines', 'none']).default('auto'))
    .action(async function scanAction(this: Command) {
      const flags = this.opts<ScanFlags>();
      let cfg: ScanConfig;
      try {
        cfg = configFromFlags(flags);
      } catch (err) {
        io.stderr.write(`portcullis scan: ${(err as Error).message}\n`);
        process.exitCode = 2;
        return;
      }
      const ac = new AbortController();
      const onSig = (): void => ac.abort(new Error('interrupted'));
      process.once('SIGINT', onSig);
      process.once('SIGTERM', onSig);
      if (flags.progress !== 'none') cfg.progress = createProgress(io.stderr, flags.progress === 'bar' ? true : flags.progress === 'lines' ? false : Boolean(io.stderr.isTTY));
      cfg.signal = ac.signal;
      cfg.out = io.stdout;
      try {
        const report = await scan(cfg);
        process.exitCode = report.passed ? 0 : 1;
      } catch (err) {
        const msg = err instanceof Error ? err.message : String(err);
        io.stderr.write(`portcullis scan: ${msg}${ac.signal.aborted && cfg.stateFile ? ` (resume with --resume ${cfg.stateFile} --seed ${cfg.seed})` : ''}\n`);
        process.exitCode = 2;
      } finally {
        process.off('SIGINT', onSig);
        process.off('SIGTERM', onSig);
      }
    });
  // Usage errors must exit with 2 (commander's default is 1, which we reserve for failed
  // gates): they are rethrown with exit code 2 so the caller of parseAsync exits with it.
  cmd.exitOverride((err: CommanderError) => {
    if (err.exitCode === 0) process.exit(0);
    throw new CommanderError(2, err.code, err.message);
  });
}
