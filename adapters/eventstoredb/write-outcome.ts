// Pure decision after EventStoreDB says an append succeeded: did this call's attempt write the events, or had another writer already (an idempotent success)?

import { sameEventContent } from '../event-store/hash-chain.js';
import { invariant } from '../../domain/errors.js';
import type { AppendResult, RecordedEvent } from '../../domain/ports/event-store.js';
import { EventIdConflictError } from '../../domain/ports/event-store-errors.js';
import type { NormalizedEvent } from './envelope.js';

/** An event read back with the writeId of the append attempt that wrote it (null: written without one). */
export type StoredEvent = Readonly<{ event: RecordedEvent; writeId: string | null }>;

/**
 * `readBack` is the stored events this batch's ids were found at: after a success, the revisions the
 * server's answer names; after a tail check, the tail's events with those ids. The server dedupes by
 * event id only, so a success proves neither that this call wrote them nor that the stored content is
 * this batch's: both are checked here, matching by id (a retry may list the ids in another order, as the
 * PostgreSQL store allows). Positions always come from what was read (the append's own answer carries
 * the commit position of the transaction, which need not be the last event's).
 */
export function decideWritten(streamId: string, batch: readonly NormalizedEvent[], readBack: readonly StoredEvent[], ownWriteIds: ReadonlySet<string>): AppendResult {
  invariant(readBack.length === batch.length, `append to ${streamId}: read back ${readBack.length} events for a batch of ${batch.length}`);
  const byId = new Map(readBack.map((e) => [e.event.eventId.toLowerCase(), e]));
  for (const mine of batch) {
    const stored = byId.get(mine.eventId);
    if (!stored) {
      const at = readBack.map((e) => e.event.revision).join(', ');
      throw new EventIdConflictError(streamId, mine.eventId, `the server answered the append with revisions ${at}, which do not hold this event`);
    }
    if (!sameEventContent(stored.event, mine)) throw new EventIdConflictError(streamId, mine.eventId, 'the id is already used by an event with different content');
  }
  const ours = readBack.filter((e) => e.writeId !== null && ownWriteIds.has(e.writeId)).length;
  // One append is atomic: its events share one writeId, so a mix means the read-back is not one append.
  invariant(ours === 0 || ours === readBack.length, `append to ${streamId}: the read-back mixes this call's events with another writer's`);
  const sorted = [...readBack].sort((x, y) => x.event.revision - y.event.revision);
  const first = sorted[0]!.event;
  const last = sorted[sorted.length - 1]!.event;
  return { status: ours > 0 ? 'appended' : 'duplicate', streamId, firstRevision: first.revision, lastRevision: last.revision, position: last.position };
}
