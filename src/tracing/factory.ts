/**
 * The factory of the `tracing` module listed in the composition root. The module itself
 * (./module.ts: @opentelemetry/api and the built-in tracer provider) is imported only when
 * `tracing.enabled` is true; disabled, the module is the same empty one ./module.ts returns.
 */
import type { ModuleFactory } from '../server/modules.js';
import type { TracingConfig } from './config.js';

/** Module factory; list it last so its `settle` span covers the other modules' settlement. */
export const tracingModule: ModuleFactory = async (mctx) => {
  if (!(mctx.config as { tracing?: TracingConfig }).tracing?.enabled) return { name: 'tracing' };
  return (await import('./module.js')).tracingModule(mctx);
};
