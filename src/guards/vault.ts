/**
 * The pseudonym vault: consistent placeholders (`<PERSON_1>`) per request or per conversation,
 * scoped to the tenant, expiring after `ttlMs` without use (in-memory LRU + TTL). A Redis-backed
 * variant for multi-instance deployments is future work: until then, a conversation that moves
 * between gateway instances gets fresh placeholders (values are still never sent upstream).
 */
import { LRUCache } from 'lru-cache';
import { surrogate } from '../detect/redact.js';

/** Options of the vault. */
export interface VaultOptions {
  ttlMs: number;
  maxConversations: number;
  /** Placeholders per conversation at most (beyond it, values are redacted instead). */
  maxEntries: number;
}

/** One conversation's (or one request's) placeholder table. */
export interface VaultSession {
  /** The placeholder for `value` (the same value always gets the same placeholder); null when the session is full. */
  placeholder(value: string, category: string, style?: 'tag' | 'surrogate'): string | null;
  /** Placeholder → real value, for restoration. */
  readonly mapping: ReadonlyMap<string, string>;
}

/** One stored placeholder: what it stands for. */
export interface VaultEntry {
  placeholder: string;
  style: 'tag' | 'surrogate';
  category: string;
  value: string;
}

/** A session's table (exported for the Redis variant). */
export class Session implements VaultSession {
  readonly mapping = new Map<string, string>();
  /** Entries added since the last commit (persisted by the Redis variant). */
  pending: VaultEntry[] = [];
  private readonly byValue = new Map<string, string>();
  private readonly counts = new Map<string, number>();
  constructor(private readonly max: number, private readonly seed: string) {}
  placeholder(value: string, category: string, style: 'tag' | 'surrogate' = 'tag'): string | null {
    const k = `${style}\0${category}\0${value}`;
    const hit = this.byValue.get(k);
    if (hit) return hit;
    if (this.mapping.size >= this.max) return null;
    const cat = category.toUpperCase().replace(/[^A-Z0-9]+/g, '_');
    let p: string;
    if (style === 'surrogate') {
      p = surrogate(value, category, this.seed);
      for (let i = 1; this.mapping.has(p) || p === value; i++) p = surrogate(value, category, `${this.seed}:${i}`);
    } else {
      let n = (this.counts.get(cat) ?? 0) + 1;
      while (this.mapping.has(`<${cat}_${n}>`)) n++;
      this.counts.set(cat, n);
      p = `<${cat}_${n}>`;
    }
    this.byValue.set(k, p);
    this.mapping.set(p, value);
    this.pending.push({ placeholder: p, style, category, value });
    return p;
  }
  /** Adds entries loaded from a shared store; entries whose placeholder is taken locally are skipped. */
  merge(entries: readonly VaultEntry[]): void {
    for (const e of entries) {
      if (this.mapping.has(e.placeholder)) continue;
      const k = `${e.style}\0${e.category}\0${e.value}`;
      if (this.byValue.has(k)) continue;
      this.byValue.set(k, e.placeholder);
      this.mapping.set(e.placeholder, e.value);
      const m = /^<([A-Z0-9_]+)_(\d+)>$/.exec(e.placeholder);
      if (m) this.counts.set(m[1]!, Math.max(this.counts.get(m[1]!) ?? 0, Number(m[2])));
    }
  }
}

/** Pseudonym sessions keyed by tenant and conversation. */
export interface PseudonymVault {
  /** The session of a conversation (kept, tenant-scoped), or a fresh per-request session when `conversationId` is absent. */
  session(tenant: string, conversationId?: string): VaultSession;
  /** The placeholder table of an existing conversation (not created, not refreshed), if any. */
  peek(tenant: string, conversationId: string): ReadonlyMap<string, string> | undefined;
  /** Shared-store variants: loads a conversation before the guards run. */
  prepare?(tenant: string, conversationId: string): Promise<void>;
  /** Shared-store variants: persists the entries a run added. */
  commit?(tenant: string, conversationId: string): Promise<void>;
  /** Number of live conversations (in this process). */
  readonly size: number;
  clear(): void;
  close?(): Promise<void>;
}

/** Creates an in-memory vault (LRU + TTL). */
export function createVault(opts: VaultOptions): PseudonymVault {
  const cache = new LRUCache<string, Session>({ max: opts.maxConversations, ttl: opts.ttlMs, updateAgeOnGet: true });
  return {
    session(tenant, conversationId) {
      const seed = `${tenant}\0${conversationId ?? ''}\0${Math.random()}`;
      if (!conversationId) return new Session(opts.maxEntries, seed);
      const key = `${tenant}\0${conversationId}`;
      let s = cache.get(key);
      if (!s) {
        s = new Session(opts.maxEntries, seed);
        cache.set(key, s);
      }
      return s;
    },
    peek(tenant, conversationId) {
      return cache.peek(`${tenant}\0${conversationId}`)?.mapping;
    },
    get size() {
      return cache.size;
    },
    clear() {
      cache.clear();
    },
  };
}
