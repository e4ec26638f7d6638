/**
 * Per-request cost of identify + authorize with a warm key cache on the embedded default
 * (SQLite): API-key parse, cached lookup, HMAC-SHA256 verify, principal, layered scope checks.
 * Target ≤ 20 µs. Run directly: `node --import tsx bench/identity.ts`.
 */
import { mkdtempSync, rmSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { openDb } from '../src/store/db.js';
import { createKey } from '../src/identity/keys.js';
import { createIdentity } from '../src/identity/service.js';
import { createPolicyEngine } from '../src/policy/engine.js';
import { policyConfigSchema, tiersConfigSchema } from '../src/policy/config.js';

/** Runs the benchmark; returns the measured numbers. */
export async function run(opts: { iterations?: number } = {}): Promise<object> {
  const iterations = opts.iterations ?? 100_000;
  const dir = mkdtempSync(join(tmpdir(), 'pcl-bench-id-'));
  const db = await openDb({ dataDir: dir });
  try {
    const pepper = Buffer.alloc(32, 7);
    const k = await createKey(db.kysely, pepper, {
      tenant: 'bench',
      name: 'svc',
      tier: 'standard',
      scopes: { models: { allow: ['gpt-4o*', 'demo*'], deny: ['*-preview'] }, operations: ['chat', 'embeddings'], tools: ['search_*', 'get_weather'], maxOutputTokens: 4096 },
    });
    const identity = createIdentity({ db, pepper });
    const engine = createPolicyEngine({
      tiers: tiersConfigSchema.parse({ standard: { models: { deny: ['o1*'] }, maxOutputTokens: 8192 } }),
      policy: policyConfigSchema.parse({ defaults: { models: { deny: ['forbidden-*'] } }, dataBoundaries: [{ model: 'gpt-*', label: 'external' }] }),
    });
    const req = { operation: 'chat', model: 'gpt-4o-mini', tools: ['search_web'], maxOutputTokens: 1000 };
    const once = async () => {
      const r = await identity.authenticate(k.key, { ip: '10.0.0.1' });
      if (!r.ok) throw new Error('bench key refused');
      const d = engine.authorize(r.principal, req);
      if (!d.allow) throw new Error('bench request denied');
    };
    for (let i = 0; i < 5_000; i++) await once(); // warm cache and JIT
    const samples: number[] = [];
    const t0 = performance.now();
    for (let i = 0; i < iterations; i++) {
      if (i % 100 === 0) {
        const s = performance.now();
        await once();
        samples.push((performance.now() - s) * 1000);
      } else await once();
    }
    const totalMs = performance.now() - t0;
    samples.sort((a, b) => a - b);
    const pct = (p: number) => Math.round(samples[Math.min(samples.length - 1, Math.floor(p * samples.length))]! * 100) / 100;
    let authOnly = performance.now();
    for (let i = 0; i < 20_000; i++) await identity.authenticate(k.key, { ip: '10.0.0.1' });
    authOnly = ((performance.now() - authOnly) * 1000) / 20_000;
    const result = {
      benchmark: 'identify+authorize (warm cache, SQLite)',
      iterations,
      meanUs: Math.round(((totalMs * 1000) / iterations) * 100) / 100,
      p50Us: pct(0.5),
      p99Us: pct(0.99),
      identifyOnlyMeanUs: Math.round(authOnly * 100) / 100,
      targetUs: 20,
      pass: (totalMs * 1000) / iterations <= 20,
    };
    await identity.close();
    return result;
  } finally {
    await db.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const r = await run();
  console.table([r]);
  const out = join(import.meta.dirname, 'results');
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'identity.json'), JSON.stringify({ ...r, at: new Date().toISOString(), node: process.version }, null, 2) + '\n');
}
