/** Money: price lookup per model glob and the cost of one request's usage. */
import { DEFAULT_PRICING, type LimitsConfig, type ModelPrice } from './config.js';
import { globTable, type GlobTable } from './glob.js';
import type { Usage } from './types.js';

const tables = new WeakMap<object, GlobTable<ModelPrice>>();

/** The price of a model under this config (config entries over shipped defaults), or undefined if unpriced. */
export function priceFor(model: string, config: LimitsConfig): ModelPrice | undefined {
  let t = tables.get(config.pricing);
  if (!t) {
    t = globTable({ ...DEFAULT_PRICING, ...config.pricing });
    tables.set(config.pricing, t);
  }
  return t.get(model);
}

/** Nano-dollars (1e-9 USD): integer unit used by budget counters so sums stay exact. */
export const NANO_PER_USD = 1e9;

/** Cost of usage in nano-dollars (integer, rounded up). Unpriced models cost 0. */
export function costNanoUsd(model: string, usage: Usage, config: LimitsConfig): number {
  return usageNanoCost(priceFor(model, config), usage);
}

/** costNanoUsd for an already looked-up price and a whole usage (cache reads and writes included). */
export function usageNanoCost(p: ModelPrice | undefined, usage: Usage): number {
  return nanoCost(p, usage.inputTokens, usage.outputTokens, usage.cachedInputTokens ?? 0, usage.cacheWriteInputTokens ?? 0, usage.cacheWrite1hInputTokens ?? 0);
}

/**
 * costNanoUsd for an already looked-up price (undefined = unpriced, costs 0). Of `inputTokens`,
 * `cachedInputTokens` were read from the prompt cache and `cacheWriteInputTokens` written to it
 * (`cacheWrite1hInputTokens` of those for an hour); the rest is billed at the input price.
 */
export function nanoCost(p: ModelPrice | undefined, inputTokens: number, outputTokens: number, cachedInputTokens = 0, cacheWriteInputTokens = 0, cacheWrite1hInputTokens = 0): number {
  if (!p) return 0;
  const input = Math.max(0, inputTokens);
  const cached = Math.min(Math.max(0, cachedInputTokens), input);
  const written = Math.min(Math.max(0, cacheWriteInputTokens), input - cached);
  const written1h = Math.min(Math.max(0, cacheWrite1hInputTokens), written);
  const fresh = input - cached - written;
  const write5m = p.cacheWritePerMTok ?? p.inputPerMTok;
  // price per MTok in USD == price per token in micro-USD == 1000 × nano-USD per token
  const nano =
    1000 *
    (fresh * p.inputPerMTok +
      cached * (p.cachedInputPerMTok ?? p.inputPerMTok) +
      (written - written1h) * write5m +
      written1h * (p.cacheWrite1hPerMTok ?? write5m) +
      Math.max(0, outputTokens) * p.outputPerMTok);
  return Math.ceil(nano - 1e-6);
}

/** Cost of usage in US dollars. `cachedInputTokens` is the part of `inputTokens` billed at the cached rate. */
export function costUsd(model: string, usage: Usage, config: LimitsConfig): number {
  return costNanoUsd(model, usage, config) / NANO_PER_USD;
}
