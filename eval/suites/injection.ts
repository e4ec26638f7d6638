/**
 * Injection/jailbreak evaluation: portcullis `detectInjection` and the offline npm peers on the
 * labelled prompt sets of ../shared/datasets (held-out bucket only for sets the classifier was
 * trained on), plus the self-made multilingual set in eval/data/. Prints tables and writes
 * eval/results/injection.json.
 *
 * `--split validation` scores the validation bucket (1) instead, for threshold calibration;
 * `--no-peers` skips the peers.
 */
import { writeFileSync, mkdirSync } from 'node:fs';
import { loadavg, cpus } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  listPromptFiles, loadJsonl, bucketOf, isHarmfulRequest, fnv1a, canonicalText, DATASETS_DIR, type PromptRow,
  emptyConfusion, addPrediction, metricsOf, mergeConfusion, throughputOf, printMetricsTable, formatTable, fmt, truncate,
  type Confusion, type Metrics, type Throughput,
} from '../lib/index.js';
import { EVAL_ONLY_SETS, evalOnlyHalf } from '../lib/eval-only.js';
import { detectInjection, DEFAULT_THRESHOLDS, MODEL_META } from '../../src/detect/injection/index.js';

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const SPLIT_BUCKET = args.includes('--split') && args[args.indexOf('--split') + 1] === 'validation' ? 1 : 0;
const WITH_PEERS = !args.includes('--no-peers');
/** Sets with a train/validation/held-out split: the classifier's training sets, plus BIPIA (own split; train split = calibration only). */
const TRAINED = new Set([...Object.keys((MODEL_META.sets as Record<string, string>) ?? {}), 'bipia']);
const UNTRUSTED_SETS = new Set(['bipia', 'agentdojo_environments', 'greshake_llm_security']);

interface EvalRow {
  set: string;
  text: string;
  y: boolean;
  category: string;
  trust: 'trusted' | 'untrusted';
  lang?: string;
  selfMade?: boolean;
}

// ---------------------------------------------------------------------------- data
const rows: EvalRow[] = [];
let bipiaTrainTable = 0;
const skipped: Record<string, string> = {};
for (const f of listPromptFiles()) {
  if (f.name === 'bipia_attack_instructions') {
    skipped[`${f.set}/${f.name}`] = 'attack instructions are attacks only inside a document (scored via bipia.jsonl); train split used for synthetic training';
    continue;
  }
  const trained = TRAINED.has(f.set);
  for (const r of loadJsonl<PromptRow>(f.path)) {
    if (isHarmfulRequest(r)) continue;
    if (trained && bucketOf(f.set, r) !== SPLIT_BUCKET) continue;
    // Evaluation-only sets (WizardLM, CC BY-NC): the calibration half is validation-side only
    // (never trained on), the evaluation half is the only part scored as held-out.
    if (!trained && EVAL_ONLY_SETS.has(f.set) && evalOnlyHalf(r) !== (SPLIT_BUCKET === 0 ? 'evaluation' : 'calibration')) continue;
    if (!trained && !EVAL_ONLY_SETS.has(f.set) && SPLIT_BUCKET !== 0) continue;
    const category = String(r.category ?? 'uncategorised');
    const untrusted = UNTRUSTED_SETS.has(f.set) || /^(document|tool_output|injected_document|indirect_injection)\//.test(category);
    // Validation only: BIPIA's train split has 617 benign tables against 50 code answers and 34
    // e-mails (held-out: 84 / 50 / 44), so the pooled benign-document FPR was mostly a table FPR.
    // Every 7th train table is kept, as for the synthetic injected rows below.
    if (SPLIT_BUCKET === 1 && f.set === 'bipia' && category.startsWith('document/table') && bipiaTrainTable++ % 7 !== 0) continue;
    rows.push({ set: f.set, text: r.text, y: r.label === 'attack', category, trust: untrusted ? 'untrusted' : 'trusted' });
  }
}
/**
 * Validation only: BIPIA has no attacks in its train split, so the indirect group would have no
 * positives there. Built the way the shared set built its held-out injected rows (see
 * bipia/SOURCE.md): BIPIA *train* contexts with one attack instruction at the start, the middle
 * (newline nearest the middle, else the nearest whitespace) or the end. The instructions are the
 * BIPIA train instructions on the validation side of the training script's instruction split
 * (FNV-1a of the canonical text mod 5 = 1), which training never plants; held-out (test) contexts
 * and instructions are not used. Table contexts are subsampled (every 7th) so the task mix is
 * close to the held-out one.
 */
