// The engines projection tests run on: in-memory PGlite, a fresh database on the test PostgreSQL server, and the split composition
// (the log behind the plain port on a second SQL store, or on ESDB_URL's cluster; read models and checkpoints in PGlite).

import type { LedgerStore } from '../../adapters/event-store/ledger-store.js';
import { openSplitStore } from '../../adapters/event-store/open-event-store.js';
import { MAX_BACKLOG_COUNTED_EVENTS } from '../../adapters/event-store/split-log.js';
import { splitLogs } from '../support/split-logs.js';
import { SQL_PROJECTION_ENGINES } from './sql-engines.js';

/** `lagCountedUpTo`: the most events a lag reports (the SQL log counts them all; the split reads, and stops at its bound). */
export type ProjectionEngine = Readonly<{ name: string; open: () => Promise<{ store: LedgerStore }>; lagCountedUpTo: number }>;

export const PROJECTION_ENGINES: readonly ProjectionEngine[] = [
  ...SQL_PROJECTION_ENGINES.map((e) => ({ ...e, lagCountedUpTo: Number.POSITIVE_INFINITY })),
  ...splitLogs().map((log) => ({ name: log.name, open: async () => openSplitStore(await log.open(), { engine: 'pglite' }), lagCountedUpTo: MAX_BACKLOG_COUNTED_EVENTS })),
];

/** The lag an engine reports for `events` unread events. */
export function countedLag(engine: ProjectionEngine, events: number): number {
  return Math.min(events, engine.lagCountedUpTo);
}
