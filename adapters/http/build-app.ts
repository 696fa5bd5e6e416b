// Builds the fastify application: problem+json errors, rate limits, authentication first, idempotency, OpenAPI, then every route group.

import Fastify, { type FastifyInstance } from 'fastify';
import type { ApiDeps } from './api-context.js';
import { registerAuthFirst } from './auth/auth-first.js';
import { dashboardRoutes } from './dashboard/dashboard-routes.js';
import { healthRoutes, type HealthDeps } from './health-routes.js';
import { registerIdempotency } from './idempotency.js';
import { registerOpenApi } from './openapi.js';
import { clientErrorAsProblem, frameworkErrorsAsProblems, registerProblemHandler } from './problem.js';
import { registerRateLimits } from './rate-limit.js';
import { registerStrictBodies } from './strict-bodies.js';
import { adminRoutes } from './routes/admin-routes.js';
import { assignmentsRoutes } from './routes/assignments-routes.js';
import { auditsRoutes } from './routes/audits-routes.js';
import { contributorsRoutes } from './routes/contributors-routes.js';
import { eventsRoutes } from './routes/events-routes.js';
import { gradientsRoutes } from './routes/gradients-routes.js';
import { prometheusRoutes } from './routes/prometheus-routes.js';
import { queriesRoutes } from './routes/queries-routes.js';
import { runsRoutes } from './routes/runs-routes.js';

export type AppDeps = HealthDeps & {
  bodyLimitBytes: number;
  logger?: boolean;
  /** The /v1 API; absent, the app serves only /health and /metrics. */
  api?: ApiDeps;
};

export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const app = Fastify({
    logger: deps.logger ?? false,
    bodyLimit: deps.api?.limits.jsonBodyLimitBytes ?? deps.bodyLimitBytes,
    frameworkErrors: frameworkErrorsAsProblems,
    clientErrorHandler: clientErrorAsProblem,
    // No type coercion: an amount sent as a JSON number would already have lost digits on the way in.
    // No stripping (fastify's default is removeAdditional: true): an unknown field is refused by name, never dropped.
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false } },
  });
  registerProblemHandler(app);
  registerStrictBodies(app);
  // Before every route, so that /health and /metrics are documented too; only with the API, whose reference it is.
  if (deps.api) await registerOpenApi(app);
  await app.register(async (instance) => healthRoutes(instance, deps));
  await prometheusRoutes(app, deps);
  if (deps.api) await registerApi(app, deps.api, deps.engine);
  return app;
}

/**
 * Order matters: the plugins attach to routes declared after them. A request then passes
 * onRequest (IP ceiling, then the route's authentication and scope check), preParsing (the
 * verified caller's budget), the body parser, preValidation (the signed body's digest, then the
 * Idempotency-Key), schema validation, preHandler (the idempotency claim) and the handler.
 */
async function registerApi(app: FastifyInstance, api: ApiDeps, engine: string): Promise<void> {
  await registerRateLimits(app, { maxPerMinute: api.limits.requestsPerMinute });
  registerAuthFirst(app);
  // The engine tells the plugin how to see that a claim's process died, so its retries need not wait out the lease.
  await registerIdempotency(app, { db: api.asyncCommitDb ?? api.db, nowMs: api.nowMs, ...(engine === 'postgres' || engine === 'pglite' ? { engine } : {}) });
  // Only JSON and octet-stream keep their raw bytes for signatures and fingerprints; other text is refused (415).
  app.removeContentTypeParser('text/plain');
  for (const routes of [runsRoutes, contributorsRoutes, assignmentsRoutes, gradientsRoutes, queriesRoutes, eventsRoutes, adminRoutes, auditsRoutes]) await routes(app, api);
  await dashboardRoutes(app, api);
}
