// The log catalog projector: which streams the log holds, in the SQL database, each with its last revision, last hash and event count.
//
// Why it exists: a log behind the plain event-store port (EventStoreDB) has no list of streams to walk in
// order and no second record of each stream's head, both of which the SQL log's `streams` table gives the
// audit. This projection is that table, kept in the read models' database from the log itself, so the audit
// on the split composition walks streams in the database's collation and compares what it reads with a head
// recorded elsewhere: a tail cut from the log after the catalog saw it shows as STREAM_HEAD_MISMATCH. It is
// not in ALL_PROJECTORS: the SQL log has its `streams` table, and the audit's rebuild check leaves it alone.

import type { Kysely } from 'kysely';
import type { ProjectedEvent, Projector } from '../projector.js';
import { LOG_CATALOG_MIGRATIONS } from './migrations/index.js';

/** Also its PostgreSQL schema. */
export const LOG_CATALOG_SCHEMA = 'log_catalog';

type CatalogRow = { stream_id: string; last_revision: number; last_hash: string; event_count: number; assignment_id: string | null };

const WRITE_CHUNK_ROWS = 2_000;

export const logCatalogProjector: Projector = {
  name: LOG_CATALOG_SCHEMA,
  migrations: LOG_CATALOG_MIGRATIONS,
  tables: [{ name: 'streams', orderBy: ['stream_id'] }],
  async apply(db: Kysely<any>, events: readonly ProjectedEvent[]): Promise<void> {
    // One row per stream of the batch: its last event in checkpoint order is the head the log showed.
    const rows = new Map<string, CatalogRow>();
    for (const e of events) {
      const row = rows.get(e.streamId) ?? { stream_id: e.streamId, last_revision: e.revision, last_hash: e.hash, event_count: 0, assignment_id: null };
      row.last_revision = e.revision;
      row.last_hash = e.hash;
      row.event_count += 1;
      if (e.event.type === 'InvoiceOpened') row.assignment_id ??= e.event.data.assignmentId;
      rows.set(e.streamId, row);
    }
    const out = [...rows.values()].sort((a, b) => (a.stream_id < b.stream_id ? -1 : a.stream_id > b.stream_id ? 1 : 0));
    for (let i = 0; i < out.length; i += WRITE_CHUNK_ROWS) {
      // The batch and the checkpoint commit together, so no event is counted twice.
      await db
        .insertInto('streams')
        .values(out.slice(i, i + WRITE_CHUNK_ROWS))
        .onConflict((oc) =>
          oc.column('stream_id').doUpdateSet((eb) => ({
            last_revision: eb.ref('excluded.last_revision'),
            last_hash: eb.ref('excluded.last_hash'),
            event_count: eb(eb.ref('streams.event_count'), '+', eb.ref('excluded.event_count')),
            assignment_id: eb.fn.coalesce(eb.ref('streams.assignment_id'), eb.ref('excluded.assignment_id')),
          })),
        )
        .execute();
    }
  },
};
