/**
 * Secret detection evaluation on the packed fixtures (detect-secrets, gitleaks, secretlint).
 * The archive is unpacked into a fresh temp dir at run time and removed afterwards.
 *
 * Matching rule: a labelled secret span is recalled when any finding overlaps it (≥ 1 char),
 * whatever the category (the sources use different rule vocabularies). A `no_secret` row
 * (secretlint's realistic-but-invalid tokens) with any finding is a false positive. Findings in
 * `secret` rows that overlap no labelled span are counted as "extra" (the labels are not
 * exhaustive, so they are reported, not scored). Same rule for the peer.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, readdirSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { cpToUtf16, DATASETS_DIR, fmt, formatTable, listPromptFiles, loadJsonl, truncate, type PromptRow, type SpanRow } from '../lib/index.js';
import { detectSecrets, RULE_COUNT } from '../../src/detect/secrets/index.js';

type Span = { start: number; end: number };

/** Recovers replaced spans from a peer's redacted output by aligning the literal text between placeholders. */
function spansFromRedacted(original: string, redacted: string, placeholder: RegExp): Span[] {
  const lits: string[] = [];
  let last = 0;
  for (const m of redacted.matchAll(placeholder)) {
    lits.push(redacted.slice(last, m.index));
    last = m.index + m[0].length;
  }
  lits.push(redacted.slice(last));
  const out: Span[] = [];
  if (!original.startsWith(lits[0]!)) return out;
  let pos = lits[0]!.length;
  for (let i = 1; i < lits.length; i++) {
    const lit = lits[i]!;
    const end = lit === '' ? (i === lits.length - 1 ? original.length : pos) : original.indexOf(lit, pos + 1);
    if (end < 0) break;
    if (end > pos) out.push({ start: pos, end });
    pos = end + lit.length;
  }
  return out;
}

/**
 * An excerpt safe to print and commit: long alphanumeric runs cut to 6 characters, and the
 * markers secret scanners key on (PEM headers, xox?- prefixes) broken, so results files are
 * not themselves token-shaped.
 */
