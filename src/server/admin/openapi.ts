/** Builds the admin API's OpenAPI 3.1 document from the route table and its zod schemas. */
import { z, type ZodTypeAny } from 'zod';
import type { AdminRoute } from './routes.js';

/** Converts the zod subset used by the admin schemas into JSON Schema. */
export function toJsonSchema(t: ZodTypeAny): Record<string, unknown> {
  const d = t._def as Record<string, any>;
  if (t instanceof z.ZodOptional || t instanceof z.ZodDefault) return toJsonSchema(d.innerType);
  if (t instanceof z.ZodNullable) return { anyOf: [toJsonSchema(d.innerType), { type: 'null' }] };
  if (t instanceof z.ZodEffects) return toJsonSchema(d.schema);
  if (t instanceof z.ZodString) {
    const o: Record<string, unknown> = { type: 'string' };
    for (const c of d.checks ?? []) {
      if (c.kind === 'min') o.minLength = c.value;
      if (c.kind === 'max') o.maxLength = c.value;
      if (c.kind === 'datetime') o.format = 'date-time';
    }
    return o;
  }
  if (t instanceof z.ZodNumber) {
    const o: Record<string, unknown> = { type: (d.checks ?? []).some((c: any) => c.kind === 'int') ? 'integer' : 'number' };
    for (const c of d.checks ?? []) {
      if (c.kind === 'min') o.minimum = c.value;
      if (c.kind === 'max') o.maximum = c.value;
    }
    return o;
  }
  if (t instanceof z.ZodBoolean) return { type: 'boolean' };
  if (t instanceof z.ZodEnum) return { type: 'string', enum: d.values };
  if (t instanceof z.ZodLiteral) return { const: d.value };
  if (t instanceof z.ZodArray) return { type: 'array', items: toJsonSchema(d.type) };
  if (t instanceof z.ZodUnion) return { anyOf: (d.options as ZodTypeAny[]).map(toJsonSchema) };
  if (t instanceof z.ZodRecord) return { type: 'object', additionalProperties: toJsonSchema(d.valueType) };
  if (t instanceof z.ZodObject) {
    const shape = (t as z.ZodObject<z.ZodRawShape>).shape;
    const properties: Record<string, unknown> = {};
    const required: string[] = [];
    for (const [k, v] of Object.entries(shape)) {
      properties[k] = toJsonSchema(v as ZodTypeAny);
      if (!(v as ZodTypeAny).isOptional()) required.push(k);
    }
    return { type: 'object', properties, ...(required.length ? { required } : {}), additionalProperties: false };
  }
  return {};
}

/** The OpenAPI document for the admin routes. */
export function buildOpenApi(routes: readonly AdminRoute[]): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of routes) {
    const p = r.path.replace(/:([A-Za-z]+)/g, '{$1}');
    const params = [...r.path.matchAll(/:([A-Za-z]+)/g)].map((m) => ({ name: m[1], in: 'path', required: true, schema: { type: 'string' } }));
    if (r.query) {
      const qs = toJsonSchema(r.query) as { properties: Record<string, unknown>; required?: string[] };
      for (const [k, v] of Object.entries(qs.properties)) params.push({ name: k, in: 'query', required: qs.required?.includes(k) ?? false, schema: v as { type: string } });
    }
    (paths[p] ??= {})[r.method.toLowerCase()] = {
      summary: r.summary,
      operationId: r.id,
      description: `Roles: ${r.roles.join(', ')}.`,
      ...(params.length ? { parameters: params } : {}),
      ...(r.body ? { requestBody: { required: true, content: { 'application/json': { schema: toJsonSchema(r.body) } } } } : {}),
      responses: {
        [String(r.status ?? 200)]: { description: 'OK', content: { 'application/json': { schema: { type: 'object' } } } },
        '400': { $ref: '#/components/responses/Error' },
        '401': { $ref: '#/components/responses/Error' },
        '403': { $ref: '#/components/responses/Error' },
        '404': { $ref: '#/components/responses/Error' },
      },
      security: [{ adminKey: [] }],
    };
  }
  return {
    openapi: '3.1.0',
    info: { title: 'Portcullis admin API', version: '1' },
    paths,
    components: {
      securitySchemes: { adminKey: { type: 'http', scheme: 'bearer', description: 'An admin key (pcla_…)' } },
      responses: {
        Error: {
          description: 'Error envelope',
          content: { 'application/json': { schema: { type: 'object', properties: { error: { type: 'object', properties: { message: { type: 'string' }, type: { type: 'string' }, code: { type: 'string' } } } } } } },
        },
      },
    },
  };
}
