// The projection-log port: the event log as the projection runner and a rebuild read it, inside the read models' own transactions.

import type { Kysely } from 'kysely';
import type { EventStore, LogPosition, ReadAllOptions, RecordedEvent } from '../../domain/ports/event-store.js';

/**
 * A logged event as projectors read it: what decoding and applying need (and what names a failing
 * event), its own hash (the log catalog keeps each stream's last), without the previous hash,
 * metadata and time the audit's integrity part reads. A narrower row is
 * less for the database to send and for JavaScript to parse on every batch of a rebuild.
 */
export type LoggedEvent = Pick<RecordedEvent, 'streamId' | 'revision' | 'position' | 'eventId' | 'type' | 'data' | 'hash'>;

/** How far a subscription trails the log: the events a reader may see after its checkpoint, and the oldest one's time. */
export type LogBacklog = Readonly<{ events: number; oldestRecordedAtMs: number | null }>;

/**
 * A log kept in the same database as the read models (PostgreSQL, PGlite), so that a batch's rows and its
 * checkpoint commit in one transaction: that is what makes a projection exactly-once with no dedupe table,
 * and why this port is not the plain EventStore (EventStoreDB has no such transaction to share).
 *
 * Every `...In` method runs on the executor it is handed (the database, or a transaction the caller
 * holds), never on a connection of its own: single-connection PGlite would wait on itself, and a read
 * outside the batch's transaction could checkpoint past what the batch saw.
 */
export interface ProjectionLog extends Pick<EventStore, 'onAppended'> {
  /** The database holding the log and the read models' schemas; projectors write through it. */
  readonly db: Kysely<any>;
  /** Committed events after `options.after` in checkpoint order, never past the oldest in-progress writer. */
  readAllIn(db: Kysely<any>, options: ReadAllOptions): Promise<LoggedEvent[]>;
  /** A subscription's checkpoint; LOG_START when it has none. */
  loadCheckpointIn(db: Kysely<any>, subscriptionId: string): Promise<LogPosition>;
  /** Sets a subscription's checkpoint, recording `at` as when it moved. */
  saveCheckpointIn(db: Kysely<any>, subscriptionId: string, position: LogPosition, at: Date): Promise<void>;
  /** Forgets a subscription's checkpoint (a rebuild's scratch schema, before and after it). */
  deleteCheckpointIn(db: Kysely<any>, subscriptionId: string): Promise<void>;
  /** What a reader may see now after `after` (see LogBacklog). */
  backlogIn(db: Kysely<any>, after: LogPosition): Promise<LogBacklog>;
}
