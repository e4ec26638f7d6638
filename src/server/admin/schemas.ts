/** Request schemas of the admin API (zod), shared by validation and the OpenAPI document. */
import { z } from 'zod';
import { scopesSchema } from '../../policy/scopes.js';

const name = z.string().trim().min(1).max(200);
const tierName = z.string().min(1).max(100);
/** The largest instant a JavaScript Date holds (±8.64e15 ms): later ones are no dates (and overflow a bigint column). */
export const MAX_INSTANT_MS = 8.64e15;
/** Epoch milliseconds or an ISO-8601 date-time, within a JavaScript Date's range. */
const instant = z
  .union([z.number().int().nonnegative().max(MAX_INSTANT_MS), z.string().datetime({ offset: true })])
  .transform((v) => (typeof v === 'number' ? v : Date.parse(v)))
  .refine((v) => Number.isFinite(v) && Math.abs(v) <= MAX_INSTANT_MS, 'expected a date within a JavaScript Date range (at most 8.64e15 ms from 1970)');
/** An admin-event id as a page cursor (the `nextCursor` of /admin/v1/events): decimal digits, within 2^53. */
const eventCursor = z.string().regex(/^\d{1,15}$/, 'expected the nextCursor of a previous page');

/** Paging query. */
export const pageQuery = z
  .object({
    limit: z.coerce.number().int().min(1).max(10_000).optional(),
    cursor: z.string().max(200).optional(),
  })
  .strict();

export const tenantCreateBody = z.object({ name, tier: tierName.optional(), scopes: scopesSchema.optional() }).strict();
export const tenantPatchBody = z
  .object({ status: z.enum(['active', 'suspended']).optional(), tier: tierName.nullable().optional(), scopes: scopesSchema.nullable().optional() })
  .strict();
export const reasonBody = z.object({ reason: z.string().max(500).optional() }).strict();

export const keyListQuery = pageQuery.extend({ tenant: z.string().max(200).optional(), status: z.enum(['active', 'grace', 'rotated', 'revoked', 'expired']).optional() }).strict();
export const keyCreateBody = z
  .object({
    tenant: name,
    name,
    owner: z.string().max(200).optional(),
    scopes: scopesSchema.optional(),
    tier: tierName.optional(),
    expiresAt: instant.optional(),
    expiresInSeconds: z.number().int().positive().max(10 * 365 * 86_400).optional(),
  })
  .strict();
export const keyPatchBody = z
  .object({ name: name.optional(), owner: z.string().max(200).nullable().optional(), scopes: scopesSchema.nullable().optional(), tier: tierName.nullable().optional() })
  .strict();
export const rotateBody = z.object({ graceSeconds: z.number().int().min(0).max(90 * 86_400).optional() }).strict();
export const expireBody = z.object({ at: instant.optional() }).strict();

export const policyCheckBody = z
  .object({
    keyId: z.string().min(1).max(64),
    operation: z.string().min(1).max(100),
    model: z.string().min(1).max(256).optional(),
    tools: z.array(z.string().max(256)).max(1000).optional(),
    maxOutputTokens: z.number().int().positive().optional(),
  })
  .strict();

export const eventsQuery = pageQuery.extend({ cursor: eventCursor.optional(), tenant: z.string().max(200).optional(), action: z.string().max(100).optional(), target: z.string().max(200).optional() }).strict();

export const adminKeyCreateBody = z
  .object({ name, role: z.enum(['owner', 'operator', 'auditor']), tenants: z.array(z.string().min(1).max(200)).max(1000).optional(), expiresAt: instant.optional() })
  .strict();

export const emptyBody = z.object({}).strict();
