/**
 * PII evaluation on presidio_research (synthetic sentences with character spans).
 *
 * Matching rule (same for Portcullis and every peer): a predicted span of type T is a true
 * positive when it overlaps (≥ 1 character) a gold span of type T; a gold span is recalled when
 * at least one predicted span of its type overlaps it. Precision = TP predictions / predictions,
 * recall = recalled gold spans / gold spans. Only predictions of types that the data set
 * annotates are scored (e.g. MAC or DATE_OF_BIRTH predictions are not counted, because the set
 * does not label them). Gold offsets are Python code points and are converted to UTF-16.
 */
import { join } from 'node:path';
import { mkdirSync, writeFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { cpToUtf16, DATASETS_DIR, fmt, formatTable, loadJsonl, splitOf, truncate, type SpanRow } from '../lib/index.js';
import { detectPii, PII_ENTITIES, STRUCTURED_ENTITIES } from '../../src/detect/pii/index.js';

type Span = { start: number; end: number; type: string };

const GOLD_MAP: Record<string, string> = {
  EMAIL_ADDRESS: 'EMAIL', PHONE_NUMBER: 'PHONE', CREDIT_CARD: 'CREDIT_CARD', IBAN_CODE: 'IBAN', US_SSN: 'US_SSN', IP_ADDRESS: 'IP_ADDRESS',
  PERSON: 'PERSON', LOCATION: 'LOCATION', GPE: 'LOCATION', STREET_ADDRESS: 'STREET_ADDRESS', ADDRESS: 'STREET_ADDRESS', US_DRIVER_LICENSE: 'DRIVER_LICENSE',
};
const STRUCTURED = ['EMAIL', 'PHONE', 'CREDIT_CARD', 'IBAN', 'US_SSN', 'IP_ADDRESS'];
const NER = ['PERSON', 'LOCATION'];
const OTHER = ['STREET_ADDRESS', 'DRIVER_LICENSE'];
const SCORED = new Set([...STRUCTURED, ...NER, ...OTHER]);

/** Recovers replaced spans from a peer's redacted output by aligning the literal text between placeholders. */
function spansFromRedacted(original: string, redacted: string, placeholder: RegExp, mapLabel: (l: string) => string | undefined): Span[] {
  const out: Span[] = [];
  const parts: Array<{ lit: string } | { label: string }> = [];
  let last = 0;
  for (const m of redacted.matchAll(placeholder)) {
    parts.push({ lit: redacted.slice(last, m.index) });
    parts.push({ label: m[1] ?? m[0] });
    last = m.index + m[0].length;
  }
  parts.push({ lit: redacted.slice(last) });
  let pos = 0;
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i]!;
    if ('lit' in p) {
      if (original.startsWith(p.lit, pos)) pos += p.lit.length;
      continue;
    }
    let j = i + 1;
    const labels = [p.label];
    while (j < parts.length && 'lit' in parts[j]! && (parts[j] as { lit: string }).lit === '' && j + 1 < parts.length) {
      labels.push((parts[j + 1] as { label: string }).label);
      j += 2;
    }
    const next = parts[j] && 'lit' in parts[j]! ? (parts[j] as { lit: string }).lit : '';
    const end = next === '' ? original.length : original.indexOf(next, pos + 1);
    if (end < 0) break;
    const type = mapLabel(labels[0]!);
    if (type) out.push({ start: pos, end, type });
    pos = end;
    i = j - 1;
  }
  return out;
}

interface Counts {
  pred: number;
  tpPred: number;
  gold: number;
  recalled: number;
}

function score(goldRows: Span[][], predRows: Span[][]): Map<string, Counts> {
  const by = new Map<string, Counts>();
  const get = (t: string) => {
    let c = by.get(t);
    if (!c) by.set(t, (c = { pred: 0, tpPred: 0, gold: 0, recalled: 0 }));
    return c;
  };
  for (let r = 0; r < goldRows.length; r++) {
    const gold = goldRows[r]!;
    const pred = predRows[r]!.filter((p) => SCORED.has(p.type));
    for (const g of gold) {
      const c = get(g.type);
      c.gold++;
      if (pred.some((p) => p.type === g.type && p.start < g.end && g.start < p.end)) c.recalled++;
    }
    for (const p of pred) {
      const c = get(p.type);
      c.pred++;
      if (gold.some((g) => g.type === p.type && p.start < g.end && g.start < p.end)) c.tpPred++;
    }
  }
  return by;
}

function prf(c: Counts | undefined): { precision: number | null; recall: number | null; f1: number | null } {
  if (!c) return { precision: null, recall: null, f1: null };
  const precision = c.pred > 0 ? c.tpPred / c.pred : null;
  const recall = c.gold > 0 ? c.recalled / c.gold : null;
  const f1 = precision !== null && recall !== null && precision + recall > 0 ? (2 * precision * recall) / (precision + recall) : null;
  return { precision, recall, f1 };
}

