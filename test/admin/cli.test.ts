/**
 * The CLI for tenants, keys, admin keys and policy: offline against the data dir and with --url
 * against a running gateway (commander in-process; one real process for the bin's --json contract).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { Command } from 'commander';
import { registerKeysCommand } from '../../src/cli/keys.js';
import { registerPolicyCommand } from '../../src/cli/policy.js';
import { registerTenantsCommand } from '../../src/cli/tenants.js';
import { chat, dropStore, newStore, startInstance, type Instance, type StoreSpec } from '../identity/util.js';

let store: StoreSpec;
let gw: Instance;

/** Runs the CLI in-process; returns stdout and the exit code it set. */
async function cli(...args: string[]): Promise<{ out: string; code: number }> {
  const program = new Command().exitOverride();
  registerKeysCommand(program);
  registerTenantsCommand(program);
  registerPolicyCommand(program);
  let out = '';
  const write = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((chunk: string | Uint8Array) => {
    out += String(chunk);
    return true;
  }) as typeof process.stdout.write;
  process.exitCode = 0;
  try {
    await program.parseAsync(['node', 'portcullis', ...args]);
  } finally {
    process.stdout.write = write;
  }
  const code = Number(process.exitCode ?? 0);
  process.exitCode = 0;
  return { out, code };
}

const off = () => ['--data-dir', store.dataDir];

before(async () => {
  store = newStore('sqlite');
});
after(async () => {
  await gw?.close();
  await dropStore(store);
});

test('offline: admin-keys, tenants, keys; online: rotate/revoke with --url; policy check explains', async () => {
  const owner = JSON.parse((await cli('admin-keys', 'create', '--role', 'owner', '--name', 'root', '--json', ...off())).out);
  assert.match(owner.key, /^pcla_/);
  assert.equal(owner.role, 'owner');

  const created = JSON.parse((await cli('keys', 'create', '--tenant', 'acme', '--name', 'svc', '--json', ...off())).out);
  assert.deepEqual(Object.keys(created).sort(), ['id', 'key', 'tenant'], 'the --json contract of keys create is unchanged');
  const narrow = JSON.parse((await cli('keys', 'create', '--tenant', 'acme', '--name', 'emb-only', '--scopes', '{"operations":["embeddings"]}', '--json', ...off())).out);

  const tenants = JSON.parse((await cli('tenants', 'list', '--json', ...off())).out);
  assert.deepEqual(tenants.data.map((t: any) => t.name), ['acme']);
  const human = (await cli('keys', 'list', ...off())).out;
  assert.match(human, /^ID\s+TENANT\s+NAME\s+STATUS/m);
  assert.match(human, new RegExp(`${created.id}\\s+acme\\s+svc\\s+active`));
  const shown = (await cli('keys', 'show', created.id, ...off())).out;
  assert.match(shown, /status\s+active/);
  assert.doesNotMatch(shown, /pcl_[A-Za-z0-9]{12}_/, 'show never prints a secret');

  const allow = await cli('policy', 'check', '--key-id', created.id, '--operation', 'chat', '--model', 'demo', ...off());
  assert.equal(allow.code, 0);
  assert.match(allow.out, /^ALLOW/);
  const deny = await cli('policy', 'check', '--key-id', narrow.id, '--operation', 'chat', '--model', 'demo', ...off());
  assert.equal(deny.code, 1);
  assert.match(deny.out, /^DENY[\s\S]*reason: operation_not_allowed\s+layer: key/);

  // A gateway on the same data dir (same pepper file) accepts the offline key.
  gw = await startInstance(store, {}, {});
  assert.equal((await chat(gw.url, created.key)).status, 200);
  const online = ['--url', gw.url, '--admin-key', owner.key];
  const rotated = JSON.parse((await cli('keys', 'rotate', created.id, '--grace', '0', '--json', ...online)).out);
  assert.equal(rotated.previous, created.id);
  assert.equal((await chat(gw.url, created.key)).status, 401);
  assert.equal((await chat(gw.url, rotated.key)).status, 200);
  await cli('keys', 'revoke', rotated.id, '--reason', 'test', ...online);
  assert.equal((await chat(gw.url, rotated.key)).status, 401);
  const revoked = (await cli('tenants', 'revoke-keys', 'acme', ...online)).out;
  assert.match(revoked, /Revoked 2 key\(s\) of tenant "acme"/, "the emb-only key and the rotated one");

  const events = JSON.parse((await cli('keys', 'events', '--json', '--limit', '100', ...off())).out);
  const by = (a: string) => events.data.find((e: any) => e.action === a);
  assert.equal(by('key.revoke').actor, owner.id);
  assert.equal(by('key.revoke').source, '127.0.0.1');
  assert.match(by('admin_key.create').source, /^cli:/);
});

test('the real bin: keys create --json prints exactly {id,key,tenant}; errors exit 2 cleanly', () => {
  const CLI = ['--import', 'tsx', join(import.meta.dirname, '../../src/cli/index.ts')];
  const r = spawnSync(process.execPath, [...CLI, 'keys', 'create', '--tenant', 'bin', '--name', 'x', '--json', '--data-dir', store.dataDir], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(Object.keys(JSON.parse(r.stdout)).sort(), ['id', 'key', 'tenant']);
  const bad = spawnSync(process.execPath, [...CLI, 'keys', 'revoke', 'nonexistent00', '--data-dir', store.dataDir], { encoding: 'utf8' });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /^portcullis: 404: key "nonexistent00" not found/);
});
