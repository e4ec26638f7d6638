import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { createStreamScanner, createStreamRestorer, replaceSpans } from './index.js';
import type { Finding } from '../types.js';

// Token-shaped values are built at run time so no literal secret sits in the repository.
const SECRET = 'sk' + '-' + 'proj' + 'A1b2C3d4E5f6G7h8J9k0L1m2';
const EMAIL = 'jane.doe' + '@' + 'example.org';
const CANARY = 'pcl-canary-' + '0123456789abcdef';

const PATTERNS: Array<[string, RegExp]> = [
  ['EMAIL', /[A-Za-z0-9._+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){1,4}/g],
  ['SECRET', /sk-[A-Za-z0-9_-]{20,100}/g],
  ['CANARY', /pcl-canary-[0-9a-f]{16}/gi],
];

function scan(text: string): { findings: Finding[] } {
  const findings: Finding[] = [];
  for (const [category, re] of PATTERNS) {
    re.lastIndex = 0;
    for (const m of text.matchAll(re)) {
      findings.push({ detector: 'test', category, severity: 'high', score: 1, start: m.index, end: m.index + m[0].length, reason: category });
    }
  }
  return { findings };
}
const rewrite = (text: string, f: Finding[]): string => replaceSpans(text, f, (g) => `[${g[0].category}]`);
const whole = (text: string): string => rewrite(text, scan(text).findings);

function runChunks(chunks: string[], holdBack = 256, block = false): { out: string; blocked: boolean } {
  const s = createStreamScanner({
    scan,
    rewrite: block ? (t, f) => (f.some((x) => x.category === 'CANARY') ? null : rewrite(t, f)) : rewrite,
    holdBack,
  });
  let out = '';
  let blocked = false;
  for (const c of chunks) {
    const r = s.push(c);
    out += r.emit;
    if (r.blocked) blocked = true;
  }
  const r = s.end();
  out += r.emit;
  if (r.blocked) blocked = true;
  return { out, blocked };
}

function splitAt(text: string, cuts: number[]): string[] {
  const sorted = [...new Set(cuts.map((c) => Math.max(0, Math.min(text.length, c))))].sort((a, b) => a - b);
  const parts: string[] = [];
  let prev = 0;
  for (const c of sorted) {
    parts.push(text.slice(prev, c));
    prev = c;
  }
  parts.push(text.slice(prev));
  return parts;
}

const filler = fc.string({ unit: fc.constantFrom('a', 'b', ' ', '\n', '.', '@', '-', 'x', '9', 'é', '😀'), maxLength: 600 });

test('split at every offset (two and three chunks): output equals the non-streamed rewrite', () => {
  const text = `Hello ${EMAIL}, your key is ${SECRET} and ${CANARY}. Bye.`;
  const expected = whole(text);
  assert.ok(!expected.includes(SECRET) && !expected.includes(EMAIL) && !expected.includes(CANARY));
  for (const hb of [32, 64, 256]) {
    for (let i = 0; i <= text.length; i++) {
      assert.equal(runChunks(splitAt(text, [i]), hb).out, expected, `holdBack=${hb} cut=${i}`);
      assert.equal(runChunks(splitAt(text, [i, i + 7]), hb).out, expected);
    }
  }
  // one character per chunk
  assert.equal(runChunks([...text], 64).out, expected);
});

test('property: random texts with PII, secret and canary, random chunkings', () => {
  fc.assert(
    fc.property(filler, filler, filler, filler, fc.array(fc.nat({ max: 2500 }), { maxLength: 40 }), fc.integer({ min: 110, max: 400 }), (a, b, c, d, cuts, hb) => {
      const text = `${a} ${EMAIL} ${b} ${SECRET} ${c} ${CANARY} ${d}`;
      const expected = whole(text);
      const { out } = runChunks(splitAt(text, cuts), hb);
      assert.equal(out, expected);
      assert.ok(!out.includes(SECRET));
      assert.ok(!out.includes(CANARY));
    }),
    { numRuns: 300 },
  );
});

test('property: TTFB — with nothing risky, output lags input by at most holdBack', () => {
  const plain = fc.string({ unit: fc.constantFrom('a', 'b', ' ', '\n', '.', 'z'), maxLength: 2000 });
  fc.assert(
    fc.property(plain, fc.array(fc.nat({ max: 2000 }), { maxLength: 30 }), fc.integer({ min: 0, max: 300 }), (text, cuts, hb) => {
      const s = createStreamScanner({ scan, rewrite, holdBack: hb });
      let inLen = 0;
      let outLen = 0;
      for (const c of splitAt(text, cuts)) {
        inLen += c.length;
        outLen += s.push(c).emit.length;
        assert.ok(inLen - outLen <= hb, `lag ${inLen - outLen} > ${hb}`);
      }
      outLen += s.end().emit.length;
      assert.equal(outLen, text.length);
    }),
    { numRuns: 200 },
  );
});

test('a block stops the stream and nothing is emitted afterwards', () => {
  const text = 'x'.repeat(300) + ` leak ${CANARY} ` + 'y'.repeat(600);
  for (let i = 0; i <= text.length; i += 13) {
    const { out, blocked } = runChunks(splitAt(text, [i, i + 100]), 64, true);
    assert.ok(blocked);
    assert.ok(!out.includes('canary'));
    assert.ok(!out.includes('y'));
    assert.ok(out.length <= 310);
  }
});

