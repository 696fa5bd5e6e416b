// Opens a kysely database on PostgreSQL (pg pool) or PGlite (data folder or memory) and migrates it.

import { PGlite } from '@electric-sql/pglite';
import { Kysely, PostgresDialect } from 'kysely';
import { Migrator, type Migration } from 'kysely/migration';
import pg from 'pg';
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

/** Applies every pending migration of one migration set; throws with the failing migration's name. */
export async function migrateToLatest(
  db: Kysely<any>,
  migrations: Readonly<Record<string, Migration>>,
  migrationTableName: string,
  migrationTableSchema?: string,
): Promise<void> {
  const migrator = new Migrator({
    db,
    provider: { getMigrations: async () => ({ ...migrations }) },
    migrationTableName,
    migrationLockTableName: `${migrationTableName}_lock`,
    ...(migrationTableSchema ? { migrationTableSchema } : {}),
  });
  const { error, results } = await migrator.migrateToLatest();
  if (error) {
    const failed = results?.find((r) => r.status === 'Error')?.migrationName ?? 'unknown';
    throw new Error(`migration ${failed} failed: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
}

export async function migrateEventStore(db: Kysely<unknown>): Promise<void> {
  await migrateToLatest(db, EVENT_STORE_MIGRATIONS, 'event_store_migrations');
}
