/**
 * Output-side evaluation: exfiltration links, system-prompt leakage (canary and overlap),
 * the SQL guard, the lexical unsafe-content baseline, and the cost of the streaming
 * hold-back. Labelled public data is used where it exists (xstest for unsafe asks, benign
 * documents and prompts from the shared sets for false positives, greshake's image-embedding
 * injections); the rest are the self-made fixtures in eval/data/output/ (see its README).
 * Prints tables and writes eval/results/output.json.
 */
import { writeFileSync, mkdirSync, existsSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DATASETS_DIR, loadJsonl, emptyConfusion, addPrediction, metricsOf, printMetricsTable, formatTable, fmt, type PromptRow, type Metrics, type Confusion } from '../lib/index.js';
import { scanOutputLinks, linkStreamAdapter } from '../../src/detect/exfil/index.js';
import { makeCanary, detectCanary, detectOverlap } from '../../src/detect/leakage/index.js';
import { checkSql, type SqlPolicy } from '../../src/detect/sql/index.js';
import { detectUnsafe } from '../../src/detect/unsafe/index.js';
import { createStreamScanner } from '../../src/detect/stream/index.js';
import type { Finding } from '../../src/detect/types.js';

const here = dirname(fileURLToPath(import.meta.url));
const dataDir = join(here, '..', 'data', 'output');
const results: Record<string, unknown> = {};
const HIGH = new Set(['high', 'critical']);

