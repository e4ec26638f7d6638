import { test } from 'node:test';
import assert from 'node:assert/strict';
import { detectSecrets, RULE_COUNT, SECRET_RULES, buildKeywordScanner, isPlaceholder } from './index.js';

// Token-shaped strings are built at run time, never written literally.
const rep = (s: string, n: number) => s.repeat(n);
const alnum = (n: number, seed = 7) => {
  const cs = 'abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ0123456789';
  let x = seed;
  let out = '';
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    out += cs[x % cs.length];
  }
  return out;
};
const hex = (n: number, seed = 3) => alnum(n * 3, seed).replace(/[^a-f0-9]/g, '').padEnd(n, 'a1').slice(0, n);
const b64url = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');

const SAMPLES: Array<[string, string]> = [
  ['aws_access_key_id', 'AK' + 'IA' + 'QWERTYUIOPASDFGH'.replace(/[^A-Z2-7]/g, 'Z').slice(0, 16)],
  ['github_pat', 'gh' + 'p_' + alnum(36)],
  ['github_fine_grained_pat', 'github' + '_pat_' + alnum(22) + '_' + alnum(59, 9)],
  ['gitlab_pat', 'gl' + 'pat-' + alnum(20)],
  ['stripe_secret_key', 'sk' + '_live_' + alnum(24)],
  ['slack_token', 'xo' + 'xb-' + '1234567890-' + alnum(24)],
  ['openai_api_key', 'sk-' + 'proj-' + alnum(40) + 'T3Blbk' + 'FJ' + alnum(40, 11)],
  ['anthropic_api_key', 'sk-' + 'ant-' + 'api03-' + alnum(93) + 'AA'],
  ['huggingface_token', 'hf' + '_' + alnum(60).replace(/[^A-Za-z]/g, '').slice(0, 34)],
  ['groq_api_key', 'gs' + 'k_' + alnum(52)],
  ['replicate_api_token', 'r8' + '_' + alnum(37)],
  ['npm_access_token', 'np' + 'm_' + alnum(36)],
  ['sendgrid_api_key', 'SG' + '.' + alnum(22) + '.' + alnum(43, 5)],
  ['gcp_api_key', 'AI' + 'za' + alnum(35)],
  ['portcullis_api_key', 'pc' + 'l_' + alnum(12) + '_' + alnum(43, 13)],
];

test('has at least 100 rules, unique ids, snake_case categories', () => {
  assert.ok(RULE_COUNT >= 100, String(RULE_COUNT));
  const ids = SECRET_RULES.map((r) => r.id);
  assert.equal(new Set(ids).size, ids.length);
  for (const r of SECRET_RULES) {
    assert.match(r.id, /^[a-z0-9_]+$/);
    assert.ok(r.pattern.global, r.id);
    assert.ok(r.keywords.length > 0, r.id);
  }
});

test('provider tokens are found with the right category, offsets and a non-echoing reason', () => {
  for (const [id, token] of SAMPLES) {
    const text = `config: ${token} # end`;
    const f = detectSecrets(text);
    const hit = f.find((x) => x.category === id);
    assert.ok(hit, `${id} not found; got ${JSON.stringify(f.map((x) => x.category))}`);
    assert.equal(text.slice(hit.start, hit.end), token, id);
    assert.ok(!hit.reason.includes(token));
    assert.ok(hit.severity === 'high' || hit.severity === 'critical');
    assert.equal(hit.detector, `secrets.${id}`);
  }
});

