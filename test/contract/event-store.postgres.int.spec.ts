// Runs the event-store contract against a real PostgreSQL server (throwaway cluster, or DATABASE_URL).

import { openEventStore } from '../../adapters/event-store/open-event-store.js';
import { createPostgresDatabase } from '../support/databases.js';
import { describeEventStoreContract } from './event-store.contract.js';

describeEventStoreContract({
  engine: 'postgres',
  parallelWriters: 16,
  appendsPerWriter: 25,
  sql: true,
  open: async () => {
    const connectionString = await createPostgresDatabase('contract_es');
    const { store, db } = await openEventStore({ engine: 'postgres', connectionString, maxConnections: 24 });
    return { store, sql: { store, db }, concurrentTransactions: true };
  },
});