function defang(text: string, max: number): string {
  const cut = text
    .replace(/[A-Za-z0-9]{12,}/g, (w) => w.slice(0, 6) + '…')
    .replace(/-----(BEGIN|END)([A-Z ]*) KEY-----/g, '[$1$2 KEY]')
    .replace(/\b(xox[a-z])-/g, '$1_');
  return truncate(cut, max);
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'pcl-secrets-'));
  try {
    execFileSync('tar', ['xzf', join(DATASETS_DIR, 'secrets-fixtures.tar.gz'), '-C', dir]);
    const rows: Array<SpanRow & { set: string }> = [];
    for (const set of readdirSync(dir)) {
      const f = join(dir, set, `${set}.jsonl`);
      if (existsSync(f)) for (const r of loadJsonl<SpanRow>(f)) rows.push({ ...r, set });
    }
    const systems: Array<{ name: string; run: (t: string) => Promise<Span[]> | Span[] }> = [
      { name: `portcullis (${RULE_COUNT} rules)`, run: (t) => detectSecrets(t) },
    ];
    try {
      const { secretGuard } = await import('@presidio-dev/hai-guardrails');
      const guard = secretGuard({ mode: 'redact' } as never);
      systems.push({
        name: '@presidio-dev/hai-guardrails 1.11.1 (secretGuard)',
        run: async (t) => {
          const res = (await guard([{ role: 'user', content: t }] as never)) as Array<{ modifiedMessage?: { content?: unknown } }>;
          const out = res[0]?.modifiedMessage?.content;
          // In redact mode the guard reports passed=true and returns the rewritten text.
          if (typeof out !== 'string' || out === t) return [];
          return spansFromRedacted(t, out, /\[REDACTED-[A-Z0-9-]+\]/g);
        },
      });
    } catch (err) {
      console.log('hai-guardrails unavailable:', (err as Error).message);
    }
    const results: Record<string, unknown> = {};
    const summary: (string | number | null)[][] = [];
    let ourMisses: Array<Record<string, string>> = [];
    let ourFps: Array<Record<string, string>> = [];
    for (const sys of systems) {
      let gold = 0;
      let recalled = 0;
      let negRows = 0;
      let fpRows = 0;
      let extra = 0;
      let bytes = 0;
      let ms = 0;
      const perSet: Record<string, { gold: number; recalled: number; negRows: number; fpRows: number }> = {};
      const misses: Array<Record<string, string>> = [];
      const fps: Array<Record<string, string>> = [];
      for (const r of rows) {
        const ps = (perSet[r.set] ??= { gold: 0, recalled: 0, negRows: 0, fpRows: 0 });
        const t0 = performance.now();
        const pred = await sys.run(r.text);
        ms += performance.now() - t0;
        bytes += Buffer.byteLength(r.text);
        const conv = cpToUtf16(r.text);
        const spans = r.spans.map((s) => ({ start: conv(s.start), end: conv(s.end), type: s.type }));
        if (r.label === 'no_secret') {
          negRows++;
          ps.negRows++;
          if (pred.length > 0) {
            fpRows++;
            ps.fpRows++;
            for (const p of pred) fps.push({ id: String(r.id), category: (p as { category?: string }).category ?? '?', text: defang(r.text.slice(Math.max(0, p.start - 30), p.end + 10), 100) });
          }
          continue;
        }
        for (const g of spans) {
          gold++;
          ps.gold++;
          if (pred.some((p) => p.start < g.end && g.start < p.end)) {
            recalled++;
            ps.recalled++;
          } else misses.push({ id: String(r.id), type: g.type, context: defang(r.text.slice(g.start, Math.min(g.end, g.start + 60)), 80) });
        }
        for (const p of pred) if (!spans.some((g) => p.start < g.end && g.start < p.end)) extra++;
      }
      const recall = gold > 0 ? recalled / gold : null;
      const fpr = negRows > 0 ? fpRows / negRows : null;
      const mbps = bytes / 1e6 / (ms / 1000);
      console.log(`\n## ${sys.name}`);
      console.log(
        formatTable(
          ['set', 'secret spans', 'recalled', 'recall', 'no_secret rows', 'rows flagged', 'FPR'],
          Object.entries(perSet).map(([k, v]) => [k, v.gold, v.recalled, fmt(v.gold ? v.recalled / v.gold : null), v.negRows, v.fpRows, fmt(v.negRows ? v.fpRows / v.negRows : null)]),
        ),
      );
      summary.push([sys.name, gold, fmt(recall), negRows, fmt(fpr), extra, mbps.toFixed(2)]);
      results[sys.name] = { gold, recalled, recall, negRows, fpRows, fpr, extraFindingsInSecretRows: extra, perSet, mbPerSec: mbps, misses, falsePositives: fps };
      if (sys.name.startsWith('portcullis')) {
        ourMisses = misses;
        ourFps = fps;
      }
    }
    console.log('\n## Summary');
    console.log(formatTable(['system', 'secret spans', 'recall', 'no_secret rows', 'FPR (rows)', 'extra findings', 'MB/s'], summary));
    console.log(`\n## Portcullis misses (${ourMisses.length}; values shortened)`);
    for (const m of ourMisses) console.log(`  ${m.id}  [${m.type}]  ${JSON.stringify(m.context)}`);
    console.log(`\n## Portcullis false positives on no_secret rows (${ourFps.length})`);
    for (const f of ourFps) console.log(`  ${f.id}  ${f.category}  ${JSON.stringify(f.text)}`);

    // False positives on benign prompts and documents (the gateway redacts secrets by default,
    // so every hit here would alter a harmless request).
    const benignTable: (string | number | null)[][] = [];
    const benignRes: Record<string, { rows: number; flagged: number }> = {};
    const benignEx: string[] = [];
    let bRows = 0;
    let bFlagged = 0;
    for (const f of listPromptFiles()) {
      const bs = loadJsonl<PromptRow>(f.path).filter((r) => r.label === 'benign');
      if (bs.length === 0) continue;
      let flagged = 0;
      for (const r of bs) {
        const fs = detectSecrets(r.text);
        if (fs.length === 0) continue;
        flagged++;
        if (benignEx.length < 10) benignEx.push(`${f.set}: ${fs.map((x) => x.category).join(',')} ${JSON.stringify(truncate(r.text.slice(Math.max(0, fs[0]!.start - 30), fs[0]!.end + 10), 90))}`);
      }
      bRows += bs.length;
      bFlagged += flagged;
      benignRes[f.set] = { rows: bs.length, flagged };
      benignTable.push([f.set, bs.length, flagged, fmt(flagged / bs.length)]);
    }
    benignTable.push(['[all benign]', bRows, bFlagged, fmt(bRows ? bFlagged / bRows : null)]);
    console.log('\n## Portcullis on benign prompts/documents (rows with any secret finding)');
    console.log(formatTable(['set', 'benign rows', 'flagged', 'FPR'], benignTable));
    for (const e of benignEx) console.log('  ' + e);

    // Throughput on a large benign-plus-secrets corpus: all fixture texts repeated to ~4 MB.
    const corpus = rows.map((r) => r.text).join('\n');
    const big = corpus.repeat(Math.max(1, Math.ceil(4e6 / corpus.length)));
    const cpuTime = (fn: () => void): number => {
      const c0 = process.cpuUsage();
      fn();
      const c = process.cpuUsage(c0);
      return (c.user + c.system) / 1000;
    };
    // CPU time, not wall time: evaluation machines are often shared, and wall time then measures the neighbours.
    const bigMs = cpuTime(() => detectSecrets(big));
    const prose = 'The quarterly report covers revenue, churn and the hiring plan for the next two quarters. '.repeat(45000);
    const proseMs = cpuTime(() => detectSecrets(prose));
    console.log(`\nthroughput (CPU time): fixtures x${Math.ceil(4e6 / corpus.length)} ${(big.length / 1e6).toFixed(1)} MB in ${bigMs.toFixed(0)} ms = ${(big.length / 1e6 / (bigMs / 1000)).toFixed(1)} MB/s; plain prose ${(prose.length / 1e6).toFixed(1)} MB in ${proseMs.toFixed(0)} ms = ${(prose.length / 1e6 / (proseMs / 1000)).toFixed(1)} MB/s`);
    mkdirSync(join(process.cwd(), 'eval', 'results'), { recursive: true });
    writeFileSync(
      join(process.cwd(), 'eval', 'results', 'secrets.json'),
      JSON.stringify({ rules: RULE_COUNT, rows: rows.length, matching: 'overlap >= 1 char, any category', results, benign: benignRes, throughput: { fixturesMBps: big.length / 1e6 / (bigMs / 1000), proseMBps: prose.length / 1e6 / (proseMs / 1000) } }, null, 2),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
