// The typed kysely schema of the event-store tables (read-model tables live in projections/).

import type { ColumnType, Generated } from 'kysely';

/** int8 and xid8 come back as decimal strings from both pg and PGlite (see database.ts). */
type Int8 = ColumnType<string, string | bigint, string | bigint>;
type Xid8 = ColumnType<string, never, never>;

export interface EventsTable {
  global_position: ColumnType<string, never, never>;
  transaction_id: Xid8;
  stream_id: string;
  stream_revision: Int8;
  event_id: string;
  event_type: string;
  schema_version: number;
  data: ColumnType<unknown, string, never>;
  metadata: ColumnType<unknown, string, never>;
  recorded_at: ColumnType<Date, Date, never>;
  prev_hash: string;
  hash: string;
}

export interface StreamsTable {
  stream_id: string;
  revision: Int8;
  head_hash: string;
  updated_at: ColumnType<Date, Date, Date>;
}

export interface SubscriptionCheckpointsTable {
  subscription_id: string;
  transaction_id: ColumnType<string, string, string>;
  global_position: Int8;
  updated_at: ColumnType<Date, Date, Date>;
}

export interface IdempotencyKeysTable {
  idempotency_key: string;
  request_digest: string;
  stream_id: string;
  result: ColumnType<unknown, string, never>;
  created_at: ColumnType<Date, Date, never>;
}

export interface EventStoreTables {
  events: EventsTable;
  streams: StreamsTable;
  subscription_checkpoints: SubscriptionCheckpointsTable;
  idempotency_keys: IdempotencyKeysTable;
}

export type { Generated };
