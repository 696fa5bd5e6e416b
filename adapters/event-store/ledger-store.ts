// The store the running system is composed on: the EventStore port plus the ProjectionLog port (which carries the SQL database).

import type { EventStore } from '../../domain/ports/event-store.js';
import type { ProjectionLog } from '../../projections/ports/projection-log.js';

/**
 * Either the SQL log (PostgresEventStore: log, checkpoints and read models in one database) or the split
 * composition (SplitLogStore: the log on EventStoreDB, the rest in SQL). Parts above the port take this
 * type, never a concrete store, so they run unchanged on both; `db` is where their own tables live.
 */
export type LedgerStore = EventStore & ProjectionLog;
