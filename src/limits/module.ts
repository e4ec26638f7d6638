/**
 * The limits gateway module: admission before the upstream call (rate limits, concurrency,
 * token, money and request budgets, size limits) and settlement after it with the provider's usage.
 */
import type { GatewayModule, ModuleFactory } from '../server/modules.js';
import type { RequestContext } from '../server/context.js';
import { approxTokens, createCounterStoreFromConfig, createLimiter, estimateInputTokens, resolveLimitSets, costUsd } from './index.js';
import type { LimitsConfig } from './config.js';
import { isTextField, isTokenArray } from '../guards/inspect.js';
import type { Admission, AdmitRequest, Limiter, Ticket } from './types.js';

/** The limits module, with its limiter for metrics and tests. */
export interface LimitsModule extends GatewayModule {
  limiter: Limiter;
}

/** State the module leaves in ctx.state.limits (read by audit and metrics). */
export interface LimitsState {
  ticket?: Ticket;
  estimatedInputTokens: number;
  /** Decision: admitted, or the refusal code. */
  decision: 'admitted' | string;
  costUsd?: number;
  /** `estimated`: settled on an estimate (no final usage from the upstream; see `done`). */
  settled?: 'settled' | 'estimated' | 'released';
  /** The output tokens charged on an estimate (set with `settled: 'estimated'`). */
  estimatedOutputTokens?: number;
}

/**
 * The texts of message content, a system prompt or an input item: strings, and the text fields of
 * parts and blocks of any type (the guards' rule, `isTextField`: binary data, links and ids left
 * out), so a document's text source or a server tool's result counts at admission too.
 */
function partsText(content: unknown, out: string[], depth = 0): void {
  if (depth > 8) return;
  if (typeof content === 'string') out.push(content);
  else if (Array.isArray(content)) for (const p of content) partsText(p, out, depth + 1);
  else if (content && typeof content === 'object') {
    const o = content as Record<string, unknown>;
    for (const k of Object.keys(o)) if (isTextField(o, k)) partsText(o[k], out, depth + 1);
  }
}

/**
 * The texts of a request that count as input tokens, its message count, and the input already
 * given as token ids (completions `prompt`, embeddings `input`), which count one token per id.
 */
export function requestTexts(body: Record<string, unknown>): { texts: string[]; messages: number; tokenIds: number } {
  const texts: string[] = [];
  let messages = 0;
  let ids = 0;
  // Entries of a prompt or input array: token-id arrays, texts, input items.
  const entries = (v: readonly unknown[]) => {
    for (const x of v) {
      if (isTokenArray(x)) ids += x.length;
      else partsText(x, texts);
    }
  };
  if (Array.isArray(body.messages)) {
    messages = body.messages.length;
    for (const m of body.messages) {
      if (!m || typeof m !== 'object') continue;
      const o = m as Record<string, unknown>;
      partsText(o.content, texts);
      if (Array.isArray(o.tool_calls)) texts.push(JSON.stringify(o.tool_calls));
    }
  }
  partsText(body.system, texts);
  if (typeof body.instructions === 'string') texts.push(body.instructions);
  if (typeof body.prompt === 'string') texts.push(body.prompt);
  else if (isTokenArray(body.prompt)) ids += body.prompt.length;
  else if (Array.isArray(body.prompt)) entries(body.prompt);
  if (typeof body.suffix === 'string') texts.push(body.suffix);
  if (typeof body.input === 'string' || isTokenArray(body.input)) {
    if (typeof body.input === 'string') texts.push(body.input);
    else ids += body.input.length;
    messages = Math.max(messages, 1);
  } else if (Array.isArray(body.input)) {
    // Embeddings input as token-id arrays is one input; input items are messages.
    messages = Math.max(messages, body.input.some(isTokenArray) ? 1 : body.input.length);
    entries(body.input);
  }
  if (Array.isArray(body.tools) && body.tools.length > 0) texts.push(JSON.stringify(body.tools));
  return { texts, messages: Math.max(messages, 1), tokenIds: ids };
}

function requestedOutput(body: Record<string, unknown>): number | undefined {
  for (const k of ['max_completion_tokens', 'max_tokens', 'max_output_tokens']) {
    const v = body[k];
    if (typeof v === 'number' && Number.isFinite(v) && v > 0) return Math.floor(v);
  }
  return undefined;
}

const TOKEN_FIELDS = ['tokensPerMinute', 'dailyTokens', 'monthlyTokens', 'dailyCostUsd', 'monthlyCostUsd', 'maxInputTokens'] as const;

const needsTokensCache = new WeakMap<object, boolean>();
/** True when any scope limits tokens or money (then admission needs a real token count); cached per resolved sets object. */
function needsTokens(sets: ReturnType<typeof resolveLimitSets>): boolean {
  let v = needsTokensCache.get(sets);
  if (v === undefined) needsTokensCache.set(sets, (v = [sets.key, sets.tenant, sets.user].some((s) => s && TOKEN_FIELDS.some((f) => s[f] !== undefined))));
  return v;
}

const OUTPUT_FIELD: Record<string, string> = { chat: 'max_tokens', completions: 'max_tokens', messages: 'max_tokens', responses: 'max_output_tokens' };

