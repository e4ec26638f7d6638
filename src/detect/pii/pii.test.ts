import { test } from 'node:test';
import assert from 'node:assert/strict';
import { detectPii, compileUserPattern, UnsafePatternError, PII_ENTITIES } from './index.js';
import * as v from './validators.js';

const cats = (t: string, o?: Parameters<typeof detectPii>[1]) => detectPii(t, o).map((f) => [f.category, t.slice(f.start, f.end)]);
const has = (t: string, cat: string, value: string, o?: Parameters<typeof detectPii>[1]) => cats(t, o).some(([c, x]) => c === cat && x === value);

test('validators: Luhn, issuer, mod-97, SSN/ITIN/NINO ranges', () => {
  assert.equal(v.luhnValid('4111111111111111'), true);
  assert.equal(v.luhnValid('4111111111111112'), false);
  assert.equal(v.cardIssuer('378282246310005'), 'amex');
  assert.equal(v.cardIssuer('9111111111111111'), undefined);
  assert.equal(v.ibanValid('GB82 WEST 1234 5698 7654 32'), true);
  assert.equal(v.ibanValid('GB82WEST12345698765433'), false);
  assert.equal(v.ibanValid('GB82WEST123456987654'), false, 'wrong length for GB');
  assert.equal(v.ibanValid('DE89370400440532013000'), true);
  assert.equal(v.ssnValid('123', '45', '6780'), true);
  assert.equal(v.ssnValid('000', '45', '6789'), false);
  assert.equal(v.ssnValid('666', '45', '6789'), false);
  assert.equal(v.ssnValid('912', '45', '6789'), false);
  assert.equal(v.ssnValid('123', '00', '6789'), false);
  assert.equal(v.ssnValid('123', '45', '0000'), false);
  assert.equal(v.itinValid('912', '78'), true);
  assert.equal(v.itinValid('912', '45'), false);
  assert.equal(v.ninoValid('AB123456C'), true);
  assert.equal(v.ninoValid('BG123456C'), false);
  assert.equal(v.ninoValid('AB123456E'), false);
});

test('validators: base58check, bech32, EIP-55, keccak, entropy', () => {
  assert.equal(Buffer.from(v.keccak256(new Uint8Array())).toString('hex'), 'c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470');
  assert.equal(v.eip55Valid('0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed'), true);
  assert.equal(v.eip55Valid('0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD'), false);
  assert.equal(v.base58CheckValid('1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa'), true);
  assert.equal(v.base58CheckValid('1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNb'), false);
  assert.equal(v.bech32Valid('bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq'), true);
  assert.equal(v.bech32Valid('bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdz'), false);
  assert.equal(v.shannonEntropy('aaaa'), 0);
  assert.equal(v.shannonEntropy('abcd'), 2);
});

test('structured recognizers find values with correct offsets', () => {
  const t = 'Mail jo.doe@example.co.uk or call +44 20 7946 0958; card 4111 1111 1111 1111, IBAN DE89 3704 0044 0532 0130 00, SSN 123-45-6780, ip 192.168.10.20 and fe80::1ff:fe23:4567:890a, mac 00:1A:2B:3C:4D:5E.';
  for (const [c, x] of [
    ['EMAIL', 'jo.doe@example.co.uk'], ['PHONE', '+44 20 7946 0958'], ['CREDIT_CARD', '4111 1111 1111 1111'], ['IBAN', 'DE89 3704 0044 0532 0130 00'],
    ['US_SSN', '123-45-6780'], ['IP_ADDRESS', '192.168.10.20'], ['IP_ADDRESS', 'fe80::1ff:fe23:4567:890a'], ['MAC_ADDRESS', '00:1A:2B:3C:4D:5E'],
  ] as const) assert.ok(has(t, c, x), `${c} ${x}: got ${JSON.stringify(cats(t))}`);
  for (const f of detectPii(t)) {
    assert.ok(f.start >= 0 && f.end <= t.length && f.start < f.end);
    assert.ok(!f.reason.includes(t.slice(f.start, f.end)), 'reason never echoes the value');
    assert.match(f.detector, /^pii\.[a-z_]+$/);
  }
});

test('wallets, NINO, ITIN, context-gated DOB/passport/licence', () => {
  assert.ok(has('send to 0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed', 'CRYPTO_WALLET', '0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed'));
  assert.ok(!has('send to 0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD', 'CRYPTO_WALLET', '0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD'), 'bad EIP-55 case');
  assert.ok(has('btc: bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq', 'CRYPTO_WALLET', 'bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq'));
  assert.ok(has('NI number AB 12 34 56 C', 'UK_NINO', 'AB 12 34 56 C'));
  assert.ok(has('ITIN 912-78-1234', 'US_ITIN', '912-78-1234'));
  assert.ok(has('I was born on 12/03/1980', 'DATE_OF_BIRTH', '12/03/1980'));
  assert.ok(!cats('The meeting is on 12/03/1980').some(([c]) => c === 'DATE_OF_BIRTH'), 'a date without birth context is not a DOB');
  assert.ok(has('my passport number is X1234567', 'PASSPORT', 'X1234567'));
  assert.ok(!cats('the code is X1234567').some(([c]) => c === 'PASSPORT'));
  assert.ok(has("driver's license: D1234-5678-90", 'DRIVER_LICENSE', 'D1234-5678-90'));
  assert.ok(has('He lives at 1600 Pennsylvania Avenue, Washington, DC 20500', 'STREET_ADDRESS', '1600 Pennsylvania Avenue, Washington, DC 20500'));
});

