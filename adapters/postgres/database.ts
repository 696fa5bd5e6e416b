// Opens a kysely database on PostgreSQL (pg pool) or PGlite (data folder or memory) and migrates it.

import { PGlite } from '@electric-sql/pglite';
import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import { migrateToLatest } from '../../projections/migrate.js';
import { PgliteSerialPool } from './pglite-pool.js';
import { EVENT_STORE_MIGRATIONS } from './migrations/index.js';

export type DatabaseTarget =
  | { engine: 'postgres'; connectionString: string; maxConnections?: number }
  | { engine: 'pglite'; dataDir?: string };

export type OpenedDatabase<DB> = {
  db: Kysely<DB>;
  engine: DatabaseTarget['engine'];
  close: () => Promise<void>;
};

/** Default upper bound on pooled PostgreSQL connections. */
export const DEFAULT_MAX_CONNECTIONS = 20;

const INT8_OID = 20;

export async function openDatabase<DB>(target: DatabaseTarget): Promise<OpenedDatabase<DB>> {
  if (target.engine === 'postgres') {
    const pool = new pg.Pool({
      connectionString: target.connectionString,
      max: target.maxConnections ?? DEFAULT_MAX_CONNECTIONS,
    });
    // A connection the server ends (a restart, pg_terminate_backend, a network cut) must fail the query
    // that uses it, never the process: pg emits such errors as events, which are fatal when nobody listens.
    pool.on('error', () => {});
    pool.on('connect', (client) => client.on('error', () => {}));
    const db = new Kysely<DB>({ dialect: new PostgresDialect({ pool }) });
    return { db, engine: 'postgres', close: () => db.destroy() };
  }
  // int8 as decimal strings, as pg returns them: amounts and positions must
  // never pass through a float.
  const pglite = await PGlite.create(target.dataDir ?? 'memory://', { parsers: { [INT8_OID]: (value: string) => value } });
  const db = new Kysely<DB>({ dialect: new PostgresDialect({ pool: new PgliteSerialPool(pglite) }) });
  return {
    db,
    engine: 'pglite',
    close: async () => {
      await db.destroy();
      await pglite.close();
    },
  };
}

/** Connections in the asynchronous-commit pool: it carries only small single-row statements. */
export const ASYNC_COMMIT_MAX_CONNECTIONS = 8;

/**
 * A small second pool on the same PostgreSQL database whose commits return before their WAL is
 * flushed (synchronous_commit=off), for bookkeeping rows that a crash may lose without harm:
 * single-use nonces and HTTP idempotency records. It is sound because WAL is flushed in order, so
 * the durable commit of the events a request appends also makes every earlier commit durable (the
 * nonce and the in-flight claim); only a record written after the append can be lost, and then the
 * command-level idempotency key still returns the original events on a retry. Visibility is not
 * affected: a row is seen by every other connection as soon as its commit returns.
 */
export function openAsyncCommitDatabase<DB>(connectionString: string, maxConnections = ASYNC_COMMIT_MAX_CONNECTIONS): OpenedDatabase<DB> {
  const pool = new pg.Pool({ connectionString, max: maxConnections, options: '-c synchronous_commit=off' });
  pool.on('error', () => {});
  pool.on('connect', (client) => client.on('error', () => {}));
  const db = new Kysely<DB>({ dialect: new PostgresDialect({ pool }) });
  return { db, engine: 'postgres', close: () => db.destroy() };
}

// Re-exported so the adapters' own tables (API keys, nonces, idempotency, escrow, replay jobs) keep migrating through this module.
export { migrateToLatest };

export async function migrateEventStore(db: Kysely<unknown>): Promise<void> {
  await migrateToLatest(db, EVENT_STORE_MIGRATIONS, 'event_store_migrations');
}
