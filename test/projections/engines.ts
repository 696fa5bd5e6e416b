// The engines projection tests run on: in-memory PGlite, a fresh database on the test PostgreSQL server, and the split composition
// (the log behind the plain port on a second SQL store, or on ESDB_URL's cluster; read models and checkpoints in PGlite).

import type { LedgerStore } from '../../adapters/event-store/ledger-store.js';
import { openSplitStore } from '../../adapters/event-store/open-event-store.js';
import { splitLogs } from '../support/split-logs.js';
import { SQL_PROJECTION_ENGINES } from './sql-engines.js';

export type ProjectionEngine = Readonly<{ name: string; open: () => Promise<{ store: LedgerStore }> }>;

export const PROJECTION_ENGINES: readonly ProjectionEngine[] = [
  ...SQL_PROJECTION_ENGINES,
  ...splitLogs().map((log) => ({ name: log.name, open: async () => openSplitStore(await log.open(), { engine: 'pglite' }) })),
];
