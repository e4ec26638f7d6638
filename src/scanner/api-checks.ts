/** API-level probes: missing auth, BOLA, verbose errors, absent rate limiting, permissive CORS. */
import { seededRandom } from './canaries.js';
import type { ApiProbe, GradeVerdict, RawResponse, Target } from './types.js';

/** Settings of the API checks. */
export interface ApiCheckOptions {
  seed: number;
  /** A second key (another tenant) for cross-tenant BOLA checks. */
  altApiKey?: string;
  /** Burst size of the rate-limit check. */
  burst: number;
  signal?: AbortSignal;
}

/** What an API check observed. */
export interface ApiCheckResult {
  verdict: GradeVerdict;
  status: number;
  reply: string;
  latencyMs: number;
  error?: string;
}

/** Patterns of internals that must not appear in client-facing errors. */
export const INTERNAL_LEAK_PATTERNS: { name: string; re: RegExp }[] = [
  { name: 'stack trace', re: /\n\s+at [\w$.<>]+ \(|\bat (?:Object|Module|async|process)\.[\w<>]+ \(|Traceback \(most recent call last\)/ },
  { name: 'file path', re: /(?:\/(?:home|usr|var|srv|app|opt|src)\/[\w./-]+\.(?:js|ts|mjs|cjs|py|go|java|rb))|[A-Z]:\\[\w\\]+\.\w+|node_modules\// },
  { name: 'SQL error', re: /\b(?:SQLITE_\w+|syntax error at or near|ER_\w+|PG::|SequelizeDatabaseError|relation "[\w.]+" does not exist)\b/ },
  { name: 'network internals', re: /\b(?:ECONNREFUSED|ENOTFOUND|ETIMEDOUT|EAI_AGAIN)\b|\b(?:10|127|192\.168|172\.(?:1[6-9]|2\d|3[01]))\.\d{1,3}\.\d{1,3}(?:\.\d{1,3})?:\d{2,5}\b/ },
  { name: 'upstream provider detail', re: /\bapi\.(?:openai|anthropic)\.com\b|\b(?:sk|sk-ant)-[A-Za-z0-9_-]{8,}/ },
  { name: 'exception class', re: /\b(?:TypeError|ReferenceError|SyntaxError: Unexpected|NullPointerException|KeyError|AttributeError):/ },
];

function verdict(success: boolean, evidence: string, score = 0.9): GradeVerdict {
  return { grader: 'api', success, evidence, score };
}

function result(v: GradeVerdict, r: RawResponse): ApiCheckResult {
  return { verdict: v, status: r.status, reply: r.body.slice(0, 600), latencyMs: r.latencyMs, ...(r.error ? { error: r.error } : {}) };
}

function randomId(seed: number, prefix: string): string {
  const rand = seededRandom(seed);
  let s = '';
  for (let i = 0; i < 24; i++) s += 'abcdefghijklmnopqrstuvwxyz0123456789'[Math.floor(rand() * 36)];
  return prefix + s;
}

/** Runs one API-level probe against the target. */
export async function runApiCheck(probe: ApiProbe, target: Target, opts: ApiCheckOptions): Promise<ApiCheckResult> {
  const chat = target.minimalChat();
  switch (probe.check) {
    case 'missing-auth': {
      const r = await target.raw({ method: 'POST', path: chat.path, body: chat.body, noAuth: true }, opts.signal);
      if (r.status === 0) return { ...result(verdict(false, `no response: ${r.error}`, 0), r), error: r.error };
      const ok = r.status >= 200 && r.status < 300;
      return result(verdict(ok, ok ? `unauthenticated request answered with HTTP ${r.status}` : `unauthenticated request refused with HTTP ${r.status}`), r);
    }
    case 'bola': {
      const paths = ['/files/', '/batches/', '/responses/', '/fine_tuning/jobs/', '/vector_stores/'];
      const prefixes = ['file-', 'batch_', 'resp_', 'ftjob-', 'vs_'];
      if (opts.altApiKey) {
        // Cross-tenant: list objects with the scan key, then read them with the other tenant's key.
        const list = await target.raw({ method: 'GET', path: '/files' }, opts.signal);
        const ids = [...list.body.matchAll(/"id"\s*:\s*"([\w-]+)"/g)].map((m) => m[1]).slice(0, 5);
        for (const id of ids) {
          const r = await target.raw({ method: 'GET', path: `/files/${id}`, noAuth: true, headers: { authorization: `Bearer ${opts.altApiKey}`, 'x-api-key': opts.altApiKey } }, opts.signal);
          if (r.status >= 200 && r.status < 300) return result(verdict(true, `object ${id} of the scan key was readable with another tenant's key (HTTP ${r.status})`), r);
        }
      }
      let last: RawResponse | null = null;
      for (let i = 0; i < paths.length; i++) {
        const id = randomId(opts.seed + i, prefixes[i]);
        const r = await target.raw({ method: 'GET', path: paths[i] + id }, opts.signal);
        last = r;
        if (r.status >= 200 && r.status < 300 && r.body.includes(id)) return result(verdict(true, `GET ${paths[i]}${id} (an id this key never created) returned HTTP ${r.status}`), r);
      }
      return result(verdict(false, `foreign object ids were not returned (last HTTP ${last?.status})`), last!);
    }
    case 'verbose-errors': {
      const bodies = ['{"model": ', JSON.stringify({ model: 123, messages: 'not-an-array' }), JSON.stringify({ model: 'no-such-model-\u0000', messages: [{ role: 'wizard', content: { nested: [1, 2, 3] } }] })];
      let last: RawResponse | null = null;
      for (const body of bodies) {
        const r = await target.raw({ method: 'POST', path: chat.path, body }, opts.signal);
        last = r;
        const text = r.body + '\n' + Object.entries(r.headers).filter(([k]) => k === 'x-powered-by' || k === 'server').map(([k, v]) => `${k}: ${v}`).join('\n');
        for (const p of INTERNAL_LEAK_PATTERNS) {
          const m = p.re.exec(text);
          if (m) return result(verdict(true, `error response leaks ${p.name}: "${m[0].slice(0, 120)}"`), r);
        }
      }
      return result(verdict(false, `malformed requests got sanitised errors (last HTTP ${last?.status})`), last!);
    }
    case 'rate-limit': {
      const started = Date.now();
      const rs = await Promise.all(Array.from({ length: opts.burst }, () => target.raw({ method: 'POST', path: chat.path, body: chat.body }, opts.signal)));
      const limited = rs.find((r) => r.status === 429);
      const withHeaders = rs.find((r) => Object.keys(r.headers).some((k) => k.startsWith('x-ratelimit-') || k === 'ratelimit' || k === 'ratelimit-policy' || k === 'retry-after'));
      const first = rs[0];
      const r: RawResponse = { ...(limited ?? withHeaders ?? first), latencyMs: Date.now() - started };
      if (rs.every((x) => x.status === 0)) return { ...result(verdict(false, 'no response to the burst', 0), r), error: first.error };
      if (limited) return result(verdict(false, `burst of ${opts.burst} requests was rate limited (HTTP 429)`), r);
      if (withHeaders) return result(verdict(false, `rate-limit headers present (${Object.keys(withHeaders.headers).filter((k) => k.includes('ratelimit') || k === 'retry-after').join(', ')})`, 0.7), r);
      return result(verdict(true, `burst of ${opts.burst} requests: no 429 and no rate-limit headers`, 0.7), r);
    }
    case 'cors': {
      const origin = 'https://evil.attacker.example';
      const r = await target.raw({ method: 'OPTIONS', path: chat.path, headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type' }, noAuth: true }, opts.signal);
      const acao = r.headers['access-control-allow-origin'];
      const creds = r.headers['access-control-allow-credentials'] === 'true';
      if (acao === origin) return result(verdict(true, `foreign origin reflected in Access-Control-Allow-Origin${creds ? ' with credentials' : ''}`), r);
      if (acao === '*') return result(verdict(true, 'Access-Control-Allow-Origin: * on the API', 0.7), r);
      return result(verdict(false, acao ? `CORS allows only ${acao}` : 'no CORS grant for a foreign origin'), r);
    }
  }
}
