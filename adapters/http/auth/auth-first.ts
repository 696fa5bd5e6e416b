// Authentication first: every route's auth hook runs in onRequest, before the body is read, validated or keyed.

import type { FastifyInstance } from 'fastify';
import { beforeBodyHalfOf, proveSignedBody } from './authenticate.js';

/** Where a route may declare its auth hook; wherever it is, its header half moves to onRequest. */
const DECLARED_IN = ['onRequest', 'preParsing', 'preValidation', 'preHandler'] as const;

/**
 * Hooks every route declared AFTER this call: each auth hook (asStaff, asContributor, ...) found
 * among the route's hooks is replaced by its before-body half, appended to the route's onRequest
 * (so after the instance's onRequest hooks, the IP ceiling among them). An anonymous request then
 * costs a header check and gets 401 (or 403 for a key without the scope), never a schema error or
 * IDEMPOTENCY_KEY_MISSING. What a signature leaves for the body is proved in preValidation,
 * registered here on the instance so it runs before any route's own preValidation hooks.
 */
export function registerAuthFirst(app: FastifyInstance): void {
  app.addHook('onRoute', (route) => {
    const r = route as unknown as Record<string, unknown>;
    const beforeBody: unknown[] = [];
    for (const phase of DECLARED_IN) {
      const hooks = hookList(r[phase]);
      const others = hooks.filter((hook) => {
        const half = beforeBodyHalfOf(hook);
        if (half) beforeBody.push(half);
        return half === undefined;
      });
      if (others.length !== hooks.length) r[phase] = others;
    }
    if (beforeBody.length > 0) r.onRequest = [...hookList(r.onRequest), ...beforeBody];
  });
  app.addHook('preValidation', proveSignedBody);
}

function hookList(value: unknown): unknown[] {
  if (value === undefined || value === null) return [];
  return Array.isArray(value) ? value : [value];
}
