// The projector contract: a named read model with its own schema, migrations and a deterministic batch apply.

import type { Kysely } from 'kysely';
import type { Migration } from 'kysely/migration';
import type { DomainEvent } from '../domain/events.js';
import type { LogPosition } from '../domain/ports/event-store.js';

/** A logged event decoded for projectors: amounts are bigint again. */
export type ProjectedEvent = Readonly<{
  streamId: string;
  revision: number;
  position: LogPosition;
  /** The event's chain hash as stored: the log catalog keeps each stream's last one as a second witness of its head. */
  hash: string;
  event: DomainEvent;
}>;

/** Names a table and the columns that order it uniquely, so checksums compare row for row. */
export type ProjectionTable = Readonly<{ name: string; orderBy: readonly string[] }>;

export interface Projector {
  /** Also the PostgreSQL schema its live tables live in; a rebuild builds `<name>_rebuild` and swaps it in. */
  readonly name: string;
  /** Ordered migrations that create its tables; they run inside its schema (db.withSchema). */
  readonly migrations: Readonly<Record<string, Migration>>;
  readonly tables: readonly ProjectionTable[];
  /**
   * Applies one batch in checkpoint order inside the runner's transaction, on a
   * kysely instance already scoped to the projector's schema. It must be a pure
   * function of the events and the tables: no clock, no random ids, no serial
   * keys, so a rebuild gives identical rows. A violated invariant throws; the
   * transaction then rolls back and nothing of the batch is stored.
   */
  apply(db: Kysely<any>, events: readonly ProjectedEvent[]): Promise<void>;
}
