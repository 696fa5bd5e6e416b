// Unknown JSON fields are refused, not ignored: every object a route's body schema declares is closed (additionalProperties: false).

import type { FastifyInstance } from 'fastify';

/**
 * Closes every object schema under `schema` that declares `properties` and says nothing about
 * `additionalProperties`: the object itself, nested objects, array items and union branches. An
 * object that says `additionalProperties` (true, or a schema) or has `patternProperties` (a
 * Type.Record, such as a verdict's free-form evidence) is left as it is. Idempotent; mutates in place.
 */
export function closeObjectSchemas(schema: unknown, seen: WeakSet<object> = new WeakSet()): void {
  if (schema === null || typeof schema !== 'object' || seen.has(schema)) return;
  seen.add(schema);
  if (Array.isArray(schema)) {
    for (const item of schema) closeObjectSchemas(item, seen);
    return;
  }
  const node = schema as Record<string, unknown>;
  const properties = node.properties;
  if (properties !== null && typeof properties === 'object') {
    if (node.additionalProperties === undefined && node.patternProperties === undefined && node.unevaluatedProperties === undefined) node.additionalProperties = false;
    for (const property of Object.values(properties)) closeObjectSchemas(property, seen);
  }
  for (const key of ['items', 'prefixItems', 'anyOf', 'oneOf', 'allOf']) closeObjectSchemas(node[key], seen);
}

/**
 * For routes declared after it: closes their JSON body schemas. Headers, query strings and path
 * parameters stay as declared (a request carries headers no route names). Works with
 * `removeAdditional: false` in the ajv options, so a closed object refuses instead of stripping.
 */
export function registerStrictBodies(app: FastifyInstance): void {
  app.addHook('onRoute', (route) => {
    const body = (route.schema as { body?: unknown } | undefined)?.body;
    if (body !== undefined) closeObjectSchemas(body);
  });
}
