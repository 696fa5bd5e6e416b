// ESDB_URL selects EventStoreDB for start, the workers and the audit: the target, and the clear refusal of what cannot run on it yet (the audit).

import { EventStoreError } from '../../domain/ports/event-store-errors.js';
import { parseEsdbUrl, type EsdbTarget } from './esdb-url.js';
import { openEsdbEventStore } from './open-esdb.js';

/** The ESDB_URL target, or null when it is unset (the SQL store is used). */
export function esdbTargetFrom(env: NodeJS.ProcessEnv, flag?: string): EsdbTarget | null {
  const text = flag ?? env.ESDB_URL;
  return text === undefined || text === '' ? null : parseEsdbUrl(text);
}

/**
 * What still needs the SQL log, and why. Everything else runs on the split composition (the log on the
 * cluster, read models, outbox, API tables and replay jobs in SQL: adapters/event-store/split-log.ts).
 */
export const PARTS_NEEDING_A_SQL_LOG = [
  'the audit (it reads the log in stream order with SQL keyset pages and ledger aggregates: the AuditLog port, replay/audit/ports.ts)',
] as const;

export class EventStoreEngineUnsupportedError extends EventStoreError {
  override readonly name = 'EventStoreEngineUnsupportedError';
  constructor(display: string, what: string) {
    super(
      'EVENT_STORE_ENGINE_UNSUPPORTED',
      `the EventStoreDB cluster at ${display} answered, but ${what} cannot run on it yet: ${PARTS_NEEDING_A_SQL_LOG.join('; ')}. ` +
        '`trainledger start` and the replay worker do run on it. Check the log on the cluster with the event-store contract suite: ESDB_URL=... npx vitest run test/contract/event-store.esdb.int.spec.ts',
    );
  }
}

/**
 * Probes the cluster (EVENT_STORE_UNREACHABLE when none answers), then refuses with
 * EVENT_STORE_ENGINE_UNSUPPORTED: what calls it (the audit) cannot run on the cluster yet.
 */
export async function refuseEsdbAfterProbe(target: EsdbTarget, what: string): Promise<never> {
  const { store } = await openEsdbEventStore(target, { liveWakeups: false });
  await store.close();
  throw new EventStoreEngineUnsupportedError(target.display, what);
}
