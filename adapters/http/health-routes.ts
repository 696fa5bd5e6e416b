// GET /health: liveness plus a real round trip to the event store.

import type { FastifyInstance } from 'fastify';
import type { EventStore } from '../../domain/ports/event-store.js';

export type HealthDeps = { store: EventStore; engine: string; startedAtMs: number; nowMs: () => number };

export async function healthRoutes(app: FastifyInstance, deps: HealthDeps): Promise<void> {
  app.get('/health', async (_request, reply) => {
    try {
      const head = await deps.store.headPosition();
      return {
        status: 'ok',
        engine: deps.engine,
        uptimeMs: deps.nowMs() - deps.startedAtMs,
        logHead: { transactionId: head.transactionId.toString(), globalPosition: head.globalPosition.toString() },
      };
    } catch (error) {
      reply.code(503).type('application/problem+json');
      return {
        type: 'about:blank',
        title: 'event store unavailable',
        status: 503,
        code: 'EVENT_STORE_UNAVAILABLE',
        detail: error instanceof Error ? error.message : String(error),
      };
    }
  });
}