test('false-positive guards: versions, order numbers, invalid checksums, dates', () => {
  assert.ok(!cats('upgrade to version 1.2.3.4 today').some(([c]) => c === 'IP_ADDRESS'));
  assert.ok(!cats('released v10.0.0.1').some(([c]) => c === 'IP_ADDRESS'));
  assert.ok(!cats('order number 4111111111111111 shipped').some(([c]) => c === 'CREDIT_CARD'), 'Luhn-valid order number');
  assert.ok(!cats('order 1234567812345678 shipped').some(([c]) => c === 'CREDIT_CARD'), 'Luhn-invalid number');
  assert.ok(!cats('SSN 666-12-3456').some(([c]) => c === 'US_SSN'));
  assert.ok(!cats('IBAN GB82WEST12345698765433').some(([c]) => c === 'IBAN'));
  assert.ok(!cats('on 2024-01-15 we met').some(([c]) => c === 'PHONE'));
  assert.ok(!cats('std::vector<int> a;').some(([c]) => c === 'IP_ADDRESS'));
  assert.ok(!cats('During 1971, the firm grew.').some(([c]) => c === 'STREET_ADDRESS'));
});

test('options: entity selection, threshold, allow-list, deny-list, context words', () => {
  const t = 'write to support@acme.test or jane@example.org';
  assert.equal(detectPii(t, { allowList: ['support@acme.test'] }).length, 1);
  assert.equal(detectPii(t, { allowList: [{ pattern: '[a-z]+@acme\\.test' }] }).length, 1);
  assert.equal(detectPii(t, { entities: ['PHONE'] }).length, 0);
  assert.equal(detectPii(t, { threshold: 1.01 }).length, 0);
  const d = detectPii('project BLUEBIRD and project-x', { denyList: ['bluebird', /project-[a-z]/], denyCategory: 'CODENAME' });
  assert.deepEqual(d.map((f) => f.category), ['CODENAME', 'CODENAME']);
  const base = detectPii('gw 192.168.0.1')[0]?.score ?? 0;
  const boosted = detectPii('gw 192.168.0.1', { contextWords: { IP_ADDRESS: ['gw'] } })[0]?.score ?? 0;
  assert.ok(base > 0);
  assert.ok(boosted > base);
});

test('compileUserPattern rejects dangerous and invalid patterns with a clear error', () => {
  assert.throws(() => compileUserPattern('(a+)+$'), UnsafePatternError);
  assert.throws(() => compileUserPattern('(\\w+\\s?)+$'), /backtrack|unsafe|rewrite/);
  assert.throws(() => compileUserPattern('([a-z'), /not a valid regular expression/);
  assert.throws(() => compileUserPattern('a*'), /empty string/);
  assert.throws(() => compileUserPattern('a'.repeat(600)), /longer than/);
  assert.ok(compileUserPattern('ACME-\\d{6}').global);
});

test('adversarial inputs finish quickly (linear-time patterns)', () => {
  const inputs = [
    'a'.repeat(200_000) + '@',
    '1'.repeat(200_000),
    '1 '.repeat(100_000),
    ('a.' + 'b'.repeat(60) + '@').repeat(3000),
    ':'.repeat(100_000) + 'f'.repeat(100_000),
    '-----'.repeat(40_000),
    ('12 Main ' + 'Street '.repeat(5)).repeat(5000),
    ('0x' + 'a'.repeat(39) + ' ').repeat(5000),
    Array.from({ length: 20000 }, (_, i) => `+1 415 ${200 + (i % 700)} ${String(i).padStart(4, '0')}`).join(' '),
    '1 '.repeat(100_000),
    'GB82 WEST '.repeat(20_000),
  ];
  for (const s of inputs) {
    const t0 = performance.now();
    detectPii(s);
    const ms = performance.now() - t0;
    assert.ok(ms < 2500, `took ${ms.toFixed(0)} ms on ${JSON.stringify(s.slice(0, 20))}…`);
  }
});

test('NER (opt-in) finds a cued person name', () => {
  const t = 'Hello, my name is Maria Lopez and I live in Madrid.';
  const f = detectPii(t, { entities: PII_ENTITIES });
  assert.ok(f.some((x) => x.category === 'PERSON' && t.slice(x.start, x.end) === 'Maria Lopez'), JSON.stringify(f));
});

test('phone: lists of ordinary numbers are not phone numbers without context', () => {
  const phones = (t: string) => detectPii(t).filter((f) => f.category === 'PHONE').map((f) => t.slice(f.start, f.end));
  for (const t of ['In 2024 17 42 people came.', 'Scores: 17 3.5 2024 and 2024 2024 again.', 'release 17 2024 42 notes']) assert.deepEqual(phones(t), [], t);
  // A context word still makes the same shape a phone number; ordinary layouts are unaffected.
  assert.deepEqual(phones('Phone: 2024 17 42'), ['2024 17 42']);
  assert.deepEqual(phones('Call me at 415 555 2671'), ['415 555 2671']);
  assert.deepEqual(phones('my number is 020 7946 0958'), ['020 7946 0958']);
});
