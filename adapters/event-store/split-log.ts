// The split composition: the log behind the plain EventStore port (EventStoreDB), checkpoints and everything else in a SQL database.
//
// Why it is exactly-once without a transaction shared with the log: a projection batch is READ from the log
// store, then its read-model rows and its checkpoint are WRITTEN in one transaction of the SQL database. A crash
// before that commit loses both (the batch is read again), a crash after it keeps both. The checkpoint is the
// position of the last event the batch read, never arithmetic on positions (EventStoreDB's are byte offsets with
// gaps), and the log store reads only what is committed, in order: EventStoreDB's $all shows only committed
// events, and the SQL store never reads past its oldest open writer, so no later commit can land behind a
// checkpoint. Reactions outside that transaction (escrow, replay feeder, validator) save their checkpoint after
// their batch, here in SQL too, and are idempotent per event (keyed commands, upserts), as on the SQL log.

import { sql, type Kysely } from 'kysely';
import type { Migration } from 'kysely/migration';
import {
  LOG_START,
  type AppendOptions,
  type AppendResult,
  type ChainVerification,
  type EventStore,
  type LogPosition,
  type NewEvent,
  type ReadAllOptions,
  type ReadStreamOptions,
  type RecordedEvent,
  type StoredIdempotentResult,
} from '../../domain/ports/event-store.js';
import { EventStoreError } from '../../domain/ports/event-store-errors.js';
import { migrateToLatest } from '../../projections/migrate.js';
import type { LogBacklog, ProjectionLog } from '../../projections/ports/projection-log.js';
import type { LedgerStore } from './ledger-store.js';

/**
 * Events the backlog counts at most: /health and /metrics (unauthenticated, polled by load balancers) ask for every
 * projector's lag, and a projector stopped on a poison event lags for good, so each poll must stay one small read.
 */
export const MAX_BACKLOG_COUNTED_EVENTS = 100;

/** Positions are two unsigned 64-bit integers (EventStoreDB's commit/prepare, PostgreSQL's xid8/bigint): numeric(20) holds either exactly. */
const SPLIT_LOG_MIGRATIONS: Readonly<Record<string, Migration>> = {
  '0001_split_log_checkpoints': {
    async up(db: Kysely<any>): Promise<void> {
      await db.schema
        .createTable('split_log_checkpoints')
        .addColumn('subscription_id', 'text', (c) => c.primaryKey())
        .addColumn('transaction_id', sql`numeric(20, 0)`, (c) => c.notNull())
        .addColumn('global_position', sql`numeric(20, 0)`, (c) => c.notNull())
        .addColumn('updated_at', 'timestamptz', (c) => c.notNull())
        .execute();
    },
  },
};

export class SplitDatabaseHoldsLogError extends EventStoreError {
  override readonly name = 'SplitDatabaseHoldsLogError';
  constructor() {
    super(
      'SPLIT_DATABASE_HOLDS_A_LOG',
      'this database holds a SQL event log (an events table): with ESDB_URL the log lives on the cluster and this database must hold only ' +
        'read models and API tables. Give the split a fresh database (DATABASE_URL or another --data-dir), or unset ESDB_URL to run on this one\'s log',
    );
  }
}

export type SplitLogOptions = Readonly<{ nowMs: () => number; closeDatabase?: () => Promise<void> }>;

/**
 * The EventStore port delegated to `log` (no appendAtomically: the log store has no transaction to share, so
 * multi-stream commands take the one-append-per-stream path), every checkpoint in `db`, and the ProjectionLog
 * port over both. `db` holds the read models, the outbox, API keys, nonces, idempotency records, hold invoices
 * and replay jobs, exactly as with the SQL log; it holds no event.
 */
export class SplitLogStore implements EventStore, ProjectionLog {
  constructor(
    private readonly log: EventStore,
    readonly db: Kysely<any>,
    private readonly options: SplitLogOptions,
  ) {}

  /**
   * Creates the checkpoint table; call once before use. Refuses a database that holds a SQL log: its read models
   * stand at checkpoints this composition does not see (they live beside that log), so every projection would
   * replay the cluster's log from its start into rows that already count it.
   */
  async prepare(): Promise<void> {
    const held = await sql<{ found: boolean }>`SELECT to_regclass('events') IS NOT NULL AS found`.execute(this.db);
    if (held.rows[0]?.found) throw new SplitDatabaseHoldsLogError();
    await migrateToLatest(this.db, SPLIT_LOG_MIGRATIONS, 'split_log_migrations');
  }

