/**
 * The limits gateway module: admission before the upstream call (rate limits, concurrency,
 * token, money and request budgets, size limits) and settlement after it with the provider's usage.
 */
import type { GatewayModule, ModuleFactory } from '../server/modules.js';
import type { RequestContext } from '../server/context.js';
import { approxTokens, createCounterStoreFromConfig, createLimiter, estimateInputTokens, resolveLimitSets, costUsd, priceFor } from './index.js';
import type { LimitsConfig } from './config.js';
import { isTextField, isTokenArray } from '../guards/inspect.js';
import type { Admission, AdmitRequest, Limiter, Ticket } from './types.js';
import { GatewayError } from '../errors.js';
import type { PolicyState } from '../policy/module.js';

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
  /**
   * `estimated`: settled on an estimate (no final usage from the upstream, a request the upstream
   * had when the client left or the gateway timed out, a background Responses job; see `done`).
   * `released`: given back (never reached the upstream, an upstream error status, or the client
   * left before the admission completed). Set once: a ticket is never both.
   */
  settled?: 'settled' | 'estimated' | 'released';
  /** The output tokens charged on an estimate (set with `settled: 'estimated'`). */
  estimatedOutputTokens?: number;
}

/**
 * The texts of message content, a system prompt or an input item: strings, and the text fields of
 * parts and blocks of any type (the guards' rule, `isTextField`: binary data, links and ids left
 * out), so a document's text source or a server tool's result counts at admission too.
 */
function partsText(content: unknown, out: string[], media: { tokens: number }, depth = 0): void {
  if (depth > 8) return;
  if (typeof content === 'string') out.push(content);
  else if (Array.isArray(content)) for (const p of content) partsText(p, out, media, depth + 1);
  else if (content && typeof content === 'object') {
    const o = content as Record<string, unknown>;
    media.tokens += imageTokens(o);
    for (const k of Object.keys(o)) if (isTextField(o, k)) partsText(o[k], out, media, depth + 1);
  }
}

/**
 * Input tokens of an image part, estimated without fetching or decoding it: OpenAI's `detail: low`
 * is 85 tokens; any other detail is counted as one 1024×1024 tile set (765 tokens); an Anthropic
 * `image` block as its largest unresized image (about 1 600 tokens). The upstream's reported
 * usage settles the real count.
 */
function imageTokens(o: Record<string, unknown>): number {
  const t = o.type;
  if (t === 'image_url' || t === 'input_image') {
    const detail = t === 'image_url' ? (o.image_url as { detail?: unknown } | undefined)?.detail : o.detail;
    return detail === 'low' ? IMAGE_TOKENS_LOW : IMAGE_TOKENS;
  }
  return t === 'image' ? IMAGE_TOKENS_ANTHROPIC : 0;
}
const IMAGE_TOKENS_LOW = 85;
const IMAGE_TOKENS = 765;
const IMAGE_TOKENS_ANTHROPIC = 1600;

/**
 * The texts of a request that count as input tokens, its message count, and the tokens counted
 * without text (`tokenIds`): input already given as token ids (completions `prompt`, embeddings
 * `input`), one token per id, and the estimated tokens of image parts.
 */
export function requestTexts(body: Record<string, unknown>): { texts: string[]; messages: number; tokenIds: number } {
  const texts: string[] = [];
  let messages = 0;
  let ids = 0;
  const media = { tokens: 0 };
  // Entries of a prompt or input array: token-id arrays, texts, input items.
  const entries = (v: readonly unknown[]) => {
    for (const x of v) {
      if (isTokenArray(x)) ids += x.length;
      else partsText(x, texts, media);
    }
  };
  if (Array.isArray(body.messages)) {
    messages = body.messages.length;
    for (const m of body.messages) {
      if (!m || typeof m !== 'object') continue;
      const o = m as Record<string, unknown>;
      partsText(o.content, texts, media);
      if (Array.isArray(o.tool_calls)) texts.push(JSON.stringify(o.tool_calls));
    }
  }
  partsText(body.system, texts, media);
  if (typeof body.instructions === 'string') texts.push(body.instructions);
  if (typeof body.prompt === 'string') texts.push(body.prompt);
  else if (isTokenArray(body.prompt)) ids += body.prompt.length;
  else if (Array.isArray(body.prompt)) entries(body.prompt);
  else if (body.prompt && typeof body.prompt === 'object') {
    // A Responses prompt template: its variables (texts, or input items such as images) are input.
    const vars = (body.prompt as { variables?: unknown }).variables;
    if (vars && typeof vars === 'object' && !Array.isArray(vars)) for (const v of Object.values(vars)) partsText(v, texts, media);
  }
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
  // Legacy chat `functions`, and structured-output schemas (chat `response_format`, Responses `text.format`): the model reads them as input.
  if (Array.isArray(body.functions) && body.functions.length > 0) texts.push(JSON.stringify(body.functions));
  const rf = body.response_format as { type?: unknown; json_schema?: unknown } | undefined;
  if (rf && typeof rf === 'object' && rf.json_schema !== undefined) texts.push(JSON.stringify(rf.json_schema));
  const tf = (body.text as { format?: { type?: unknown } } | undefined)?.format;
  if (tf && typeof tf === 'object' && tf.type === 'json_schema') texts.push(JSON.stringify(tf));
  return { texts, messages: Math.max(messages, 1), tokenIds: ids + media.tokens };
}

