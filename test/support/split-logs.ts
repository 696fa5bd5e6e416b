// The logs the split composition is tested on: a second, separate SQL event store behind the plain port only, and the ESDB_URL cluster when one is given.

import { openEventStore } from '../../adapters/event-store/open-event-store.js';
import { parseEsdbUrl } from '../../adapters/eventstoredb/esdb-url.js';
import { openEsdbEventStore } from '../../adapters/eventstoredb/open-esdb.js';
import { comparePositions, type EventStore, type LogPosition, type ReadAllOptions } from '../../domain/ports/event-store.js';

/**
 * Exactly the EventStore port of `store` and nothing else: no appendAtomically, no `db`, no appendInTransaction,
 * no ProjectionLog methods. Through it a SQL store takes the code paths EventStoreDB's adapter takes above the
 * port: one append per stream, reads and checkpoints through the port alone.
 */
export function portOnly(store: EventStore): EventStore {
  return {
    append: (streamId, events, options) => store.append(streamId, events, options),
    readStream: (streamId, options) => store.readStream(streamId, options),
    readAll: (options) => store.readAll(options),
    headPosition: () => store.headPosition(),
    loadCheckpoint: (id) => store.loadCheckpoint(id),
    saveCheckpoint: (id, position) => store.saveCheckpoint(id, position),
    lookupIdempotencyKey: (key) => store.lookupIdempotencyKey(key),
    verifyStream: (streamId) => store.verifyStream(streamId),
    verifyAll: () => store.verifyAll(),
    onAppended: (listener) => store.onAppended(listener),
    close: () => store.close(),
  };
}

/**
 * A shared cluster holds other runs' events: a spec sees the log from the head as it was when the spec
 * opened it, so its projections start from an empty log as they do on a fresh SQL store. Reads only: appends,
 * checkpoints and keys go straight through.
 */
function fromHeadAtOpen(store: EventStore, floor: LogPosition): EventStore {
  const above = (options: ReadAllOptions = {}): ReadAllOptions => ({ ...options, after: options.after && comparePositions(options.after, floor) > 0 ? options.after : floor });
  return { ...portOnly(store), readAll: (options) => store.readAll(above(options)) };
}

const esdbUrl = process.env.ESDB_URL;
const esdbTarget = esdbUrl ? parseEsdbUrl(esdbUrl) : null;

export type SplitLog = Readonly<{ name: string; open: () => Promise<EventStore> }>;

/** The second SQL store, in memory: a PGlite of its own, separate from the database of the read models. */
export const SQL_SPLIT_LOG: SplitLog = { name: 'split: log on a second SQL store (port only)', open: async () => portOnly((await openEventStore({ engine: 'pglite' })).store) };

/** The ESDB_URL cluster, or null (and the caller says loudly that it skipped it). */
export const ESDB_SPLIT_LOG: SplitLog | null = esdbTarget
  ? {
      name: `split: log on EventStoreDB at ${esdbTarget.display}`,
      open: async () => {
        const { store } = await openEsdbEventStore(esdbTarget);
        return fromHeadAtOpen(store, await store.headPosition());
      },
    }
  : null;

export const ESDB_SPLIT_SKIPPED =
  'split composition on EventStoreDB SKIPPED: set ESDB_URL (e.g. esdb://127.0.0.1:2113?tls=false) to run this spec with the log on the cluster; ' +
  'it ran with the log on a second SQL store through the plain port instead, which takes the same code paths above the port';

/** Every log the split is tested on here, warning once per file when the cluster variant is skipped. */
export function splitLogs(): SplitLog[] {
  if (!ESDB_SPLIT_LOG) console.warn(ESDB_SPLIT_SKIPPED);
  return ESDB_SPLIT_LOG ? [SQL_SPLIT_LOG, ESDB_SPLIT_LOG] : [SQL_SPLIT_LOG];
}