test('riskyTail holds an unfinished fragment beyond holdBack, bounded by maxHold', () => {
  const s = createStreamScanner({
    scan: () => ({ findings: [] }),
    rewrite: (t) => t,
    holdBack: 4,
    maxHold: 50,
    riskyTail: (t) => {
      const i = t.lastIndexOf('![');
      return i >= 0 && !t.slice(i).includes(')') ? t.length - i : 0;
    },
  });
  assert.equal(s.push('hello world ').emit, 'hello wo');
  assert.equal(s.push('![x](http://e.com/').emit, 'rld ');
  assert.equal(s.push('abc').emit, '');
  assert.equal(s.push(')').emit, '![x](http://e.com/');
  // Never held whole: a fragment longer than maxHold is released.
  const r = s.push('![' + 'q'.repeat(100));
  assert.ok(r.emit.length > 40);
  assert.equal(s.end().emit.length + r.emit.length, 'abc)'.length + 102);
});

test('restorer: placeholders split across every offset are restored', () => {
  const mapping = new Map([
    ['<PERSON_1>', 'Jane Doe'],
    ['<PERSON_12>', 'John Roe'],
    ['<EMAIL_1>', EMAIL],
  ]);
  const text = 'Dear <PERSON_1>, <PERSON_12> wrote to <EMAIL_1> about <PERSON_> and <PERSON_1';
  const expected = 'Dear Jane Doe, John Roe wrote to ' + EMAIL + ' about <PERSON_> and <PERSON_1';
  for (let i = 0; i <= text.length; i++) {
    for (const j of [i + 1, i + 5]) {
      const r = createStreamRestorer(mapping);
      let out = '';
      for (const c of splitAt(text, [i, j])) out += r.push(c);
      out += r.end();
      assert.equal(out, expected);
    }
  }
  // Holds back only a possible placeholder prefix.
  const r = createStreamRestorer(mapping);
  assert.equal(r.push('abc <PER'), 'abc ');
  assert.equal(r.push('haps'), '<PERhaps');
});

test('property: restorer equals a whole-text replacement', () => {
  const mapping = new Map([
    ['<PERSON_1>', 'Ann'],
    ['<PHONE_2>', '+1 555 0100'],
  ]);
  const unit = fc.constantFrom('<', '>', 'P', 'E', 'R', 'S', 'O', 'N', '_', '1', '2', 'H', ' ', '<PERSON_1>', '<PHONE_2>');
  fc.assert(
    fc.property(fc.array(unit, { maxLength: 80 }), fc.array(fc.nat({ max: 300 }), { maxLength: 20 }), (units, cuts) => {
      const text = units.join('');
      const expected = text.replace(/<PERSON_1>|<PHONE_2>/g, (m) => mapping.get(m)!);
      const r = createStreamRestorer(mapping);
      let out = '';
      for (const c of splitAt(text, cuts)) out += r.push(c);
      out += r.end();
      assert.equal(out, expected);
    }),
    { numRuns: 300 },
  );
});

test('minRelease batches scans and bounds the lag by holdBack + minRelease', () => {
  let scans = 0;
  const s = createStreamScanner({ scan: (t) => (scans++, scan(t)), rewrite, holdBack: 32, minRelease: 64 });
  const text = `x`.repeat(500) + ` ${SECRET} ` + 'y'.repeat(500);
  let out = '';
  let inLen = 0;
  for (let i = 0; i < text.length; i += 4) {
    inLen += text.slice(i, i + 4).length;
    out += s.push(text.slice(i, i + 4)).emit;
    assert.ok(inLen - out.length <= 32 + 64 + 40);
  }
  out += s.end().emit;
  assert.equal(out, whole(text));
  assert.ok(scans < text.length / 4 / 10, `${scans} scans`);
});

test('a finding that starts in released context but reaches into pending text is rewritten, not dropped', () => {
  // A scan whose finding covers more than its carrier: from the start of the window to the end of a marker.
  const wide = (text: string): { findings: Finding[] } => {
    const at = text.indexOf('MARKER');
    return { findings: at < 0 ? [] : [{ detector: 'test', category: 'WIDE', severity: 'high', score: 1, start: 0, end: at + 6, reason: 'wide' }] };
  };
  const text = 'x'.repeat(300) + 'MARKER' + 'y'.repeat(100);
  for (let step = 1; step <= 64; step += 7) {
    const s = createStreamScanner({ scan: wide, rewrite: (t, f) => replaceSpans(t, f, () => '[WIDE]'), holdBack: 32 });
    let out = '';
    for (let i = 0; i < text.length; i += step) out += s.push(text.slice(i, i + step)).emit;
    out += s.end().emit;
    assert.ok(!out.includes('MARKER'), `step ${step}: ${out}`);
    assert.ok(out.endsWith('[WIDE]' + 'y'.repeat(100)), `step ${step}`);
    assert.ok(s.findings.every((f) => f.end > f.start));
  }
});