  append(streamId: string, events: readonly NewEvent[], options: AppendOptions): Promise<AppendResult> {
    return this.log.append(streamId, events, options);
  }

  readStream(streamId: string, options?: ReadStreamOptions): Promise<RecordedEvent[]> {
    return this.log.readStream(streamId, options);
  }

  readAll(options?: ReadAllOptions): Promise<RecordedEvent[]> {
    return this.log.readAll(options);
  }

  headPosition(): Promise<LogPosition> {
    return this.log.headPosition();
  }

  loadCheckpoint(subscriptionId: string): Promise<LogPosition> {
    return this.loadCheckpointIn(this.db, subscriptionId);
  }

  saveCheckpoint(subscriptionId: string, position: LogPosition): Promise<void> {
    return this.saveCheckpointIn(this.db, subscriptionId, position, new Date(this.options.nowMs()));
  }

  lookupIdempotencyKey(key: string): Promise<StoredIdempotentResult | null> {
    return this.log.lookupIdempotencyKey(key);
  }

  verifyStream(streamId: string): Promise<ChainVerification> {
    return this.log.verifyStream(streamId);
  }

  verifyAll(): Promise<ChainVerification> {
    return this.log.verifyAll();
  }

  onAppended(listener: () => void): () => void {
    return this.log.onAppended(listener);
  }

  // The ProjectionLog port. The log is read from the log store whatever executor is handed in: the batch's
  // transaction is the SQL database's, and what makes the batch exactly-once is that its rows and the
  // checkpoint below commit in it, not where the events were read.

  readAllIn(_db: Kysely<any>, options: ReadAllOptions): Promise<RecordedEvent[]> {
    return this.log.readAll(options);
  }

  async loadCheckpointIn(db: Kysely<any>, subscriptionId: string): Promise<LogPosition> {
    const rows = await sql<{ transaction_id: string; global_position: string }>`
      SELECT transaction_id::text AS transaction_id, global_position::text AS global_position
      FROM split_log_checkpoints WHERE subscription_id = ${subscriptionId}`.execute(db);
    const row = rows.rows[0];
    return row ? { transactionId: BigInt(row.transaction_id), globalPosition: BigInt(row.global_position) } : LOG_START;
  }

  async saveCheckpointIn(db: Kysely<any>, subscriptionId: string, position: LogPosition, at: Date): Promise<void> {
    await sql`
      INSERT INTO split_log_checkpoints (subscription_id, transaction_id, global_position, updated_at)
      VALUES (${subscriptionId}, ${position.transactionId.toString()}::numeric, ${position.globalPosition.toString()}::numeric, ${at})
      ON CONFLICT (subscription_id) DO UPDATE
        SET transaction_id = EXCLUDED.transaction_id, global_position = EXCLUDED.global_position, updated_at = EXCLUDED.updated_at`.execute(db);
  }

  async deleteCheckpointIn(db: Kysely<any>, subscriptionId: string): Promise<void> {
    await sql`DELETE FROM split_log_checkpoints WHERE subscription_id = ${subscriptionId}`.execute(db);
  }

  /**
   * Counted by reading (the port has no count), at most MAX_BACKLOG_COUNTED_EVENTS: a subscription further
   * behind reports that many. The oldest event's time is exact either way: it is the first one read.
   */
  async backlogIn(_db: Kysely<any>, after: LogPosition): Promise<LogBacklog> {
    const page = await this.log.readAll({ after, maxCount: MAX_BACKLOG_COUNTED_EVENTS });
    return { events: page.length, oldestRecordedAtMs: page[0]?.recordedAtMs ?? null };
  }

  /** Closes the log store, then the SQL database. */
  async close(): Promise<void> {
    try {
      await this.log.close();
    } finally {
      await this.options.closeDatabase?.();
    }
  }
}

/** Makes the split store over an opened log and SQL database, and creates its checkpoint table. */
export async function openSplitLog(log: EventStore, db: Kysely<any>, options: SplitLogOptions): Promise<LedgerStore> {
  const store = new SplitLogStore(log, db, options);
  try {
    await store.prepare();
  } catch (error) {
    await store.close().catch(() => {});
    throw error;
  }
  return store;
}
