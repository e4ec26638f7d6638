/** Configuration of authorization: `tiers:` (scope templates) and `policy:`. */
import { z } from 'zod';
import { scopesSchema } from './scopes.js';

/** `tiers:` — named scope templates a key or tenant refers to by name. */
export const tiersConfigSchema = z.record(z.string().min(1).max(100), scopesSchema).default({});

/** `policy:` section. */
export const policyConfigSchema = z
  .object({
    /** Scopes applied to every principal (the outermost layer). */
    defaults: scopesSchema.default({}),
    /** Tier for principals whose key and tenant name none; must exist in `tiers`. */
    defaultTier: z.string().min(1).max(100).optional(),
    /** Data-boundary label of each model (first match wins); unlabeled models have no boundary. */
    dataBoundaries: z
      .array(z.object({ model: z.string().min(1).max(256), label: z.string().min(1).max(100) }).strict())
      .default([]),
    /** Optional Cedar policies evaluated after the built-in checks (both must allow). */
    cedar: z
      .object({
        /** Path of a `.cedar` policy file. */
        policiesFile: z.string().min(1),
        /** Optional JSON entities file (e.g. groups the principal belongs to). */
        entitiesFile: z.string().min(1).optional(),
      })
      .strict()
      .optional(),
  })
  .strict()
  .default({});

export type TiersConfig = z.infer<typeof tiersConfigSchema>;
export type PolicyConfig = z.infer<typeof policyConfigSchema>;
