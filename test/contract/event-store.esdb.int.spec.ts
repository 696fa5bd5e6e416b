// Runs the event-store contract against an EventStoreDB/KurrentDB cluster when ESDB_URL is set, and says so loudly when it cannot.

import { describe } from 'vitest';
import { parseEsdbUrl } from '../../adapters/eventstoredb/esdb-url.js';
import { openEsdbEventStore } from '../../adapters/eventstoredb/open-esdb.js';
import { EsdbCatchUpSubscription } from '../../adapters/eventstoredb/all-subscription.js';
import type { EsdbEventStore } from '../../adapters/eventstoredb/esdb-event-store.js';
import { EVENT_STORE_LIMITS } from '../../adapters/event-store/limits.js';
import { describeEventStoreContract, event } from './event-store.contract.js';

const SKIPPED =
  'EventStoreDB contract suite SKIPPED: set ESDB_URL (e.g. esdb://127.0.0.1:2113?tls=false for a single insecure node, ' +
  'or esdb://node1:2113,node2:2113,node3:2113?tls=true&nodePreference=leader) to run it. ' +
  'The projection suites, the API, escrow, the audit and the end-to-end simulation on the split composition (test/projections, test/split) take ESDB_URL too.';

// A malformed ESDB_URL throws INVALID_CONFIG here and fails the file: a typo must not pass as a skip.
const url = process.env.ESDB_URL;
const target = url ? parseEsdbUrl(url) : null;
if (!target) console.warn(SKIPPED);

/** The cluster's default MaxAppendSize is 1 MiB: five events just under the per-event limit are over it together. */
const OVER_ONE_MIB = 5;

const contract = {
  sql: false,
  // A cluster round trip per append plus the tail read: fewer appends than on PostgreSQL, the same races.
  parallelWriters: 8,
  appendsPerWriter: 10,
  poisonedBatch: () => [event(), ...Array.from({ length: OVER_ONE_MIB }, (_, n) => event('Big', { n, blob: 'x'.repeat(EVENT_STORE_LIMITS.maxEventDataBytes - 1_024) }))],
  open: async () => {
    const { store } = await openEsdbEventStore(target!);
    return { store, concurrentTransactions: true };
  },
};

describe.skipIf(!target)(target ? `EventStoreDB at ${target.display}` : SKIPPED, () => {
  // Once with the polling subscription every store has (readAll from the checkpoint, woken by the live $all feed)...
  describeEventStoreContract({ ...contract, engine: 'eventstoredb' });
  // ...and once with the server-pushed catch-up subscription on $all, filtered to domain streams.
  describeEventStoreContract({ ...contract, engine: 'eventstoredb, $all subscription', subscribe: (store, options) => new EsdbCatchUpSubscription(store as EsdbEventStore, options) });
});
