// GET /health through fastify's inject: healthy with a live store, degraded with the reason when a projector stopped, 503 problem+json once the store is gone; /metrics's memory gauges.

import { describe, expect, it } from 'vitest';
import { openEventStore } from '../../adapters/event-store/open-event-store.js';
import { buildApp } from '../../adapters/http/build-app.js';
import { invariant } from '../../domain/errors.js';
import { ledgerProjector } from '../../projections/ledger/ledger-projector.js';
import type { Projector } from '../../projections/projector.js';
import { ProjectionRunner } from '../../projections/runner.js';
import { appendHistory, generateHistory } from '../projections/history.js';

/** Keeps no tables; refuses every RunFunded as a broken invariant. */
const poisonProjector: Projector = {
  name: 'poison',
  migrations: {},
  tables: [],
  async apply(_db, events) {
    for (const e of events) invariant(e.event.type !== 'RunFunded', 'run budget would go below zero');
  },
};

describe('GET /health', () => {
  it('reports the engine, the log head and projection lag, then 503 when the store fails', async () => {
    const { store } = await openEventStore({ engine: 'pglite' });
    const runner = new ProjectionRunner({ store, projectors: [ledgerProjector] });
    await runner.prepare();
    const app = await buildApp({ store, engine: 'pglite', startedAtMs: 0, nowMs: () => 1_000, bodyLimitBytes: 1024, projectionLag: () => runner.lag() });
    const ok = await app.inject({ method: 'GET', url: '/health' });
    expect(ok.statusCode).toBe(200);
    expect(ok.json()).toMatchObject({ status: 'ok', engine: 'pglite', uptimeMs: 1_000, logHead: { globalPosition: '0' }, projections: [{ projector: 'ledger', lagEvents: 0 }] });

    await store.close();
    const down = await app.inject({ method: 'GET', url: '/health' });
    expect(down.statusCode).toBe(503);
    expect(down.headers['content-type']).toContain('application/problem+json');
    expect(down.json()).toMatchObject({ status: 503, code: 'EVENT_STORE_UNAVAILABLE' });
    await app.close();
  });

  it('answers 200 degraded, naming the stopped projector, its reason and event, while the others run; /metrics flags it', async () => {
    const { store } = await openEventStore({ engine: 'pglite' });
    const history = generateHistory(3, { runs: 1, assignments: 4 });
    await appendHistory(store, history);
    const funded = (await store.readAll({ maxCount: 10_000 })).find((e) => e.type === 'RunFunded')!;
    const runner = new ProjectionRunner({ store, projectors: [ledgerProjector, poisonProjector] });
    await runner.prepare();
    await runner.pass();
    const app = await buildApp({ store, engine: 'pglite', startedAtMs: 0, nowMs: () => 1_000, bodyLimitBytes: 1024, projectionLag: () => runner.lag() });
    try {
      const health = await app.inject({ method: 'GET', url: '/health' });
      expect(health.statusCode).toBe(200);
      const body = health.json();
      expect(body).toMatchObject({
        status: 'degraded',
        degraded: [{ projector: 'poison', reason: 'InvariantViolation: run budget would go below zero' }],
        projections: [
          { projector: 'ledger', status: 'running', lagEvents: 0 },
          {
            projector: 'poison',
            status: 'stopped',
            lagEvents: history.length - 1,
            stopped: {
              reason: 'InvariantViolation: run budget would go below zero',
              event: { streamId: funded.streamId, revision: funded.revision, type: 'RunFunded', position: { globalPosition: funded.position.globalPosition.toString() } },
              checkpoint: { globalPosition: expect.stringMatching(/^[0-9]+$/) },
            },
          },
        ],
      });
      expect(body.projections[0].stopped).toBeUndefined();

      const metrics = await app.inject({ method: 'GET', url: '/metrics' });
      expect(metrics.statusCode).toBe(200);
      expect(metrics.body).toMatch(/^# TYPE trainledger_projection_stopped gauge$/m);
      expect(metrics.body).toMatch(/^trainledger_projection_stopped\{projector="poison"\} 1$/m);
      expect(metrics.body).toMatch(/^trainledger_projection_stopped\{projector="ledger"\} 0$/m);
      expect(metrics.body).toMatch(/^trainledger_projection_lag_events\{projector="poison"\} [1-9][0-9]*$/m);

      // The API keeps answering: the rest of the app is not affected.
      const again = await app.inject({ method: 'GET', url: '/health' });
      expect(again.statusCode).toBe(200);
    } finally {
      await app.close();
      await store.close();
    }
  });

  it("/metrics reports this process's resident memory and V8 heap, in bytes, as the soak reads them", async () => {
    const { store } = await openEventStore({ engine: 'pglite' });
    const app = await buildApp({ store, engine: 'pglite', startedAtMs: 0, nowMs: () => 1_000, bodyLimitBytes: 1024 });
    try {
      const metrics = await app.inject({ method: 'GET', url: '/metrics' });
      expect(metrics.statusCode).toBe(200);
      const gauge = (name: string): number => {
        expect(metrics.body).toMatch(new RegExp(`^# TYPE ${name} gauge$`, 'm'));
        return Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(metrics.body)?.[1]);
      };
      const rssBytes = gauge('process_resident_memory_bytes');
      const heapUsedBytes = gauge('nodejs_heap_size_used_bytes');
      const heapTotalBytes = gauge('nodejs_heap_size_total_bytes');
      // A Node process with fastify and PGlite loaded holds megabytes; the heap in use fits in the heap reserved, which fits in RSS.
      expect(rssBytes).toBeGreaterThan(16 * 2 ** 20);
      expect(heapUsedBytes).toBeGreaterThan(2 ** 20);
      expect(heapUsedBytes).toBeLessThanOrEqual(heapTotalBytes);
      expect(heapTotalBytes).toBeLessThan(rssBytes);
      expect(gauge('nodejs_external_memory_bytes')).toBeGreaterThan(0);
    } finally {
      await app.close();
      await store.close();
    }
  });
});
