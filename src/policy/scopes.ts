/**
 * Scopes: what a principal may do. The same shape is used per key, per tenant, per tier
 * template (config `tiers:`) and as the installation default (`policy.defaults`); every
 * layer that sets a field narrows it further (least privilege).
 */
import { z } from 'zod';

/** Operations a scope can grant. `admin:*` covers every admin operation. */
export const OPERATIONS = [
  'chat',
  'completions',
  'embeddings',
  'responses',
  'messages',
  'models:list',
  'files',
  'batches',
  'fine_tuning',
  'vector_stores',
  'moderations',
  'admin:*',
] as const;

/** One operation name. */
export type Operation = (typeof OPERATIONS)[number] | `admin:${string}`;

const glob = z.string().min(1).max(256);
const operationPattern = z
  .string()
  .min(1)
  .max(100)
  .refine((s) => s === '*' || (OPERATIONS as readonly string[]).includes(s) || /^admin:[a-z_*]+$/.test(s), {
    message: `expected one of ${OPERATIONS.join('|')} or *`,
  });

/** Scopes of one layer; an absent field does not restrict. */
export const scopesSchema = z
  .object({
    /** Model globs: `allow` (absent = any) and `deny` (wins over allow). */
    models: z
      .object({ allow: z.array(glob).max(1000).optional(), deny: z.array(glob).max(1000).optional() })
      .strict()
      .optional(),
    /** Operations allowed (globs over operation names, e.g. `admin:*`). */
    operations: z.array(operationPattern).max(100).optional(),
    /** Tool names (globs) the caller may offer to a model; [] = no tools. */
    tools: z.array(glob).max(1000).optional(),
    /** Largest max_tokens / max_output_tokens a request may ask for. */
    maxOutputTokens: z.number().int().positive().optional(),
    /** Data-boundary labels the caller is cleared to send data to (see `policy.dataBoundaries`). */
    dataBoundaries: z.array(z.string().min(1).max(100)).max(100).optional(),
  })
  .strict();

/** Scopes of one layer. */
export type Scopes = z.infer<typeof scopesSchema>;

/** Parses stored/user scopes; throws a readable error naming the failing field. */
export function parseScopes(raw: unknown, where = 'scopes'): Scopes {
  const r = scopesSchema.safeParse(raw);
  if (!r.success) throw new Error(r.error.issues.map((i) => `${[where, ...i.path].join('.')}: ${i.message}`).join('; '));
  return r.data;
}