/** The output-cap fields of the request APIs. */
const CAP_FIELDS = ['max_completion_tokens', 'max_tokens', 'max_output_tokens'] as const;
/**
 * The cap fields each API honours (as the policy's `maxOutputOf` reads them). Chat has two, and
 * which one an upstream reads when both are sent differs between servers: the larger counts.
 * A cap in a field the API does not define is not a cap (the upstream ignores it).
 */
const HONOURED_CAP_FIELDS: Partial<Record<string, readonly string[]>> = {
  chat: ['max_completion_tokens', 'max_tokens'],
  completions: ['max_tokens'],
  messages: ['max_tokens'],
  responses: ['max_output_tokens'],
};

/** The output cap the request asks for, in the field(s) its API honours (undefined: none, or not a positive number). */
export function requestedOutput(api: string, body: Record<string, unknown>): number | undefined {
  const fields = HONOURED_CAP_FIELDS[api];
  if (!fields) return undefined;
  let cap: number | undefined;
  for (const k of fields) {
    const v = body[k];
    if (typeof v === 'number' && Number.isFinite(v) && v > 0) cap = Math.max(cap ?? 0, Math.ceil(v));
  }
  return cap;
}

/** Most answers one request may ask for (`n`, `best_of`). */
const MAX_ANSWERS = 128;

/** One answer-count parameter: absent/null is 1, else an integer 1..128 (a 400 naming it otherwise). */
function answerParam(body: Record<string, unknown>, k: 'n' | 'best_of'): number {
  const v = body[k];
  if (v === undefined || v === null) return 1;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > MAX_ANSWERS)
    throw new GatewayError('PCL_INVALID_REQUEST', { message: `Invalid value for '${k}': expected an integer from 1 to ${MAX_ANSWERS}.`, param: k });
  return v;
}

/**
 * Answers the upstream generates for one request, each up to the output cap: chat `n`,
 * completions `max(n, best_of)` (best_of candidates are generated, and billed, server-side).
 */
export function answersOf(api: string, body: Record<string, unknown>): number {
  if (api === 'chat') return answerParam(body, 'n');
  if (api === 'completions') return Math.max(answerParam(body, 'n'), answerParam(body, 'best_of'));
  return 1;
}

/** APIs whose answers have no output tokens: nothing is reserved for output. */
const NO_OUTPUT_APIS = new Set<string>(['embeddings']);

const TOKEN_FIELDS = ['tokensPerMinute', 'dailyTokens', 'monthlyTokens', 'dailyCostUsd', 'monthlyCostUsd', 'maxInputTokens'] as const;

const needsTokensCache = new WeakMap<object, boolean>();
/** True when any scope limits tokens or money (then admission needs a real token count); cached per resolved sets object. */
function needsTokens(sets: ReturnType<typeof resolveLimitSets>): boolean {
  let v = needsTokensCache.get(sets);
  if (v === undefined) needsTokensCache.set(sets, (v = [sets.key, sets.tenant, sets.user].some((s) => s && TOKEN_FIELDS.some((f) => s[f] !== undefined))));
  return v;
}

const OUTPUT_FIELD: Record<string, string> = { chat: 'max_tokens', completions: 'max_tokens', messages: 'max_tokens', responses: 'max_output_tokens' };

