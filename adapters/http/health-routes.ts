// GET /health: liveness plus a real round trip to the event store, and each projector's lag and whether it stopped.

import type { FastifyInstance } from 'fastify';
import type { EventStore, LogPosition } from '../../domain/ports/event-store.js';

/** Why a projector stopped (projections/runner.ts ProjectionStop has this shape). */
export type ProjectionStopReport = {
  reason: string;
  checkpoint: LogPosition;
  event: { streamId: string; revision: number; type: string; position: LogPosition } | null;
  stoppedAtMs: number;
};
export type ProjectionLagReport = {
  projector: string;
  lagEvents: number;
  lagSeconds: number;
  /** Absent means running. */
  status?: 'running' | 'stopped';
  stopped?: ProjectionStopReport;
};
export type HealthDeps = {
  store: EventStore;
  engine: string;
  startedAtMs: number;
  nowMs: () => number;
  /** Each projector's distance behind the log; absent when no projections run in this process. */
  projectionLag?: () => Promise<readonly ProjectionLagReport[]>;
};

export function isProjectionStopped(lag: ProjectionLagReport): boolean {
  return lag.status === 'stopped';
}

function position(p: LogPosition): { transactionId: string; globalPosition: string } {
  return { transactionId: p.transactionId.toString(), globalPosition: p.globalPosition.toString() };
}

function projectionHealth(l: ProjectionLagReport) {
  const base = { projector: l.projector, status: l.status ?? 'running', lagEvents: l.lagEvents, lagSeconds: l.lagSeconds };
  if (!isProjectionStopped(l) || !l.stopped) return base;
  const { stopped } = l;
  return {
    ...base,
    stopped: {
      reason: stopped.reason,
      checkpoint: position(stopped.checkpoint),
      event: stopped.event ? { streamId: stopped.event.streamId, revision: stopped.event.revision, type: stopped.event.type, position: position(stopped.event.position) } : null,
      stoppedAt: new Date(stopped.stoppedAtMs).toISOString(),
    },
  };
}

/**
 * A stopped projector makes the service `degraded`, still answered 200: the
 * API, the log and the other read models keep working, so a load balancer must
 * keep routing here; alert on the body's status or on the
 * trainledger_projection_stopped gauge instead. 503 is kept for the event store
 * itself being unreachable.
 */
export async function healthRoutes(app: FastifyInstance, deps: HealthDeps): Promise<void> {
  app.get('/health', async (_request, reply) => {
    try {
      const head = await deps.store.headPosition();
      const lag = deps.projectionLag ? await deps.projectionLag() : [];
      const stopped = lag.filter(isProjectionStopped);
      return {
        status: stopped.length === 0 ? 'ok' : 'degraded',
        engine: deps.engine,
        uptimeMs: deps.nowMs() - deps.startedAtMs,
        logHead: position(head),
        projections: lag.map(projectionHealth),
        ...(stopped.length === 0 ? {} : { degraded: stopped.map((l) => ({ projector: l.projector, reason: l.stopped?.reason ?? 'stopped' })) }),
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
