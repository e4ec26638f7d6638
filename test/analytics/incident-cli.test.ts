/** `portcullis incident …` offline against a data dir (real process). */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import { openDb } from '../../src/store/db.js';
import { createKey, loadPepper } from '../../src/identity/keys.js';

const CLI = ['--import', 'tsx', join(import.meta.dirname, '../../src/cli/index.ts')];

/**
 * A fresh data dir (removed after the file's tests) with its database open, its pepper, and an
 * environment without PORTCULLIS_PEPPER (the CLI then reads the dir's pepper file, as the test does).
 */
async function dataDir(prefix: string) {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const env = { ...process.env } as Record<string, string | undefined>;
  delete env.PORTCULLIS_PEPPER;
  const db = await openDb({ dataDir: dir });
  return { dir, env, db, pepper: loadPepper(dir, env) };
}

/** Runs the CLI on `dir` with `env`. */
const cli = (dir: string, env: Record<string, string | undefined>, timeout: number, ...args: string[]) =>
  spawnSync(process.execPath, [...CLI, ...args, '--data-dir', dir], { encoding: 'utf8', env: env as NodeJS.ProcessEnv, timeout, maxBuffer: 64 * 1024 * 1024 });

test('incident revoke-tenant revokes and reissues; clear-key/suspend-key record reversible actions', async () => {
  const { dir, env, db, pepper } = await dataDir('pcl-incident-');
  const a = await createKey(db.kysely, pepper, { tenant: 'leaky', name: 'svc-a' });
  await createKey(db.kysely, pepper, { tenant: 'leaky', name: 'svc-b' });
  await db.close();
  const run = (...args: string[]) => cli(dir, env, 60_000, ...args);
  const sus = run('incident', 'suspend-key', a.id, '--reason', 'test');
  assert.equal(sus.status, 0, sus.stderr);
  assert.match(sus.stdout, new RegExp(`key ${a.id}: suspend`));
  const clr = run('incident', 'clear-key', a.id, '--json');
  assert.equal(clr.status, 0, clr.stderr);
  assert.equal(JSON.parse(clr.stdout).kind, 'clear');
  const r = run('incident', 'revoke-tenant', 'leaky', '--reason', 'leaked', '--json');
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.equal(out.revoked.length, 2);
  assert.equal(out.reissued.length, 2);
  assert.deepEqual(out.reissued.map((k: { name: string }) => k.name).sort(), ['svc-a', 'svc-b']);
  assert.ok(out.reissued.every((k: { key: string }) => k.key.startsWith('pcl_')));
  assert.equal(out.adminEvents['tenant.revoke_keys'], 1);
  assert.equal(out.adminEvents['analytics.suspend'], 1);
  const txt = run('incident', 'revoke-tenant', 'leaky');
  assert.equal(txt.status, 0, txt.stderr);
  assert.match(txt.stdout, /revoked 2 key\(s\), issued 2 replacement/);
  assert.match(txt.stdout, /New keys \(shown once/);
  const bad = run('incident', 'revoke-tenant', 'nope');
  assert.notEqual(bad.status, 0);
});

test('incident revoke-tenant reissues every key of a tenant with more than 10 000 keys', async () => {
  const { dir: big, env, db, pepper } = await dataDir('pcl-incident-big-');
  const n = 10_010;
  await db.kysely.transaction().execute(async (trx) => {
    for (let i = 0; i < n; i++) await createKey(trx, pepper, { tenant: 'huge', name: `svc-${i}` });
  });
  await db.close();
  const r = cli(big, env, 120_000, 'incident', 'revoke-tenant', 'huge', '--json');
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.equal(out.revoked.length, n);
  assert.equal(out.reissued.length, n, 'one replacement per revoked key, past the first 10 000');
  assert.equal(new Set(out.reissued.map((k: { oldKeyId: string }) => k.oldKeyId)).size, n);
});

test('incident revoke-tenant reports an unreadable audit trail as an error (exit 1), after printing the new keys', async () => {
  const { dir: broken, env, db, pepper } = await dataDir('pcl-incident-broken-');
  await createKey(db.kysely, pepper, { tenant: 'leaky', name: 'svc-a' });
  await sql`DROP TABLE audit_events`.execute(db.kysely); // the store fails the summary's queries
  await db.close();
  const run = (...args: string[]) => cli(broken, env, 60_000, ...args);
  const j = run('incident', 'revoke-tenant', 'leaky', '--json');
  assert.equal(j.status, 1, j.stderr);
  assert.match(j.stderr, /portcullis: incident summary incomplete: the audit trail could not be read: .*audit_events/);
  const out = JSON.parse(j.stdout);
  assert.equal(out.reissued.length, 1, 'the new key is printed all the same');
  assert.equal(out.usage, null);
  assert.match(out.usageError, /audit_events/);
  const txt = run('incident', 'revoke-tenant', 'leaky');
  assert.equal(txt.status, 1);
  assert.match(txt.stdout, /usage: ERROR — the audit trail could not be read/);
  assert.doesNotMatch(txt.stdout, /no audit events/);
});
