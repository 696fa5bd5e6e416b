// The log catalog projector: which streams the log holds, in the SQL database, each with its last revision, last hash and event count.
//
// Why it exists: a log behind the plain event-store port (EventStoreDB) has no list of streams to walk in
// order and no second record of each stream's head, both of which the SQL log's `streams` table gives the
// audit. This projection is that table, kept in the read models' database from the log itself, so the audit
// on the split composition walks streams in the database's collation and compares what it reads with a head
// recorded elsewhere: a tail cut from the log after the catalog saw it shows as STREAM_HEAD_MISMATCH. It is
// not in ALL_PROJECTORS: the SQL log has its `streams` table, and the audit's rebuild check leaves it alone.

import type { Kysely } from 'kysely';
import { invariant } from '../../domain/errors.js';
import { comparePositions, type LogPosition } from '../../domain/ports/event-store.js';
import type { LoggedEvent, ProjectionLog } from '../ports/projection-log.js';
import type { ProjectedEvent, Projector } from '../projector.js';
import { projectionCheckpointId } from '../runner.js';
import { LOG_CATALOG_MIGRATIONS } from './migrations/index.js';

/** Also its PostgreSQL schema. */
export const LOG_CATALOG_SCHEMA = 'log_catalog';

/** What the catalog keeps of one event: its stream, revision and hash, and for an InvoiceOpened the assignment it names. */
export type CatalogEntry = Readonly<{ streamId: string; revision: number; hash: string; invoiceAssignmentId: string | null }>;

type CatalogRow = { stream_id: string; last_revision: number; last_hash: string; event_count: number; assignment_id: string | null };

const WRITE_CHUNK_ROWS = 2_000;

/**
 * The entry of a logged event as it is stored, without decoding it: the audit's catch-up must get past an event
 * no projector can decode (an unknown type, data edited into nonsense), since finding that event is its job.
 */
export function catalogEntryOf(recorded: LoggedEvent): CatalogEntry {
  const assignmentId = recorded.type === 'InvoiceOpened' && typeof recorded.data.assignmentId === 'string' ? recorded.data.assignmentId : null;
  return { streamId: recorded.streamId, revision: recorded.revision, hash: recorded.hash, invoiceAssignmentId: assignmentId };
}

/** Upserts one batch's entries, in checkpoint order, into the catalog's tables (`db` scoped to its schema). */
export async function applyCatalogEntries(db: Kysely<any>, entries: readonly CatalogEntry[]): Promise<void> {
  // One row per stream of the batch: its last event in checkpoint order is the head the log showed.
  const rows = new Map<string, CatalogRow>();
  for (const e of entries) {
    const row = rows.get(e.streamId) ?? { stream_id: e.streamId, last_revision: e.revision, last_hash: e.hash, event_count: 0, assignment_id: null };
    row.last_revision = e.revision;
    row.last_hash = e.hash;
    row.event_count += 1;
    row.assignment_id ??= e.invoiceAssignmentId;
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
}

/** As the running service's projection runner applies it: decoded events, the same rows. */
export const logCatalogProjector: Projector = {
  name: LOG_CATALOG_SCHEMA,
  migrations: LOG_CATALOG_MIGRATIONS,
  tables: [{ name: 'streams', orderBy: ['stream_id'] }],
  apply(db: Kysely<any>, events: readonly ProjectedEvent[]): Promise<void> {
    return applyCatalogEntries(
      db,
      events.map((e) => ({ streamId: e.streamId, revision: e.revision, hash: e.hash, invoiceAssignmentId: e.event.type === 'InvoiceOpened' ? e.event.data.assignmentId : null })),
    );
  },
};

/**
 * One batch of at most `batchSize` raw events after the catalog's checkpoint (not past `until`), applied with the
 * checkpoint inside `trx` (the caller holds the projection's lock). Shares the runner's checkpoint, so the
 * runner's projector and this catch-up take turns on one catalog. Returns how many events it applied.
 */
export async function catchUpCatalogIn(log: ProjectionLog, trx: Kysely<any>, options: Readonly<{ batchSize: number; until: LogPosition; nowMs: () => number }>): Promise<number> {
  const checkpointId = projectionCheckpointId(LOG_CATALOG_SCHEMA);
  const checkpoint = await log.loadCheckpointIn(trx, checkpointId);
  const recorded = (await log.readAllIn(trx, { after: checkpoint, maxCount: options.batchSize })).filter((e) => comparePositions(e.position, options.until) <= 0);
  if (recorded.length === 0) return 0;
  await applyCatalogEntries(trx.withSchema(LOG_CATALOG_SCHEMA), recorded.map(catalogEntryOf));
  const last = recorded[recorded.length - 1]!.position;
  invariant(comparePositions(last, checkpoint) > 0, 'the log catalog would move its checkpoint backwards');
  await log.saveCheckpointIn(trx, checkpointId, last, new Date(options.nowMs()));
  return recorded.length;
}
