/** `portcullis incident …` offline against a data dir (real process). */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDb } from '../../src/store/db.js';
import { createKey, loadPepper } from '../../src/identity/keys.js';

const CLI = ['--import', 'tsx', join(import.meta.dirname, '../../src/cli/index.ts')];
const dir = mkdtempSync(join(tmpdir(), 'pcl-incident-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('incident revoke-tenant revokes and reissues; clear-key/suspend-key record reversible actions', async () => {
  const env = { ...process.env, PORTCULLIS_PEPPER: undefined } as Record<string, string | undefined>;
  delete env.PORTCULLIS_PEPPER;
  const db = await openDb({ dataDir: dir });
  const pepper = loadPepper(dir, env);
  const a = await createKey(db.kysely, pepper, { tenant: 'leaky', name: 'svc-a' });
  await createKey(db.kysely, pepper, { tenant: 'leaky', name: 'svc-b' });
  await db.close();
  const run = (...args: string[]) => spawnSync(process.execPath, [...CLI, ...args, '--data-dir', dir], { encoding: 'utf8', env: env as NodeJS.ProcessEnv, timeout: 60_000 });
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
