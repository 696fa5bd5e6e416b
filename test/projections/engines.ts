// The engines projection tests run on: in-memory PGlite, a fresh database on the test PostgreSQL server, and the split composition
// (the log behind the plain port on a second SQL store, or on ESDB_URL's cluster; read models and checkpoints in PGlite).

import type { LedgerStore } from '../../adapters/event-store/ledger-store.js';
import { openEventStore, openSplitStore } from '../../adapters/event-store/open-event-store.js';
import { createPostgresDatabase } from '../support/databases.js';
import { splitLogs } from '../support/split-logs.js';

export type ProjectionEngine = Readonly<{ name: string; open: () => Promise<{ store: LedgerStore }> }>;

export const PROJECTION_ENGINES: readonly ProjectionEngine[] = [
  { name: 'pglite', open: () => openEventStore({ engine: 'pglite' }) },
  { name: 'postgres', open: async () => openEventStore({ engine: 'postgres', connectionString: await createPostgresDatabase('projections'), maxConnections: 8 }) },
  ...splitLogs().map((log) => ({ name: log.name, open: async () => openSplitStore(await log.open(), { engine: 'pglite' }) })),
];
