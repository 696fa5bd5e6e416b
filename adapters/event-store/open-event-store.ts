// Composition helper: opens the configured database, migrates it and returns the event store on it; or the split store over a given log.

import { openDatabase, migrateEventStore, type DatabaseTarget } from '../postgres/database.js';
import { PostgresEventStore } from '../postgres/postgres-event-store.js';
import type { EventStoreTables } from '../postgres/schema.js';
import type { Kysely } from 'kysely';
import type { EventStore } from '../../domain/ports/event-store.js';
import type { LedgerStore } from './ledger-store.js';
import { openSplitLog } from './split-log.js';

export type OpenedEventStore = { store: PostgresEventStore; db: Kysely<EventStoreTables>; engine: DatabaseTarget['engine'] };

export type OpenedLedgerStore = { store: LedgerStore; db: Kysely<any>; engine: DatabaseTarget['engine'] };

export async function openEventStore(target: DatabaseTarget, nowMs: () => number = Date.now): Promise<OpenedEventStore> {
  const opened = await openDatabase<EventStoreTables>(target);
  try {
    await migrateEventStore(opened.db as Kysely<unknown>);
  } catch (error) {
    await opened.close();
    throw error;
  }
  return { store: new PostgresEventStore(opened.db, { nowMs }, opened.close), db: opened.db, engine: opened.engine };
}

/**
 * The split composition: `log` (opened already, EventStoreDB in production) as the event log, and `target`
 * as the database of everything else (read models, outbox, API tables, replay jobs, checkpoints). The
 * database gets no event tables. Closing the store closes both; a database that fails to open closes the log.
 */
export async function openSplitStore(log: EventStore, target: DatabaseTarget, nowMs: () => number = Date.now): Promise<OpenedLedgerStore> {
  let opened;
  try {
    opened = await openDatabase<unknown>(target);
  } catch (error) {
    await log.close().catch(() => {});
    throw error;
  }
  const store = await openSplitLog(log, opened.db as Kysely<any>, { nowMs, closeDatabase: opened.close });
  return { store, db: opened.db as Kysely<any>, engine: opened.engine };
}
