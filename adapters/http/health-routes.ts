// GET /health: liveness plus a real round trip to the event store.

import type { FastifyInstance } from 'fastify';
import type { EventStore } from '../../domain/ports/event-store.js';

export type ProjectionLagReport = { projector: string; lagEvents: number; lagSeconds: number };
export type HealthDeps = {
  store: EventStore;
  engine: string;
  startedAtMs: number;
  nowMs: () => number;
  /** Each projector's distance behind the log; absent when no projections run in this process. */
  projectionLag?: () => Promise<readonly ProjectionLagReport[]>;
};

export async function healthRoutes(app: FastifyInstance, deps: HealthDeps): Promise<void> {
  app.get('/health', async (_request, reply) => {
    try {
      const head = await deps.store.headPosition();
      const lag = deps.projectionLag ? await deps.projectionLag() : [];
      return {
        status: 'ok',
        engine: deps.engine,
        uptimeMs: deps.nowMs() - deps.startedAtMs,
        logHead: { transactionId: head.transactionId.toString(), globalPosition: head.globalPosition.toString() },
        projections: lag.map((l) => ({ projector: l.projector, lagEvents: l.lagEvents, lagSeconds: l.lagSeconds })),
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
