// ESDB_URL selects EventStoreDB for start, the workers and the audit: probe the cluster, then refuse clearly what cannot run on it yet.

import { EventStoreError } from '../../domain/ports/event-store-errors.js';
import { parseEsdbUrl, type EsdbTarget } from './esdb-url.js';
import { openEsdbEventStore } from './open-esdb.js';

/** The ESDB_URL target, or null when it is unset (the SQL store is used). */
export function esdbTargetFrom(env: NodeJS.ProcessEnv, flag?: string): EsdbTarget | null {
  const text = flag ?? env.ESDB_URL;
  return text === undefined || text === '' ? null : parseEsdbUrl(text);
}

/**
 * What still needs the SQL log, and why: the parts above the port that share a transaction with the
 * log. Listed here once so start, the worker and the audit say the same thing.
 */
export const PARTS_NEEDING_A_SQL_LOG = [
  'projections (a batch\'s read-model rows and its checkpoint commit with the log read in one PostgreSQL transaction: the ProjectionLog port)',
  'escrow (its outbox rows and lease are written in the append\'s transaction)',
  'the HTTP API (API keys, nonces, hold invoices and idempotency records live beside the log)',
  'replay jobs and the audit (their queues and reports are tables beside the log)',
] as const;

export class EventStoreEngineUnsupportedError extends EventStoreError {
  override readonly name = 'EventStoreEngineUnsupportedError';
  constructor(display: string, what: string) {
    super(
      'EVENT_STORE_ENGINE_UNSUPPORTED',
      `the EventStoreDB cluster at ${display} answered, but ${what} cannot run on it yet: ${PARTS_NEEDING_A_SQL_LOG.join('; ')}. ` +
        'Unset ESDB_URL to run on PostgreSQL (DATABASE_URL) or PGlite; the adapter alone can be checked against this cluster with ESDB_URL=... npx vitest run test/contract/event-store.esdb.int.spec.ts',
    );
  }
}

/**
 * Probes the cluster (EVENT_STORE_UNREACHABLE when none answers), then refuses with
 * EVENT_STORE_ENGINE_UNSUPPORTED rather than starting half a system on it.
 */
export async function refuseEsdbAfterProbe(target: EsdbTarget, what: string): Promise<never> {
  const { store } = await openEsdbEventStore(target, { liveWakeups: false });
  await store.close();
  throw new EventStoreEngineUnsupportedError(target.display, what);
}
