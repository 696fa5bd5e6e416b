// Composition helper: opens the configured database, migrates it and returns the event store on it.

import { openDatabase, migrateEventStore, type DatabaseTarget } from '../postgres/database.js';
import { PostgresEventStore } from '../postgres/postgres-event-store.js';
import type { EventStoreTables } from '../postgres/schema.js';
import type { Kysely } from 'kysely';

export type OpenedEventStore = { store: PostgresEventStore; db: Kysely<EventStoreTables>; engine: DatabaseTarget['engine'] };

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