function sum(by: Map<string, Counts>, types: string[]): Counts {
  const out = { pred: 0, tpPred: 0, gold: 0, recalled: 0 };
  for (const t of types) {
    const c = by.get(t);
    if (!c) continue;
    out.pred += c.pred;
    out.tpPred += c.tpPred;
    out.gold += c.gold;
    out.recalled += c.recalled;
  }
  return out;
}

async function main(): Promise<void> {
  const rows = loadJsonl<SpanRow>(join(DATASETS_DIR, 'presidio_research', 'presidio_research.jsonl'));
  const texts = rows.map((r) => r.text);
  const gold: Span[][] = rows.map((r) => {
    const conv = cpToUtf16(r.text);
    return r.spans.filter((s) => GOLD_MAP[s.type]).map((s) => ({ start: conv(s.start), end: conv(s.end), type: GOLD_MAP[s.type]! }));
  });
  const bytes = texts.reduce((n, t) => n + Buffer.byteLength(t), 0);

  const systems: Array<{ name: string; run: (t: string) => Promise<Span[]> | Span[] }> = [];
  systems.push({ name: 'portcullis', run: (t) => detectPii(t, { entities: PII_ENTITIES }).map((f) => ({ start: f.start, end: f.end, type: f.category })) });
  systems.push({ name: 'portcullis (default: no NER)', run: (t) => detectPii(t, { entities: STRUCTURED_ENTITIES }).map((f) => ({ start: f.start, end: f.end, type: f.category })) });

  const REDACT_PII: Record<string, string> = {
    PERSON_NAME: 'PERSON', NAME: 'PERSON', EMAIL_ADDRESS: 'EMAIL', PHONE_NUMBER: 'PHONE', CREDIT_CARD_NUMBER: 'CREDIT_CARD', IP_ADDRESS: 'IP_ADDRESS',
    STREET_ADDRESS: 'STREET_ADDRESS', US_SOCIAL_SECURITY_NUMBER: 'US_SSN',
  };
  try {
    const { SyncRedactor } = await import('redact-pii');
    const red = new SyncRedactor();
    const labels = [...Object.keys(REDACT_PII), 'ZIPCODE', 'URL', 'DIGITS', 'USERNAME', 'PASSWORD', 'CREDENTIALS'];
    const ph = new RegExp(`(${labels.join('|')})`, 'g');
    systems.push({ name: 'redact-pii 3.4.0', run: (t) => spansFromRedacted(t, red.redact(t), ph, (l) => REDACT_PII[l]) });
  } catch (err) {
    console.log('redact-pii unavailable:', (err as Error).message);
  }
  try {
    const { Redactor } = await import('@redactpii/node');
    const red = new Redactor();
    const ph = /(PERSON_NAME|EMAIL_ADDRESS|PHONE_NUMBER|CREDIT_CARD_NUMBER|US_SOCIAL_SECURITY_NUMBER|IP_ADDRESS|STREET_ADDRESS)/g;
    systems.push({ name: '@redactpii/node 1.0.17', run: (t) => spansFromRedacted(t, red.redact(t), ph, (l) => REDACT_PII[l]) });
  } catch (err) {
    console.log('@redactpii/node unavailable:', (err as Error).message);
  }
  try {
    const { piiGuard } = await import('@presidio-dev/hai-guardrails');
    const guard = piiGuard({ mode: 'redact' } as never);
    const HAI: Record<string, string> = { EMAIL: 'EMAIL', PHONE: 'PHONE', 'CREDIT-CARD': 'CREDIT_CARD', SSN: 'US_SSN', 'IP-ADDRESS': 'IP_ADDRESS' };
    const ph = /\[REDACTED-([A-Z0-9-]+)\]/g;
    systems.push({
      name: '@presidio-dev/hai-guardrails 1.11.1 (piiGuard)',
      run: async (t) => {
        const res = await guard([{ role: 'user', content: t }] as never);
        const first = (res as Array<{ modifiedMessage?: { content?: unknown } }>)[0];
        const out = typeof first?.modifiedMessage?.content === 'string' ? first.modifiedMessage.content : t;
        return spansFromRedacted(t, out, ph, (l) => HAI[l]);
      },
    });
  } catch (err) {
    console.log('hai-guardrails unavailable:', (err as Error).message);
  }

  const results: Record<string, unknown> = {};
  const summary: (string | number | null)[][] = [];
  let ourPreds: Span[][] = [];
  for (const sys of systems) {
    const preds: Span[][] = [];
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    for (const t of texts) preds.push(await sys.run(t));
    const ms = performance.now() - t0;
    const cpu = process.cpuUsage(c0);
    const cpuMs = (cpu.user + cpu.system) / 1000;
    if (sys.name === 'portcullis') ourPreds = preds;
    const by = score(gold, preds);
    const perType: Record<string, unknown> = {};
    const table: (string | number | null)[][] = [];
    for (const t of [...STRUCTURED, ...NER, ...OTHER]) {
      const c = by.get(t);
      const m = prf(c);
      perType[t] = { ...c, ...m };
      table.push([t, c?.gold ?? 0, c?.pred ?? 0, fmt(m.precision), fmt(m.recall), fmt(m.f1)]);
    }
    const groups: Record<string, string[]> = { structured: STRUCTURED, 'names+locations': NER, 'address+licence': OTHER };
    const groupRes: Record<string, unknown> = {};
    for (const [g, types] of Object.entries(groups)) {
      const c = sum(by, types);
      const m = prf(c);
      groupRes[g] = { ...c, ...m };
      table.push([`[${g}]`, c.gold, c.pred, fmt(m.precision), fmt(m.recall), fmt(m.f1)]);
    }
    const mbps = bytes / 1e6 / (ms / 1000);
    const cpuMbps = bytes / 1e6 / (cpuMs / 1000);
    console.log(`\n## ${sys.name}  (${texts.length} texts, ${(bytes / 1e6).toFixed(2)} MB; wall ${mbps.toFixed(2)} MB/s, ${(texts.length / (ms / 1000)).toFixed(0)} texts/s; CPU time ${cpuMbps.toFixed(2)} MB/s, ${(texts.length / (cpuMs / 1000)).toFixed(0)} texts/s)`);
    console.log(formatTable(['type', 'gold', 'pred', 'precision', 'recall', 'F1'], table));
    const s = groupRes.structured as { f1: number | null };
    const n = groupRes['names+locations'] as { f1: number | null };
    summary.push([sys.name, fmt(s.f1), fmt(n.f1), fmt((groupRes['address+licence'] as { f1: number | null }).f1), mbps.toFixed(2), cpuMbps.toFixed(2)]);
    results[sys.name] = { perType, groups: groupRes, ms, cpuMs, mbPerSec: mbps, cpuMbPerSec: cpuMbps, textsPerSec: texts.length / (ms / 1000) };
  }
  console.log('\n## Summary (F1; overlap matching, same rule for every system)');
  console.log(formatTable(['system', 'structured F1', 'names+locations F1', 'address+licence F1', 'MB/s wall', 'MB/s CPU'], summary));

  // Throughput on long inputs (the set's texts joined into 16 KiB documents), CPU time.
  const joined = texts.join('\n');
  const docs: string[] = [];
  for (let i = 0; i < joined.length; i += 16384) docs.push(joined.slice(i, i + 16384));
  const c0 = process.cpuUsage();
  for (let r = 0; r < 3; r++) for (const d of docs) detectPii(d);
  const cu = process.cpuUsage(c0);
  const longMbps = (joined.length * 3) / 1e6 / ((cu.user + cu.system) / 1e6);
  console.log(`\nportcullis (default) on 16 KiB documents made of the set's texts: ${longMbps.toFixed(1)} MB/s (CPU time)`);
  results['portcullis (default) 16KiB documents'] = { cpuMbPerSec: longMbps };

  // Held-out view: the fixed split rule of eval/lib, so numbers can be compared with rows never looked at while writing rules.
  const held = rows.map((r, i) => (splitOf(r.text) === 'heldout' ? i : -1)).filter((i) => i >= 0);
  const hb = score(held.map((i) => gold[i]!), held.map((i) => ourPreds[i]!));
  const hs = prf(sum(hb, STRUCTURED));
  console.log(`\nportcullis on the held-out split (${held.length} rows): structured P=${fmt(hs.precision)} R=${fmt(hs.recall)} F1=${fmt(hs.f1)}`);

  // Misses and false positives of Portcullis, structured types first.
  const misses: Array<Record<string, string>> = [];
  const fps: Array<Record<string, string>> = [];
  for (let r = 0; r < rows.length; r++) {
    const t = texts[r]!;
    for (const g of gold[r]!) if (!ourPreds[r]!.some((p) => p.type === g.type && p.start < g.end && g.start < p.end)) misses.push({ type: g.type, value: t.slice(g.start, g.end), text: truncate(t, 140) });
    for (const p of ourPreds[r]!) if (SCORED.has(p.type) && !gold[r]!.some((g) => g.type === p.type && p.start < g.end && g.start < p.end)) fps.push({ type: p.type, value: t.slice(p.start, p.end), text: truncate(t, 140) });
  }
  const show = (list: Array<Record<string, string>>, title: string) => {
    console.log(`\n## ${title}`);
    for (const t of [...STRUCTURED, ...OTHER, ...NER]) {
      const of = list.filter((m) => m.type === t);
      if (of.length === 0) continue;
      console.log(`${t}: ${of.length}`);
      for (const m of of.slice(0, STRUCTURED.includes(t) ? 8 : 4)) console.log(`   ${JSON.stringify(m.value)}  in  ${JSON.stringify(m.text)}`);
    }
  };
  show(misses, 'Portcullis misses (gold spans not found)');
  show(fps, 'Portcullis false positives (predicted spans with no gold span of that type)');
  mkdirSync(join(process.cwd(), 'eval', 'results'), { recursive: true });
  writeFileSync(
    join(process.cwd(), 'eval', 'results', 'pii.json'),
    JSON.stringify({ dataset: 'presidio_research', rows: rows.length, matching: 'overlap >= 1 char, same type', results, misses: misses.slice(0, 200), falsePositives: fps.slice(0, 200) }, null, 2),
  );
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
