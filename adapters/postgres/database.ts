// Opens a kysely database on PostgreSQL (pg pool) or PGlite (data folder or memory) and migrates it.

import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { PGlite } from '@electric-sql/pglite';
import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import { migrateToLatest } from '../../projections/migrate.js';
import { PgliteSerialPool } from './pglite-pool.js';
import { EVENT_STORE_MIGRATIONS } from './migrations/index.js';

export type DatabaseTarget =
  | { engine: 'postgres'; connectionString: string; maxConnections?: number }
  | { engine: 'pglite'; dataDir?: string; sharedBuffersMb?: number };

export type OpenedDatabase<DB> = {
  db: Kysely<DB>;
  engine: DatabaseTarget['engine'];
  close: () => Promise<void>;
};

/** Default upper bound on pooled PostgreSQL connections. */
export const DEFAULT_MAX_CONNECTIONS = 20;

const INT8_OID = 20;

/** A first boot's initdb in its own process: bounded, so a stuck one fails the start instead of hanging it. */
export const PGLITE_INITDB_TIMEOUT_MS = 120_000;

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
  const startParams = pgliteStartParams(target.sharedBuffersMb);
  if (target.dataDir !== undefined && isFolderPath(target.dataDir)) await initPgliteDataDir(target.dataDir, startParams);
  // int8 as decimal strings, as pg returns them: amounts and positions must
  // never pass through a float.
  const pglite = await PGlite.create(target.dataDir ?? 'memory://', { startParams, parsers: { [INT8_OID]: (value: string) => value } });
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

/** PGlite's own start parameters, with shared_buffers when one is asked for (PostgreSQL's default is 128 MB, all of it WebAssembly heap here). */
function pgliteStartParams(sharedBuffersMb: number | undefined): string[] {
  return [...PGlite.defaultStartParams, ...(sharedBuffersMb === undefined ? [] : ['-c', `shared_buffers=${sharedBuffersMb}MB`])];
}

/** A plain folder path, not one of PGlite's memory://, idb:// or file:// forms. */
function isFolderPath(dataDir: string): boolean {
  return !dataDir.includes('://');
}

/**
 * On a new data folder, PGlite runs initdb inside the process in a second PGlite and an initdb
 * WebAssembly instance, each with a heap of its own: some 430 MB that stay resident until V8 next
 * collects, and about 80 MB that the allocator keeps after it does. Run there instead, in a
 * process that exits, the service starts as it does on every restart. The data folder it leaves
 * is the one PGlite would have made in-process.
 */
async function initPgliteDataDir(dataDir: string, startParams: readonly string[]): Promise<void> {
  if (existsSync(join(dataDir, 'PG_VERSION'))) return;
  const pgliteUrl = pathToFileURL(createRequire(import.meta.url).resolve('@electric-sql/pglite')).href;
  const script = 'const { PGlite } = await import(process.argv[1]); const pg = await PGlite.create(process.argv[2], { startParams: JSON.parse(process.argv[3]) }); await pg.close();';
  try {
    await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script, pgliteUrl, dataDir, JSON.stringify(startParams)], { timeout: PGLITE_INITDB_TIMEOUT_MS, killSignal: 'SIGKILL' });
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr?.trim();
    throw new Error(`PGlite could not initialise its data folder ${dataDir}${stderr ? `: ${stderr.slice(-2_000)}` : ''}; check that the folder is writable and not used by another process`, { cause: error });
  }
}

// Re-exported so the adapters' own tables (API keys, nonces, idempotency, escrow, replay jobs) keep migrating through this module.
export { migrateToLatest };

export async function migrateEventStore(db: Kysely<unknown>): Promise<void> {
  await migrateToLatest(db, EVENT_STORE_MIGRATIONS, 'event_store_migrations');
}