function bipiaValidationRows(): EvalRow[] {
  const instr = loadJsonl<PromptRow>(join(DATASETS_DIR, 'bipia', 'bipia_attack_instructions.jsonl'))
    .filter((r) => r.split === 'train' && fnv1a(canonicalText(r.text)) % 5 === 1);
  const pool = { code: instr.filter((r) => String(r.category).startsWith('indirect_instruction/code/')), text: instr.filter((r) => String(r.category).startsWith('indirect_instruction/text/')) };
  const out: EvalRow[] = [];
  const contexts = loadJsonl<PromptRow>(join(DATASETS_DIR, 'bipia', 'bipia.jsonl')).filter((r) => r.split === 'train' && r.label === 'benign');
  let i = 0;
  for (const [n, ctx] of contexts.entries()) {
    const task = String(ctx.category).split('/')[1] ?? 'table';
    if (task === 'table' && n % 7 !== 0) continue;
    const p = task === 'code' ? pool.code : pool.text;
    for (let j = 0; j < 3; j++) {
      const attack = p[(3 * i + j) % p.length]!;
      const c = ctx.text;
      let text: string;
      if (j === 0) text = `${attack.text}\n${c}`;
      else if (j === 2) text = `${c}\n${attack.text}`;
      else {
        const mid = Math.floor(c.length / 2);
        let at = -1;
        for (const sep of ['\n', ' ']) {
          const a = c.lastIndexOf(sep, mid);
          const b = c.indexOf(sep, mid);
          const cands = [a, b].filter((x) => x >= 0);
          if (cands.length) {
            at = cands.sort((x, y) => Math.abs(x - mid) - Math.abs(y - mid))[0]!;
            break;
          }
        }
        text = at < 0 ? `${c}\n${attack.text}` : `${c.slice(0, at)}\n${attack.text}\n${c.slice(at + 1)}`;
      }
      out.push({ set: 'bipia_validation_synthetic', text, y: true, category: `injected_document/${task}/${String(attack.category).split('/')[2]}`, trust: 'untrusted' });
    }
    i++;
  }
  return out;
}
if (SPLIT_BUCKET === 1) rows.push(...bipiaValidationRows());

const selfMadeRows: EvalRow[] = SPLIT_BUCKET === 0
  ? loadJsonl<PromptRow>(join(here, '..', 'data', 'injection-multilingual.jsonl')).map((r) => ({
      set: 'self_made_multilingual', text: r.text, y: r.label === 'attack', category: String(r.category), trust: 'trusted' as const, lang: String(r.lang), selfMade: true,
    }))
  : [];
const allRows = [...rows, ...selfMadeRows];

// ---------------------------------------------------------------------------- detectors
interface Detector {
  name: string;
  /** Returns true when the text is flagged; may be async. */
  run: (row: EvalRow) => boolean | Promise<boolean>;
  /** Optional score for threshold sweeps. */
  score?: (row: EvalRow) => number;
  note?: string;
}

const scoreCache = new Map<EvalRow, number>();
const ours: Detector = {
  name: 'portcullis',
  run: (row) => {
    const r = detectInjection(row.text, { trust: row.trust });
    scoreCache.set(row, r.score);
    return r.band === 'act';
  },
};

