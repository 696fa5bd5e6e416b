// Regression (issue 16, SIGKILL suite): a replay job leased by a worker whose process was killed is claimed at once, not after its 60-second lease; a live worker's job is never taken.

import { describe, expect, it } from 'vitest';
import { openEventStore } from '../../adapters/event-store/open-event-store.js';
import { PostgresReplayJobQueue } from '../../adapters/replay/postgres-replay-jobs.js';
import { createPostgresDatabase } from '../support/databases.js';

const LEASE_MS = 60_000;

describe.each(['pglite', 'postgres'] as const)('replay leases of a dead worker on %s', (engine) => {
  it('takes over the job of a worker whose process is gone, at once, and leaves a live worker\'s job alone', async () => {
    const target = engine === 'pglite' ? ({ engine: 'pglite' } as const) : ({ engine: 'postgres', connectionString: await createPostgresDatabase('replay_takeover') } as const);
    const { store, db } = await openEventStore(target);
    try {
      const nowMs = 1_000_000;
      // Two processes' queues on one database (on PGlite, the one before a restart and the one after).
      const before = new PostgresReplayJobQueue(db, undefined, { engine });
      await before.prepare();
      await before.registerWorker('w-before');
      const after = new PostgresReplayJobQueue(db, undefined, { engine });
      await after.registerWorker('w-after');
      await before.enqueue({ jobId: 'job-1', assignmentId: 'a-1', disputeId: 'd-1', enqueuedAtMs: nowMs });
      expect((await before.claim('w-before', nowMs, LEASE_MS))?.jobId).toBe('job-1');

      // Its worker is alive: the lease holds.
      expect(await after.claim('w-after', nowMs + 1_000, LEASE_MS)).toBeNull();
      // The process ends as a SIGKILL ends it (its advisory-lock session closes; on PGlite, it is no longer the live process).
      await before.close();
      // Before the fix the job waited until nowMs + LEASE_MS; a queue that cannot tell (no engine) still waits.
      const leaseOnly = new PostgresReplayJobQueue(db);
      expect(await leaseOnly.claim('w-lease-only', nowMs + 2_000, LEASE_MS)).toBeNull();
      const taken = await after.claim('w-after', nowMs + 2_000, LEASE_MS);
      expect(taken).toMatchObject({ jobId: 'job-1', attempts: 2, leaseOwner: 'w-after' });
      // The dead worker can no longer finish it; the new owner can.
      expect(await before.complete('job-1', 'w-before', nowMs + 3_000)).toBe(false);
      expect(await after.complete('job-1', 'w-after', nowMs + 3_000)).toBe(true);
      await after.close();
    } finally {
      await store.close();
    }
  });

  it('serves queued jobs before taking over a dead worker\'s, then takes it over once the queue is empty', async () => {
    const target = engine === 'pglite' ? ({ engine: 'pglite' } as const) : ({ engine: 'postgres', connectionString: await createPostgresDatabase('replay_takeover_order') } as const);
    const { store, db } = await openEventStore(target);
    try {
      const nowMs = 2_000_000;
      const dead = new PostgresReplayJobQueue(db, undefined, { engine });
      await dead.prepare();
      await dead.registerWorker('w-dead');
      const live = new PostgresReplayJobQueue(db, undefined, { engine });
      await live.registerWorker('w-live');
      await dead.enqueue({ jobId: 'job-old', assignmentId: 'a-old', disputeId: 'd-old', enqueuedAtMs: nowMs });
      expect((await dead.claim('w-dead', nowMs, LEASE_MS))?.jobId).toBe('job-old');
      await dead.close();
      await live.enqueue({ jobId: 'job-new', assignmentId: 'a-new', disputeId: 'd-new', enqueuedAtMs: nowMs + 10 });
      // The older job's owner is gone, but a queued job is claimable without asking: it comes first.
      expect((await live.claim('w-live', nowMs + 1_000, LEASE_MS))?.jobId).toBe('job-new');
      expect(await live.claim('w-live', nowMs + 1_000, LEASE_MS)).toMatchObject({ jobId: 'job-old', attempts: 2, leaseOwner: 'w-live' });
      expect(await live.claim('w-live', nowMs + 1_000, LEASE_MS)).toBeNull();
      await live.close();
    } finally {
      await store.close();
    }
  });
});
