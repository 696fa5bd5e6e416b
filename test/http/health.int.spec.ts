// GET /health through fastify's inject: healthy with a live store, 503 problem+json once the store is gone.

import { describe, expect, it } from 'vitest';
import { openEventStore } from '../../adapters/event-store/open-event-store.js';
import { buildApp } from '../../adapters/http/build-app.js';
import { ledgerProjector } from '../../projections/ledger/ledger-projector.js';
import { ProjectionRunner } from '../../projections/runner.js';

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
});
