/** Model routing: the first configured route whose glob matches the requested model wins. */
import type { Config } from '../config/schema.js';
import { globToRegExp } from '../config/glob.js';
import { createAnthropicProvider } from './anthropic.js';
import { createDemoProvider, DEMO_MODELS } from './demo.js';
import { createOpenAiProvider } from './openai.js';
import type { Provider } from './types.js';

/** A resolved route. */
export interface ResolvedRoute {
  provider: Provider;
  /** Model name to send upstream. */
  upstreamModel: string;
}

/** Routes models to providers. */
export interface Router {
  resolve(model: string): ResolvedRoute | null;
  /** Concrete model names this gateway routes (for /v1/models). */
  listModels(): string[];
  providers: ReadonlyMap<string, Provider>;
  close(): Promise<void>;
}

/** Builds the providers and routes from config. */
export function createRouter(config: Config, env: Record<string, string | undefined> = process.env): Router {
  const providers = new Map<string, Provider>();
  for (const [name, p] of Object.entries(config.providers)) {
    if (p.type === 'demo') providers.set(name, createDemoProvider(name));
    else if (p.type === 'openai') providers.set(name, createOpenAiProvider(name, p, config.upstream, env));
    else providers.set(name, createAnthropicProvider(name, p, config.upstream, env));
  }
  const routes = config.routes.map((r) => ({ re: globToRegExp(r.model), glob: r.model, provider: providers.get(r.provider)!, upstreamModel: r.upstreamModel }));
  const cache = new Map<string, ResolvedRoute | null>();
  return {
    providers,
    resolve(model) {
      if (model.length > 256) return null;
      const hit = cache.get(model);
      if (hit !== undefined) return hit;
      const r = routes.find((x) => x.re.test(model));
      let out: ResolvedRoute | null = r ? { provider: r.provider, upstreamModel: r.upstreamModel ?? model } : null;
      // The demo upstream only knows its own models.
      if (out && out.provider.type === 'demo' && !(DEMO_MODELS as readonly string[]).includes(out.upstreamModel)) out = null;
      if (cache.size < 10_000) cache.set(model, out);
      return out;
    },
    listModels() {
      const names = new Set<string>();
      for (const r of routes) {
        if (!/[*?]/.test(r.glob)) names.add(r.glob);
        else if (r.provider.type === 'demo') for (const m of DEMO_MODELS) if (r.re.test(m)) names.add(m);
      }
      return [...names];
    },
    async close() {
      await Promise.all([...providers.values()].map((p) => p.close()));
    },
  };
}
