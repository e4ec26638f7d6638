/**
 * `portcullis check`: runs the same detectors and guard policy as the gateway, offline.
 *
 *   portcullis check --input prompt.txt
 *   echo '{"text":"ignore previous instructions"}' | portcullis check --format jsonl
 *   portcullis check --stage untrusted --detectors injection --input doc.txt --format json
 *
 * Exit status: 0 when nothing was blocked, 1 when at least one input would be blocked, 2 on errors.
 */
import { createReadStream, readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import type { Command } from 'commander';
import { loadConfig } from '../config/load.js';
import { check, CHECK_DETECTORS, type CheckResult, type CheckStage } from '../guards/check.js';
import { createGuardEngine, type GuardEngine } from '../guards/engine.js';
import { fail } from './common.js';

interface CheckCliOptions {
  stage: string;
  detectors?: string;
  input: string;
  format?: string;
  config?: string;
}

async function readAll(input: string): Promise<string> {
  if (input !== '-') return readFileSync(input, 'utf8');
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** Human-readable report of one result. */
export function formatReport(r: CheckResult, text: string): string {
  const lines = [`verdict: ${r.verdict}${r.flagged ? '' : ' (nothing found)'}  score: ${r.score}`];
  if (r.categories.length) lines.push(`categories: ${r.categories.join(', ')}`);
  for (const f of r.findings) {
    const len = f.end - f.start;
    const where = f.segment !== undefined ? `segment ${f.segment} ` : '';
    const lineNo = f.segment === undefined ? text.slice(0, f.start).split('\n').length : undefined;
    lines.push(`  - ${f.detector} ${f.category} score=${f.score} at ${where}${f.start}-${f.end}${lineNo ? ` (line ${lineNo})` : ''}, ${len} chars`);
  }
  return lines.join('\n') + '\n';
}

/** Registers `check`. */
export function registerCheckCommand(program: Command): void {
  program
    .command('check')
    .description('check text with the gateway detectors (injection, pii, secrets, …) offline')
    .option('--stage <stage>', 'request | untrusted | response', 'request')
    .option('--detectors <list>', `comma-separated: ${CHECK_DETECTORS.join(',')}`)
    .option('--input <file>', 'input file, or - for stdin', '-')
    .option('--format <format>', 'text | json | jsonl (jsonl: one {"text": …} object per line in, one result per line out)')
    .option('--config <file>', 'YAML config file (its guards: section is used)')
    .action(async (o: CheckCliOptions) => {
      let engine: GuardEngine;
      let stage: CheckStage;
      let detectors: string[] | undefined;
      const format = o.format ?? 'text';
      try {
        if (!['request', 'untrusted', 'response'].includes(o.stage)) throw new Error(`--stage: expected request|untrusted|response, got ${JSON.stringify(o.stage)}`);
        stage = o.stage as CheckStage;
        if (!['text', 'json', 'jsonl'].includes(format)) throw new Error(`--format: expected text|json|jsonl, got ${JSON.stringify(format)}`);
        if (o.detectors !== undefined) {
          detectors = o.detectors.split(',').map((s) => s.trim()).filter(Boolean);
          for (const d of detectors) if (!(CHECK_DETECTORS as readonly string[]).includes(d)) throw new Error(`--detectors: unknown detector '${d}' (expected ${CHECK_DETECTORS.join(',')})`);
        }
        const cfg = o.config ? loadConfig({ file: o.config }) : undefined;
        engine = createGuardEngine(cfg?.guards);
      } catch (e) {
        fail(e);
      }
      const opts = { stage, engine, ...(detectors ? { detectors } : {}) };
      let blocked = false;
      try {
        if (format === 'jsonl') {
          const rl = createInterface({ input: o.input === '-' ? process.stdin : createReadStream(o.input, 'utf8'), crlfDelay: Infinity });
          let n = 0;
          for await (const line of rl) {
            n++;
            if (line.trim() === '') continue;
            let text: unknown;
            try {
              text = (JSON.parse(line) as { text?: unknown })?.text;
            } catch {
              text = undefined;
            }
            if (typeof text !== 'string') {
              process.stdout.write(JSON.stringify({ error: `line ${n}: expected a JSON object with a string "text" field` }) + '\n');
              continue;
            }
            let r: CheckResult;
            try {
              r = await check(text, opts);
            } catch (e) {
              process.stdout.write(JSON.stringify({ error: `line ${n}: ${(e as Error).message}` }) + '\n');
              continue;
            }
            blocked ||= r.verdict === 'block';
            process.stdout.write(JSON.stringify(r) + '\n');
          }
        } else {
          const text = await readAll(o.input);
          const r = await check(text, opts);
          blocked = r.verdict === 'block';
          process.stdout.write(format === 'json' ? JSON.stringify(r, null, 2) + '\n' : formatReport(r, text));
        }
      } catch (e) {
        await engine.close();
        fail(e);
      }
      await engine.close();
      process.exitCode = blocked ? 1 : 0;
    });
}