/** Builds the limits module from the `limits:` config section. */
function buildModule(config: LimitsConfig, log?: { warn(o: object, m: string): void }): LimitsModule {
  const store = createCounterStoreFromConfig(config);
  const limiter = createLimiter({ config, store, ...(log ? { log } : {}) });

  /** Applies an admission to the request (or throws its refusal). */
  const admitted = (ctx: RequestContext, state: LimitsState, requested: number | undefined, adm: Admission): void => {
    if (!adm.ok) {
      state.decision = adm.error.publicCode;
      throw adm.error;
    }
    state.ticket = adm.ticket;
    const h = adm.headers;
    for (const k in h) ctx.responseHeaders[k] = h[k]!;
    // Enforce the output cap the reservation assumes, so budgets cannot be overrun by a long answer.
    const field = OUTPUT_FIELD[ctx.api];
    if (field && (requested === undefined || requested > adm.ticket.maxOutputTokens)) {
      const usesCompletionField = ctx.api === 'chat' && (ctx.body.max_completion_tokens !== undefined || /^(o\d|gpt-5)/.test(ctx.model!));
      ctx.body = { ...ctx.body, [usesCompletionField ? 'max_completion_tokens' : field]: adm.ticket.maxOutputTokens };
      if (usesCompletionField) delete (ctx.body as Record<string, unknown>).max_tokens;
    }
  };

  // Both steps return no promise when the store answers in this process (memory), so they cost
  // no microtask hop there; with Redis or IPC they return the store's promise.
  const admit = (ctx: RequestContext): void | Promise<void> => {
    const p = ctx.principal;
    if (!p || !ctx.model) return;
    const { texts, messages, tokenIds: ids } = requestTexts(ctx.body);
    const tier = p.tier && config.tiers[p.tier] ? p.tier : undefined;
    const sets = resolveLimitSets(config, tier);
    // The real tokenizer only where a limit counts tokens or money; otherwise a cheap estimate.
    const inputTokens = (needsTokens(sets) ? estimateInputTokens(ctx.model, texts, config) : approxTokens(texts.join('\n'))) + ids;
    const state: LimitsState = { estimatedInputTokens: inputTokens, decision: 'admitted' };
    ctx.state.limits = state;
    const requested = requestedOutput(ctx.body);
    const req: AdmitRequest = { tenantId: p.tenantId, model: ctx.model, inputTokens, messages, limits: sets };
    if (p.keyId) req.keyId = p.keyId;
    if (p.user) req.userId = p.user;
    if (requested !== undefined) req.requestedOutputTokens = requested;
    const adm = limiter.admitNow(req);
    if (adm instanceof Promise) return adm.then((a) => admitted(ctx, state, requested, a));
    admitted(ctx, state, requested, adm);
  };

  const settled = (state: LimitsState, r: { costUsd: number }, estimated: boolean): void => {
    state.costUsd = r.costUsd;
    state.settled = estimated ? 'estimated' : 'settled';
  };

  /** Providers already named in the log for answering without usage (once each per process). */
  const warnedNoUsage = new Set<string>();
  const done = (ctx: RequestContext): void | Promise<void> => {
    const state = ctx.state.limits as LimitsState | undefined;
    const ticket = state?.ticket;
    if (!state || !ticket) return;
    const reachedUpstream = ctx.ttfbMs !== undefined;
    const ok = ctx.status !== undefined && ctx.status < 400;
    // Nothing reached the upstream, or it answered with an error: the reservation goes back.
    if (!reachedUpstream || (!ok && !ctx.aborted)) {
      const r = limiter.releaseNow(ticket);
      state.settled = 'released';
      state.costUsd = ctx.usage && ctx.model ? costUsd(ctx.model, ctx.usage, config) : 0;
      return r;
    }
    // The upstream produced (part of) an answer: it is charged. On the usage it reported when that
    // is final; otherwise on an estimate — the input estimate of the admission and the output the
    // upstream sent, counted (OutputMeter) — so an upstream that reports no usage, or a client that
    // goes away before the usage chunk, does not make the request free.
    let usage = ctx.usage;
    const final = usage !== undefined && (ctx.outputComplete || (ok && !ctx.stream));
    if (!final) {
      const out = ctx.outputMeter?.tokens() ?? 0;
      if (!usage || out > usage.outputTokens) {
        usage = { inputTokens: usage?.inputTokens || state.estimatedInputTokens, outputTokens: Math.max(out, usage?.outputTokens ?? 0), cachedInputTokens: usage?.cachedInputTokens ?? 0 };
        state.estimatedOutputTokens = usage.outputTokens;
        if (!ctx.usage && !ctx.aborted && ctx.provider && !warnedNoUsage.has(ctx.provider.name)) {
          warnedNoUsage.add(ctx.provider.name);
          log?.warn({ provider: ctx.provider.name, model: ctx.model }, 'upstream answered without token usage: limits and budgets are settled on estimates for its requests (audit: limits.settled = estimated)');
        }
      }
    }
    const estimated = state.estimatedOutputTokens !== undefined;
    const r = limiter.settleNow(ticket, usage!);
    if (r instanceof Promise) return r.then((x) => settled(state, x, estimated));
    settled(state, r, estimated);
  };

  return {
    name: 'limits',
    limiter,
    steps: { admit, settle: done },
    async close() {
      await limiter.close();
    },
  };
}

/** Module factory for the composition root. */
export const limitsModule: ModuleFactory = ({ config, logger }) => buildModule(config.limits, logger);
