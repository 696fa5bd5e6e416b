// Runs the replay-job queue contract against PostgreSQL (real concurrent claimers) and PGlite.

import { openEventStore } from '../../adapters/event-store/open-event-store.js';
import { MAX_REPLAY_ATTEMPTS, PostgresReplayJobQueue } from '../../adapters/replay/postgres-replay-jobs.js';
import { createPostgresDatabase } from '../support/databases.js';
import { describeReplayJobQueueContract } from './replay-jobs.contract.js';

describeReplayJobQueueContract({
  engine: 'postgres',
  maxAttempts: MAX_REPLAY_ATTEMPTS,
  open: async () => {
    const { store, db } = await openEventStore({ engine: 'postgres', connectionString: await createPostgresDatabase('replay_jobs'), maxConnections: 32 });
    const jobs = new PostgresReplayJobQueue(db);
    await jobs.prepare();
    return { jobs, close: () => store.close() };
  },
});

describeReplayJobQueueContract({
  engine: 'pglite',
  maxAttempts: MAX_REPLAY_ATTEMPTS,
  open: async () => {
    const { store, db } = await openEventStore({ engine: 'pglite' });
    const jobs = new PostgresReplayJobQueue(db);
    await jobs.prepare();
    return { jobs, close: () => store.close() };
  },
});