test('private keys, JWTs, connection strings, generic assignments', () => {
  const pem = '-----BEGIN ' + 'RSA PRIVATE KEY-----\n' + alnum(64) + '\n' + alnum(64, 5) + '\n-----END RSA ' + 'PRIVATE KEY-----';
  const f1 = detectSecrets(`key:\n${pem}\nrest`);
  assert.equal(f1[0]?.category, 'private_key');
  assert.equal(f1[0]!.end - f1[0]!.start, pem.length);
  const truncated = '-----BEGIN OPENSSH ' + 'PRIVATE KEY-----\n' + alnum(70);
  assert.equal(detectSecrets(truncated)[0]?.category, 'private_key');
  assert.equal(detectSecrets('-----BEGIN ' + 'PRIVATE KEY-----\n...\n-----END PRIVATE KEY-----').length, 0, 'placeholder body');

  const jwt = b64url({ alg: 'HS256', typ: 'JWT' }) + '.' + b64url({ sub: '123', name: 'x' }) + '.' + alnum(43);
  assert.equal(detectSecrets(`token ${jwt}`)[0]?.category, 'jwt');
  const notJwt = b64url({ typ: 'JWT' }) + '.' + b64url({ sub: '1' }) + '.' + alnum(43);
  assert.ok(!detectSecrets(`x ${notJwt}`).some((f) => f.category === 'jwt'), 'header without alg');

  const pw = 'S3cr' + 'etPw_' + alnum(8);
  const cs = `postgres://app:${pw}@db.internal:5432/app`;
  const f3 = detectSecrets(`DATABASE_URL=${cs}`);
  const c = f3.find((f) => f.category === 'connection_string_password');
  assert.ok(c);
  assert.equal(`DATABASE_URL=${cs}`.slice(c.start, c.end), pw);
  assert.equal(detectSecrets('postgres://app:${DB_PASSWORD}@db:5432/app').length, 0);

  assert.ok(detectSecrets(`password = "${'Tr0ub4dor&' + alnum(6)}"`).some((f) => f.category === 'generic_password'));
  assert.ok(detectSecrets(`api_key: ${alnum(32)}`).some((f) => f.category === 'generic_secret'));
  assert.equal(detectSecrets('password = "changeme"').length, 0);
  assert.equal(detectSecrets('api_key: process.env.API_KEY').length, 0);
  assert.equal(detectSecrets('Please reset your password tomorrow.').length, 0);
});

test('entropy floors and placeholders reject low-entropy fakes', () => {
  assert.equal(isPlaceholder('xxxxxxxxxxxx'), true);
  assert.equal(isPlaceholder('${SECRET}'), true);
  assert.equal(isPlaceholder('aZ3kP9qL2mX7'), false);
  assert.equal(detectSecrets(`aws_secret_access_key = ${rep('A', 40)}`).filter((f) => f.category === 'aws_secret_access_key').length, 0);
});

test('keyword prefilter (Aho-Corasick) finds overlapping keywords case-insensitively', () => {
  const s = buildKeywordScanner(['he', 'she', 'hers', 'his', 'ghp_']);
  assert.deepEqual([...s.scan('uSHErs')].sort(), [0, 1, 2]);
  assert.deepEqual([...s.scan('é GHP_x')], [4]);
  assert.equal(s.scan('nothing').size, 0);
});

test('adversarial inputs finish quickly', () => {
  const inputs = [
    'password=' + rep('a', 300_000),
    rep('-----BEGIN ' + 'PRIVATE KEY-----', 20_000),
    rep('eyJ', 200_000),
    rep('postgres://a:', 50_000),
    rep('secret_key=', 50_000),
    rep('"' + rep('A1', 40), 10_000),
  ];
  for (const s of inputs) {
    const t0 = performance.now();
    detectSecrets(s);
    const ms = performance.now() - t0;
    assert.ok(ms < 2500, `took ${ms.toFixed(0)} ms on ${JSON.stringify(s.slice(0, 20))}…`);
  }
});

test('indented values under an empty password/secret key and 0x-prefixed 256-bit hex keys', () => {
  const ini = '[section]\nsecrets_for_ops =\n    x9' + 'Qz4vB7kLm2\n';
  assert.deepEqual(detectSecrets(ini).map((f) => [f.category, ini.slice(f.start, f.end)]), [['secret_block_value', 'x9' + 'Qz4vB7kLm2']]);
  const yml = 'deploy:\n  password:\n    secure: ' + 'q7Wm2Zr9' + 'Lk4Tp8Vx\n  on:\n    repo: acme/site\n';
  assert.deepEqual(detectSecrets(yml).map((f) => f.category), ['secret_block_value']);
  // Not a block: the value is not indented under the key, or the lines are plain words.
  assert.deepEqual(detectSecrets('password:\n  - admin\n  - user\n'), []);
  const hex = 'c8f12fb8b20008e14b5a5ff4bad15af9' + 'b545d98144da8707892dcc2a2014ba58';
  assert.deepEqual(detectSecrets(`oops, left this here 0x${hex}!`).map((f) => f.category), ['secp256k1_private_key']);
  assert.deepEqual(detectSecrets(`my wallet private key is ${hex}`).map((f) => f.category), ['secp256k1_private_key']);
  // Hashes are not keys.
  assert.deepEqual(detectSecrets(`tx hash 0x${hex}`), []);
  assert.deepEqual(detectSecrets(`sha256: ${hex}`), []);
  assert.deepEqual(detectSecrets(`the file digest is ${hex}`), []);
});