/** True for a Responses request the upstream runs after answering the POST (`background: true`). */
function isBackground(ctx: RequestContext): boolean {
  return ctx.api === 'responses' && ctx.body.background === true;
}

/** Builds the limits module from the `limits:` config section. */
function buildModule(config: LimitsConfig, log?: { warn(o: object, m: string): void }): LimitsModule {
  const store = createCounterStoreFromConfig(config);
  const limiter = createLimiter({ config, store, ...(log ? { log } : {}) });

  /** Applies an admission to the request (or throws its refusal). */
  const admitted = (ctx: RequestContext, state: LimitsState, requested: number | undefined, adm: Admission): void | Promise<void> => {
    if (!adm.ok) {
      state.decision = adm.error.publicCode;
      throw adm.error;
    }
    state.ticket = adm.ticket;
    // The client left before the admission completed: its settlement ran at the close, when there
    // was no ticket yet, and would never run again (the lease renewed for good). Released here,
    // and no upstream call is made for it.
    if (ctx.aborted) {
      state.settled = 'released';
      state.costUsd = 0;
      const r = limiter.releaseNow(adm.ticket);
      const gone = () => {
        throw new GatewayError('PCL_CLIENT_CLOSED', { internal: 'client closed the connection before admission completed' });
      };
      if (r instanceof Promise) return r.then(gone);
      return gone();
    }
    const h = adm.headers;
    for (const k in h) ctx.responseHeaders[k] = h[k]!;
    // Enforce the output cap the reservation assumes, so budgets cannot be overrun by a long answer.
    const field = OUTPUT_FIELD[ctx.api];
    if (!field) return;
    const cap = adm.ticket.maxOutputTokens;
    let body = ctx.body;
    const set = (k: string, v: number) => {
      if (body === ctx.body) body = { ...body };
      body[k] = v;
    };
    // Every cap field above the reserved cap is lowered to it, those the API does not define too
    // (an upstream that reads one anyway cannot overrun the reservation).
    for (const k of CAP_FIELDS) {
      const v = body[k];
      if (typeof v === 'number' && v > cap) set(k, cap);
    }
    if (requested === undefined) {
      // No cap in a field the API honours: the reserved one is sent in the field it reads.
      const usesCompletionField = ctx.api === 'chat' && (body.max_completion_tokens !== undefined || /^(o\d|gpt-5)/.test(ctx.upstreamModel ?? ctx.model!));
      set(usesCompletionField ? 'max_completion_tokens' : field, cap);
      if (usesCompletionField && body.max_tokens !== undefined) delete body.max_tokens;
    }
    if (body !== ctx.body) ctx.body = body;
  };

  /**
   * The model a request is priced, tokenized and capped as: the upstream model its route pins (a
   * client must not pick a cheaper name under a glob route), unless the price table does not know
   * that name (a deployment name): then the requested one.
   */
  const billedModel = (requested: string, upstream: string | undefined): string => (upstream && upstream !== requested && priceFor(upstream, config) ? upstream : requested);

  // Both steps return no promise when the store answers in this process (memory), so they cost
  // no microtask hop there; with Redis or IPC they return the store's promise.
  const admit = (ctx: RequestContext): void | Promise<void> => {
    const p = ctx.principal;
    if (!p || !ctx.model) return;
    const answers = answersOf(ctx.api, ctx.body);
    const { texts, messages, tokenIds: ids } = requestTexts(ctx.body);
    const tier = p.tier && config.tiers[p.tier] ? p.tier : undefined;
    const sets = resolveLimitSets(config, tier);
    // The real tokenizer only where a limit counts tokens or money; otherwise a cheap estimate.
    const model = billedModel(ctx.model, ctx.upstreamModel);
    const inputTokens = (needsTokens(sets) ? estimateInputTokens(model, texts, config) : approxTokens(texts.join('\n'))) + ids;
    const state: LimitsState = { estimatedInputTokens: inputTokens, decision: 'admitted' };
    ctx.state.limits = state;
    const noOutput = NO_OUTPUT_APIS.has(ctx.api);
    const requested = noOutput ? undefined : requestedOutput(ctx.api, ctx.body);
    const req: AdmitRequest = { tenantId: p.tenantId, model, inputTokens, messages, limits: sets };
    if (p.keyId) req.keyId = p.keyId;
    if (p.user) req.userId = p.user;
    if (noOutput) req.noOutput = true;
    if (requested !== undefined) req.requestedOutputTokens = requested;
    if (answers > 1) req.outputCount = answers;
    // The policy's output cap (scopes, tiers: the smallest over its layers) bounds the reserved and forwarded cap.
    const policyCap = (ctx.state.policy as Pick<PolicyState, 'maxOutputTokens'> | undefined)?.maxOutputTokens;
    if (typeof policyCap === 'number' && policyCap >= 0) req.outputCapLimit = policyCap;
    const adm = limiter.admitNow(req);
    if (adm instanceof Promise) return adm.then((a) => admitted(ctx, state, requested, a));
    return admitted(ctx, state, requested, adm);
  };

  const settled = (state: LimitsState, r: { costUsd: number }): void => {
    state.costUsd = r.costUsd;
  };

  /** Providers already named in the log for answering without usage (once each per process). */
  const warnedNoUsage = new Set<string>();
  const done = (ctx: RequestContext): void | Promise<void> => {
    const state = ctx.state.limits as LimitsState | undefined;
    const ticket = state?.ticket;
    // No ticket yet (a client that left before its admission completed: the admission releases
    // it), or already settled or released: nothing to do, so no ticket is both.
    if (!state || !ticket || state.settled) return;
    const answered = ctx.ttfbMs !== undefined;
    const sent = answered || ctx.upstreamSent === true;
    const ok = ctx.status !== undefined && ctx.status < 400;
    const internal = (ctx.state.error as { internal?: { upstreamStatus?: unknown; code?: unknown } } | undefined)?.internal;
    // A timeout that is no wait on a request the upstream has: its own error status (504), or no connection made.
    const notWorking = (typeof internal?.upstreamStatus === 'number' && internal.upstreamStatus >= 400) || internal?.code === 'UND_ERR_CONNECT_TIMEOUT';
    // The request was sent and the upstream may be working on it (billed), though no answer came:
    // the client left, or the gateway gave up waiting (its timeout, not an upstream error status).
    const unanswered = sent && !ok && (ctx.aborted === true || (ctx.errorCode === 'upstream_timeout' && !notWorking));
    // Nothing reached the upstream, or it answered with an error (or was unreachable): the reservation goes back.
    if (!sent || (!ok && !unanswered)) {
      state.settled = 'released';
      const r = limiter.releaseNow(ticket);
      state.costUsd = ctx.usage ? costUsd(ticket.model, ctx.usage, config) : 0;
      return r;
    }
    // The upstream produced (part of) an answer, or was left working on the request: it is charged.
    // On the usage it reported when that is final; otherwise on an estimate — the input estimate of
    // the admission and the output the upstream sent, counted (OutputMeter) — so an upstream that
    // reports no usage, or a client that goes away before the usage chunk (or before any answer),
    // does not make the request free.
    let usage = ctx.usage;
    const final = usage !== undefined && !ctx.usageEstimated && (ctx.outputComplete || (ok && !ctx.stream));
    if (!final) {
      let out = ctx.outputMeter?.tokens() ?? 0;
      // A background response is generated after the POST answered (queued, no usage): the whole
      // reserved output stays charged, as the work the upstream goes on to do may reach it.
      if (isBackground(ctx)) out = Math.max(out, ticket.maxOutputTokens * ticket.outputCount);
      if (!usage || out > usage.outputTokens || ctx.usageEstimated) {
        // What the usage reported is kept (cache reads and writes priced at their rates).
        usage = { ...usage, inputTokens: usage?.inputTokens || state.estimatedInputTokens, outputTokens: Math.max(out, usage?.outputTokens ?? 0), cachedInputTokens: usage?.cachedInputTokens ?? 0 };
        state.estimatedOutputTokens = usage.outputTokens;
        if (!ctx.usage && ok && !ctx.aborted && !isBackground(ctx) && ctx.provider && !warnedNoUsage.has(ctx.provider.name)) {
          warnedNoUsage.add(ctx.provider.name);
          log?.warn({ provider: ctx.provider.name, model: ctx.model }, 'upstream answered without token usage: limits and budgets are settled on estimates for its requests (audit: limits.settled = estimated)');
        }
      }
    }
    state.settled = state.estimatedOutputTokens !== undefined ? 'estimated' : 'settled';
    const r = limiter.settleNow(ticket, usage!);
    if (r instanceof Promise) return r.then((x) => settled(state, x));
    settled(state, r);
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
