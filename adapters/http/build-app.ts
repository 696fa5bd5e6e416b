// Builds the fastify application from its dependencies; the HTTP API proper grows here route group by route group.

import Fastify, { type FastifyInstance } from 'fastify';
import { healthRoutes, type HealthDeps } from './health-routes.js';

export type AppDeps = HealthDeps & { bodyLimitBytes: number; logger?: boolean };

export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const app = Fastify({ logger: deps.logger ?? false, bodyLimit: deps.bodyLimitBytes });
  await app.register(async (instance) => healthRoutes(instance, deps));
  return app;
}
