/** The `identity` gateway module: starts key-change propagation and last-used flushing, and stops them. */
import type { ModuleFactory } from '../server/modules.js';

/** Creates the identity module (the Identity itself is built by the composition root). */
export const identityModule: ModuleFactory = async ({ identity }) => {
  await identity.start();
  return {
    name: 'identity',
    close: () => identity.close(),
  };
};