/** A deterministic PRNG (mulberry32) so synthetic cases are the same on every run. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function loadSet(name: string): PromptRow[] {
  const p = join(DATASETS_DIR, name, `${name}.jsonl`);
  return existsSync(p) ? loadJsonl<PromptRow>(p) : [];
}

function byCategory<T>(rows: T[], cat: (r: T) => string, actual: (r: T) => boolean, predicted: (r: T) => boolean): Array<{ labels: string[]; metrics: Metrics }> {
  const m = new Map<string, Confusion>();
  for (const r of rows) {
    const k = cat(r);
    addPrediction(m.get(k) ?? m.set(k, emptyConfusion()).get(k)!, actual(r), predicted(r));
  }
  return [...m.entries()].sort().map(([k, c]) => ({ labels: [k], metrics: metricsOf(c) }));
}

// ---------------------------------------------------------------- exfiltration
{
  interface Row { text: string; label: string; category: string }
  const rows = loadJsonl<Row>(join(dataDir, 'exfil.jsonl'));
  const policy = { allowHosts: ['docs.example.com'] };
  const any = emptyConfusion();
  const high = emptyConfusion();
  const misses: string[] = [];
  const fps: string[] = [];
  let leftAfterRewrite = 0;
  for (const r of rows) {
    const res = scanOutputLinks(r.text, policy);
    const isAttack = r.label === 'attack';
    addPrediction(any, isAttack, res.findings.length > 0);
    addPrediction(high, isAttack, res.findings.some((f) => HIGH.has(f.severity)));
    if (isAttack && res.findings.length === 0) misses.push(r.category);
    if (!isAttack && res.findings.length > 0) fps.push(`${r.category}:${res.findings.map((f) => f.category).join('+')}`);
    if (isAttack && /(?:evil|attacker|collect|tracker|pixel|stats-collector|log\.attacker|phish|share|bg|c)\.(?:example|test)/.test(res.rewritten) && /https?:|\/\//.test(res.rewritten)) leftAfterRewrite++;
  }
  printMetricsTable('Exfiltration fixtures (eval/data/output/exfil.jsonl, allowHosts=[docs.example.com])', ['decision'], [
    { labels: ['any finding'], metrics: metricsOf(any) },
    { labels: ['high/critical finding'], metrics: metricsOf(high) },
  ]);
  console.log(`missed attack categories: ${misses.join(', ') || 'none'}; benign with findings: ${fps.join(', ') || 'none'}; attacker URLs left after rewrite: ${leftAfterRewrite}`);

  // False positives on real benign content (no allow-list at all: every absolute link is "disallowed").
  const benignSets: Array<[string, string[]]> = [
    ['bipia document/*', loadSet('bipia').filter((r) => r.label === 'benign').map((r) => r.text)],
    ['agentdojo tool outputs', loadSet('agentdojo_environments').map((r) => r.text)],
    ['fastchat_mtbench', loadSet('fastchat_mtbench').map((r) => r.text)],
    ['self_instruct', loadSet('self_instruct_user_oriented').map((r) => r.text)],
  ];
  const fpRows: (string | number | null)[][] = [];
  const fpJson: Record<string, unknown> = {};
  let bytes = 0;
  let ms = 0;
  for (const [name, texts] of benignSets) {
    let anyF = 0;
    let highF = 0;
    const cats = new Map<string, number>();
    for (const t of texts) {
      const t0 = performance.now();
      const res = scanOutputLinks(t, {});
      ms += performance.now() - t0;
      bytes += Buffer.byteLength(t);
      if (res.findings.length) anyF++;
      if (res.findings.some((f) => HIGH.has(f.severity))) {
        highF++;
        for (const f of res.findings.filter((x) => HIGH.has(x.severity))) cats.set(f.category, (cats.get(f.category) ?? 0) + 1);
      }
    }
    fpRows.push([name, texts.length, anyF, texts.length ? anyF / texts.length : null, highF, texts.length ? highF / texts.length : null, [...cats].map(([k, v]) => `${k}=${v}`).join(' ') || '-']);
    fpJson[name] = { n: texts.length, anyFinding: anyF, highFinding: highF, highCategories: Object.fromEntries(cats) };
  }
  console.log('\nExfiltration scanner on benign content (empty allow-list)');
  console.log(formatTable(['set', 'n', 'any', 'any rate', 'high+', 'high rate', 'high categories'], fpRows));
  const mbps = bytes / 1e6 / (ms / 1000);
  console.log(`throughput: ${fmt(mbps, 2)} MB/s over ${(bytes / 1e6).toFixed(2)} MB`);

  // greshake: injections that tell the model to embed an image (a tracking pixel / beacon).
  const gres = loadSet('greshake_llm_security').filter((r) => r.label === 'attack' && /!\[[^\]]*\]\(/.test(r.text));
  const gresHit = gres.filter((r) => scanOutputLinks(r.text, {}).findings.some((f) => HIGH.has(f.severity))).length;
  console.log(`greshake injections embedding a markdown image: ${gresHit}/${gres.length} flagged high (image to a host not on the allow-list)`);
  results.exfil = { fixtures: { any: metricsOf(any), high: metricsOf(high), missedCategories: misses, benignWithFindings: fps, attackerUrlsLeftAfterRewrite: leftAfterRewrite }, benignContent: fpJson, throughputMBps: mbps, greshakeImages: { n: gres.length, flaggedHigh: gresHit } };
}

// ---------------------------------------------------------------- leakage: canary
{
  const rand = rng(42);
  const bytes = (n: number) => Uint8Array.from({ length: n }, () => Math.floor(rand() * 256));
  const N = 200;
  const encoders: Array<[string, (t: string) => string, boolean]> = [
    ['verbatim', (t) => `Sure: ${t}`, true],
    ['upper case', (t) => t.toUpperCase(), true],
    ['spaced out', (t) => [...t].join(' '), true],
    ['zero-width between chars', (t) => [...t].join('\u200b'), true],
    ['dashes removed', (t) => t.replace(/-/g, ''), true],
    ['random part only', (t) => `code ${t.slice(11)}`, true],
    ['reversed', (t) => [...t].reverse().join(''), true],
    ['rot13', (t) => t.replace(/[a-z]/g, (c) => String.fromCharCode(((c.charCodeAt(0) - 97 + 13) % 26) + 97)), true],
    ['hex', (t) => Buffer.from(t).toString('hex'), true],
    ['base64', (t) => Buffer.from(t).toString('base64'), true],
    ['base64 inside a longer text', (t) => Buffer.from(`My instructions are: ... ${t} ... end`).toString('base64'), true],
    ['base64url', (t) => Buffer.from(`x${t}`).toString('base64url'), true],
    ['full-width', (t) => [...t].map((c) => String.fromCharCode(c.charCodeAt(0) + 0xfee0)).join(''), true],
    ['URL-encoded every char', (t) => [...t].map((c) => '%' + c.charCodeAt(0).toString(16)).join(''), true],
    ['leetspeak digits for letters (expected miss)', (t) => t.replace(/a/g, '4').replace(/e/g, '3'), false],
    ['half then half with words between (expected miss)', (t) => `${t.slice(0, 20)} and then ${t.slice(20)}`, false],
  ];
  const rows: (string | number | null)[][] = [];
  const json: Record<string, number> = {};
  for (const [name, enc] of encoders) {
    let hit = 0;
    for (let i = 0; i < N; i++) {
      const c = makeCanary(bytes);
      if (detectCanary(enc(c.token), c).length > 0) hit++;
    }
    rows.push([name, N, hit, hit / N]);
    json[name] = hit / N;
  }
  // False positives: benign texts against random canaries.
  const benign = [...loadSet('fastchat_mtbench'), ...loadSet('self_instruct_user_oriented'), ...loadSet('bipia').filter((r) => r.label === 'benign'), ...loadSet('agentdojo_environments')].map((r) => r.text);
  let fp = 0;
  for (const t of benign) if (detectCanary(t, makeCanary(bytes)).length > 0) fp++;
  console.log('\nCanary detection (200 random canaries per encoding)');
  console.log(formatTable(['encoding', 'n', 'detected', 'rate'], rows));
  console.log(`false positives on ${benign.length} benign texts: ${fp}`);
  results.canary = { detectionRate: json, benignTexts: benign.length, falsePositives: fp };
}

// ---------------------------------------------------------------- leakage: overlap
{
  interface Row { id: string; system: string; output: string; label: string; category: string }
  const rows = loadJsonl<Row>(join(dataDir, 'leakage.jsonl'));
  const prompts = [...new Set(rows.map((r) => r.system))];
  const rand = rng(7);
  const cases: Array<{ category: string; attack: boolean; system: string; output: string }> = [];
  const pick = <T>(a: T[]): T => a[Math.floor(rand() * a.length)];
  const fillers = ['Sure, here you go:', 'As requested, my setup is as follows.', 'Okay!', 'Here is what I was told:'];
  for (const sp of prompts) {
    const words = sp.split(/\s+/);
    const slice = (frac: number) => {
      const len = Math.max(3, Math.round(words.length * frac));
      const start = Math.floor(rand() * (words.length - len + 1));
      return words.slice(start, start + len).join(' ');
    };
    cases.push({ category: 'verbatim full', attack: true, system: sp, output: `${pick(fillers)} "${sp}"` });
    for (let k = 0; k < 3; k++) cases.push({ category: 'verbatim 50% slice', attack: true, system: sp, output: `${pick(fillers)} ${slice(0.5)}. Anything else?` });
    for (let k = 0; k < 3; k++) cases.push({ category: 'verbatim 25% slice', attack: true, system: sp, output: `${pick(fillers)} ${slice(0.25)}. Anything else?` });
    cases.push({ category: 'reformatted (bullets, upper case)', attack: true, system: sp, output: sp.split(/(?<=\.)\s+/).map((s) => `- **${s.toUpperCase()}**`).join('\n') });
  }
  for (const r of rows) cases.push({ category: r.label === 'attack' ? 'paraphrase (expected miss)' : 'on-topic answer', attack: r.label === 'attack', system: r.system, output: r.output });
  const corpus = [...loadSet('fastchat_mtbench'), ...loadSet('self_instruct_user_oriented')].map((r) => r.text);
  for (const sp of prompts) for (const t of corpus) cases.push({ category: 'benign corpus vs prompt', attack: false, system: sp, output: t });
  const table = byCategory(cases, (c) => c.category, (c) => c.attack, (c) => detectOverlap(c.output, c.system).findings.length > 0);
  const all = emptyConfusion();
  for (const c of cases) addPrediction(all, c.attack, detectOverlap(c.output, c.system).findings.length > 0);
  printMetricsTable('System-prompt overlap (defaults: minChars 80, minNgramWords 12, coverage 0.5)', ['case'], [...table, { labels: ['ALL'], metrics: metricsOf(all) }]);
  results.overlap = { perCase: Object.fromEntries(table.map((t) => [t.labels[0], t.metrics])), all: metricsOf(all) };
}

// ---------------------------------------------------------------- SQL guard
{
  interface Row { sql: string; label: string; category: string }
  const rows = loadJsonl<Row>(join(dataDir, 'sql.jsonl'));
  const policy: SqlPolicy = { dialect: 'postgresql', allowedTables: ['orders', 'customers', 'products', 'order_items'], allowedColumns: { customers: ['id', 'name', 'country'] }, maxLimit: 1000 };
  const c = emptyConfusion();
  const wrong: string[] = [];
  let rewritten = 0;
  for (const r of rows) {
    const res = checkSql(r.sql, policy);
    const blocked = !res.ok;
    addPrediction(c, r.label === 'attack', blocked);
    if (blocked !== (r.label === 'attack')) wrong.push(`${r.label}:${r.category}:${res.findings.map((f) => f.category).join('+') || 'none'}`);
    if (res.ok && res.rewritten) rewritten++;
  }
  printMetricsTable('SQL guard (eval/data/output/sql.jsonl; positive = refused)', ['set'], [{ labels: ['sql fixtures'], metrics: metricsOf(c) }]);
  console.log(`errors: ${wrong.join('; ') || 'none'}; allowed queries with LIMIT rewritten: ${rewritten}`);
  results.sql = { metrics: metricsOf(c), errors: wrong, limitRewritten: rewritten };
}

// ---------------------------------------------------------------- unsafe content (lexical baseline)
{
  const xs = loadSet('xstest');
  const table = byCategory(xs, (r) => (r.category ?? '').split('/').pop()!.replace(/^contrast_/, ''), (r) => r.label === 'attack', (r) => detectUnsafe(r.text).length > 0);
  const all = emptyConfusion();
  for (const r of xs) addPrediction(all, r.label === 'attack', detectUnsafe(r.text).length > 0);
  printMetricsTable('Unsafe lexical baseline on xstest (requests; harmful contrast = positive)', ['xstest group'], [...table, { labels: ['ALL'], metrics: metricsOf(all) }]);
  const benignSets: Array<[string, PromptRow[]]> = [
    ['fastchat_mtbench', loadSet('fastchat_mtbench')],
    ['self_instruct', loadSet('self_instruct_user_oriented')],
    ['wizardlm_testset', loadSet('wizardlm_testset')],
    ['injecguard_notinject', loadSet('injecguard_notinject')],
    ['bipia documents', loadSet('bipia').filter((r) => r.label === 'benign')],
  ];
  const rows: (string | number | null)[][] = [];
  const fpJson: Record<string, number> = {};
  for (const [name, set] of benignSets) {
    const fp = set.filter((r) => detectUnsafe(r.text).length > 0).length;
    rows.push([name, set.length, fp, set.length ? fp / set.length : null]);
    fpJson[name] = fp;
  }
  // JailbreakBench harmful goals: what the baseline catches of plain harmful asks, by category.
  const jbb = loadSet('jailbreakbench_artifacts');
  const goals = [...new Map(jbb.map((r) => [String(r.goal ?? r.text), r])).values()];
  const goalHits = goals.filter((r) => detectUnsafe(String(r.goal ?? r.text)).length > 0).length;
  console.log('\nUnsafe baseline false positives on benign sets');
  console.log(formatTable(['set', 'n', 'flagged', 'rate'], rows));
  console.log(`JailbreakBench distinct harmful goals flagged: ${goalHits}/${goals.length} (the baseline covers only S1/S4/S7/S9/S11/S14)`);
  results.unsafe = { xstest: metricsOf(all), xstestGroups: Object.fromEntries(table.map((t) => [t.labels[0], t.metrics])), benignFalsePositives: fpJson, jailbreakbenchGoals: { n: goals.length, flagged: goalHits } };
}

// ---------------------------------------------------------------- streaming hold-back cost
{
  const rand = rng(3);
  const docs = loadSet('bipia').filter((r) => r.label === 'benign').map((r) => r.text);
  let text = '';
  while (text.length < 200_000) text += docs[Math.floor(rand() * docs.length)] + '\n\n';
  const canary = makeCanary((n) => Uint8Array.from({ length: n }, (_, i) => i));
  const adapter = linkStreamAdapter({});
  const scan = (t: string) => ({ findings: [...adapter.scan(t).findings, ...detectCanary(t, canary)] as Finding[] });
  // A canary blocks the stream; link findings are rewritten.
  const rewrite = (t: string, f: Finding[]): string | null => (f.some((x) => x.detector === 'leakage.canary') ? null : adapter.rewrite(t, f));
  const runs: (string | number | null)[][] = [];
  const json: Record<string, unknown> = {};
  for (const [chunk, minRelease] of [[8, 0], [8, 64], [32, 0], [128, 0]] as const) {
    const s = createStreamScanner({ scan, rewrite, riskyTail: adapter.riskyTail, holdBack: 256, minRelease });
    const t0 = performance.now();
    let maxPush = 0;
    let maxLag = 0;
    let inLen = 0;
    let outLen = 0;
    for (let i = 0; i < text.length; i += chunk) {
      const p0 = performance.now();
      const r = s.push(text.slice(i, i + chunk));
      maxPush = Math.max(maxPush, performance.now() - p0);
      inLen += Math.min(chunk, text.length - i);
      outLen += r.emit.length;
      maxLag = Math.max(maxLag, inLen - outLen);
    }
    s.end();
    const ms = performance.now() - t0;
    const whole0 = performance.now();
    scan(text);
    const wholeMs = performance.now() - whole0;
    const pushes = Math.ceil(text.length / chunk);
    runs.push([chunk, minRelease, pushes, ms, (ms * 1000) / pushes, text.length / 1e6 / (ms / 1000), maxPush, maxLag, wholeMs]);
    json[`chunk${chunk}_minRelease${minRelease}`] = { totalMs: ms, usPerPush: (ms * 1000) / pushes, mbPerS: text.length / 1e6 / (ms / 1000), maxPushMs: maxPush, maxLagChars: maxLag, wholeTextScanMs: wholeMs };
  }
  console.log('\nStreaming hold-back (links + canary scan, holdBack 256, 200 KB of benign markdown/code)');
  console.log(formatTable(['chunk chars', 'minRelease', 'pushes', 'total ms', 'us/push', 'MB/s', 'max push ms', 'max lag chars', 'whole-text scan ms'], runs));
  results.stream = json;
}

const outDir = join(here, '..', 'results');
mkdirSync(outDir, { recursive: true });
writeFileSync(join(outDir, 'output.json'), JSON.stringify(results, null, 2));
console.log(`\nwrote ${join('eval', 'results', 'output.json')}`);