async function loadPeers(): Promise<{ peers: Detector[]; failures: Record<string, string> }> {
  const peers: Detector[] = [];
  const failures: Record<string, string> = {};
  try {
    const mod = (await import('@andersmyrmel/vard')) as unknown as { default: { strict(): { maxLength(n: number): { safeParse(s: string): { safe: boolean } } } } };
    const v = mod.default.strict().maxLength(50_000_000);
    peers.push({ name: 'vard strict', run: (row) => !v.safeParse(row.text).safe, note: '@andersmyrmel/vard strict preset, maxLength raised' });
  } catch (err) {
    failures['@andersmyrmel/vard'] = (err as Error).message;
  }
  try {
    const hai = (await import('@presidio-dev/hai-guardrails')) as unknown as {
      injectionGuard(o: unknown, e: { mode: string; threshold: number }): (m: { role: string; content: string }[]) => Promise<{ passed: boolean }[]> | { passed: boolean }[];
    };
    // The heuristic mode took ~6 s for a 100-character text here (>60 s at 1 KB), so only the pattern mode runs.
    failures['@presidio-dev/hai-guardrails heuristic mode'] = 'not run: ~6 s per 100-character text on this machine (timed out at 1 KB), too slow for the data sets';
    for (const mode of ['pattern']) {
      const g = hai.injectionGuard({ roles: ['user'] }, { mode, threshold: 0.7 });
      peers.push({
        name: `hai ${mode}`,
        run: async (row) => (await g([{ role: 'user', content: row.text }])).some((r) => !r.passed),
        note: `@presidio-dev/hai-guardrails injectionGuard mode=${mode} threshold=0.7`,
      });
    }
  } catch (err) {
    failures['@presidio-dev/hai-guardrails'] = (err as Error).message;
  }
  try {
    const lg = (await import('llm_guardrail' as string)) as unknown as {
      checkInjection(s: string): Promise<{ detected: boolean }>;
      checkJailbreak(s: string): Promise<{ detected: boolean }>;
    };
    peers.push({
      name: 'llm_guardrail',
      run: async (row) => (await lg.checkInjection(row.text)).detected || (await lg.checkJailbreak(row.text)).detected,
      note: 'llm_guardrail checkInjection || checkJailbreak (bundled offline models)',
    });
  } catch (err) {
    failures.llm_guardrail = (err as Error).message;
  }
  return { peers, failures };
}

// ---------------------------------------------------------------------------- run
interface Pred {
  row: EvalRow;
  flagged: boolean;
  score?: number;
}
interface DetectorRun {
  name: string;
  note?: string;
  preds: Pred[];
  throughput: Throughput;
  perSetThroughput: Record<string, Throughput>;
  errors: number;
}

async function runDetector(d: Detector, data: EvalRow[]): Promise<DetectorRun> {
  const preds: Pred[] = [];
  const perSet: Record<string, { bytes: number; ms: number; n: number }> = {};
  let errors = 0;
  let bytes = 0;
  let ms = 0;
  for (const row of data) {
    const b = Buffer.byteLength(row.text);
    const t0 = performance.now();
    let flagged = false;
    try {
      flagged = await d.run(row);
    } catch {
      errors++;
      flagged = false;
    }
    const dt = performance.now() - t0;
    bytes += b;
    ms += dt;
    const s = (perSet[row.set] ??= { bytes: 0, ms: 0, n: 0 });
    s.bytes += b;
    s.ms += dt;
    s.n++;
    preds.push({ row, flagged });
  }
  return {
    name: d.name,
    note: d.note,
    preds,
    throughput: throughputOf(data.length, bytes, ms),
    perSetThroughput: Object.fromEntries(Object.entries(perSet).map(([k, v]) => [k, throughputOf(v.n, v.bytes, v.ms)])),
    errors,
  };
}

function confusionOf(preds: Pred[], filter: (r: EvalRow) => boolean): Confusion {
  const c = emptyConfusion();
  for (const p of preds) if (filter(p.row)) addPrediction(c, p.row.y, p.flagged);
  return c;
}

const main = async () => {
  console.log(`injection eval: ${rows.length} rows from shared sets (${SPLIT_BUCKET === 0 ? 'held-out bucket 0 for trained sets, all rows otherwise' : 'validation bucket 1 of trained sets'}), ${selfMadeRows.length} self-made multilingual rows`);
  console.log(`thresholds: trusted ${JSON.stringify(DEFAULT_THRESHOLDS.trusted)}, untrusted ${JSON.stringify(DEFAULT_THRESHOLDS.untrusted)}; flagged = band "act"`);
  for (const [k, v] of Object.entries(skipped)) console.log(`skipped ${k}: ${v}`);

  // Warm-up (JIT, model decode) so the first set's throughput is not penalised.
  for (let i = 0; i < 50; i++) detectInjection(allRows[i % allRows.length].text);

  const runs: DetectorRun[] = [await runDetector(ours, allRows)];
  let peerFailures: Record<string, string> = {};
  if (WITH_PEERS) {
    const { peers, failures } = await loadPeers();
    peerFailures = failures;
    for (const p of peers) {
      process.stderr.write(`running peer ${p.name}…\n`);
      runs.push(await runDetector(p, allRows));
    }
    for (const [k, v] of Object.entries(failures)) console.log(`peer ${k}: ${v}`);
  }

  const sets = [...new Set(allRows.map((r) => r.set))];
  const result: Record<string, unknown> = {
    generatedAt: new Date().toISOString(),
    split: SPLIT_BUCKET === 0 ? 'heldout' : 'validation',
    thresholds: DEFAULT_THRESHOLDS,
    peerFailures,
    skipped,
    detectors: {} as Record<string, unknown>,
  };

  // Per set, every detector.
  const perSetRows: { labels: string[]; metrics: Metrics; extra: (string | number | null)[] }[] = [];
  for (const set of sets) {
    for (const run of runs) {
      const m = metricsOf(confusionOf(run.preds, (r) => r.set === set));
      const tp = run.perSetThroughput[set];
      perSetRows.push({ labels: [set, run.name], metrics: m, extra: [Number(tp.mbPerS.toFixed(2)), Math.round(tp.textsPerS)] });
    }
  }
  printMetricsTable('Per set (harmful_request/* excluded)', ['set', 'detector'], perSetRows, ['MB/s', 'texts/s']);

  // Per category, ours.
  const catKey = (r: EvalRow) => `${r.set} · ${r.category.split('/').slice(0, 2).join('/')}`;
  const cats = [...new Set(allRows.map(catKey))].sort();
  printMetricsTable(
    'Per category (portcullis)',
    ['set · category'],
    cats.map((c) => ({ labels: [c], metrics: metricsOf(confusionOf(runs[0].preds, (r) => catKey(r) === c)) })),
  );

  // Summary groups.
  const groups: Record<string, (r: EvalRow) => boolean> = {
    'direct prompts (trusted, shared sets)': (r) => !r.selfMade && r.trust === 'trusted',
    'direct, benign prompts without NotInject': (r) => !r.selfMade && r.trust === 'trusted' && !r.y && r.set !== 'injecguard_notinject',
    'NotInject (hard benign)': (r) => r.set === 'injecguard_notinject',
    'indirect (untrusted: documents, tool outputs)': (r) => !r.selfMade && r.trust === 'untrusted',
    'all shared sets pooled': (r) => !r.selfMade,
    'self-made multilingual': (r) => !!r.selfMade,
  };
  const summaryRows: { labels: string[]; metrics: Metrics; extra: (string | number | null)[] }[] = [];
  const summaryJson: Record<string, Record<string, Metrics>> = {};
  for (const [g, f] of Object.entries(groups)) {
    summaryJson[g] = {};
    for (const run of runs) {
      const m = metricsOf(confusionOf(run.preds, f));
      summaryJson[g][run.name] = m;
      summaryRows.push({ labels: [g, run.name], metrics: m, extra: [] });
    }
  }
  printMetricsTable('Summary', ['group', 'detector'], summaryRows);

  // Threshold sweep (portcullis scores): recall / FPR per trust group, to document the trade-off.
  const sweep: Record<string, { t: number; recall: number | null; fpr: number | null }[]> = {};
  for (const [g, f] of Object.entries({ trusted: (r: EvalRow) => !r.selfMade && r.trust === 'trusted', untrusted: (r: EvalRow) => !r.selfMade && r.trust === 'untrusted', notinject: (r: EvalRow) => r.set === 'injecguard_notinject' })) {
    sweep[g] = [0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9].map((t) => {
      const c = emptyConfusion();
      for (const p of runs[0].preds) if (f(p.row)) addPrediction(c, p.row.y, (scoreCache.get(p.row) ?? 0) >= t);
      const m = metricsOf(c);
      return { t, recall: m.recall, fpr: m.fpr };
    });
  }
  console.log('\nThreshold sweep (portcullis): recall / FPR');
  console.log(formatTable(['group', ...sweep.trusted.map((x) => `t=${x.t}`)], Object.entries(sweep).map(([g, xs]) => [g, ...xs.map((x) => `${fmt(x.recall, 2)}/${fmt(x.fpr, 3)}`)])));
  result.sweep = sweep;

  // Per language (self-made set).
  const langs = [...new Set(selfMadeRows.map((r) => r.lang!))];
  if (langs.length > 0) {
    console.log('\nSelf-made multilingual set (written by us, generic; see eval/data/README.md): recall on attacks / FPR on benign');
    console.log(
      formatTable(
        ['language', ...runs.flatMap((r) => [`${r.name} recall`, `${r.name} FPR`])],
        langs.map((l) => [l, ...runs.flatMap((run) => {
          const m = metricsOf(confusionOf(run.preds, (r) => r.lang === l));
          return [m.recall, m.fpr];
        })]),
      ),
    );
  }

  // Throughput, overall.
  const load = loadavg().map((x) => x.toFixed(1)).join(' ');
  console.log(`\nThroughput (all rows, one thread; ${cpus().length} CPUs, load average at the end ${load} — compare detectors only within one run)`);
  result.loadAverage = loadavg();
  console.log(formatTable(['detector', 'texts', 'MB', 'MB/s', 'texts/s', 'errors'], runs.map((r) => [r.name, r.throughput.texts, Number((r.throughput.bytes / 1e6).toFixed(2)), Number(r.throughput.mbPerS.toFixed(2)), Math.round(r.throughput.textsPerS), r.errors])));

  // Examples of misses and false positives (ours).
  const misses = runs[0].preds.filter((p) => p.row.y && !p.flagged);
  const fps = runs[0].preds.filter((p) => !p.row.y && p.flagged);
  const example = (p: Pred) => {
    const r = detectInjection(p.row.text, { trust: p.row.trust });
    return { set: p.row.set, category: p.row.category, trust: p.row.trust, score: r.score, top: r.findings.slice(0, 2).map((f) => `${f.category}:${f.score}`), text: truncate(p.row.text, 150) };
  };
  const sample = <T>(xs: T[], n: number) => xs.filter((_, i) => i % Math.max(1, Math.floor(xs.length / n)) === 0).slice(0, n);
  const missEx = sample(misses, 12).map(example);
  const fpEx = sample(fps, 12).map(example);
  console.log(`\nportcullis misses: ${misses.length} (examples)`);
  for (const e of missEx) console.log(`  [${e.set} · ${e.category} · ${e.trust} · score ${e.score}] ${e.text}`);
  console.log(`\nportcullis false positives: ${fps.length} (examples)`);
  for (const e of fpEx) console.log(`  [${e.set} · ${e.category} · ${e.trust} · score ${e.score} · ${e.top.join(', ')}] ${e.text}`);

  const det = result.detectors as Record<string, unknown>;
  for (const run of runs) {
    det[run.name] = {
      note: run.note,
      errors: run.errors,
      throughput: run.throughput,
      perSet: Object.fromEntries(sets.map((s) => [s, { ...metricsOf(confusionOf(run.preds, (r) => r.set === s)), throughput: run.perSetThroughput[s] }])),
      perLanguage: Object.fromEntries(langs.map((l) => [l, metricsOf(confusionOf(run.preds, (r) => r.lang === l))])),
    };
  }
  result.perCategory = Object.fromEntries(cats.map((c) => [c, metricsOf(confusionOf(runs[0].preds, (r) => catKey(r) === c))]));
  result.summary = summaryJson;
  result.examples = { misses: missEx, falsePositives: fpEx };
  result.pooled = metricsOf(mergeConfusion(confusionOf(runs[0].preds, () => true)));
  const outDir = join(here, '..', 'results');
  mkdirSync(outDir, { recursive: true });
  const out = join(outDir, SPLIT_BUCKET === 0 ? 'injection.json' : 'injection-validation.json');
  writeFileSync(out, JSON.stringify(result, null, 2) + '\n');
  console.log(`\nwrote ${out}`);
  void fmt;
};

await main();
