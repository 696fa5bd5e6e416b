// A pg-compatible pool over one PGlite instance, so kysely's PostgresDialect drives both engines with one SQL path.

import type { PGlite } from '@electric-sql/pglite';
import type { PostgresPool, PostgresPoolClient, PostgresQueryResult } from 'kysely';

/**
 * PGlite is a single connection. Kysely holds a connection for the whole of a
 * transaction, so handing out the one connection under a FIFO mutex gives the
 * same isolation a pg pool of size one would: a second transaction waits until
 * the first commits or rolls back, instead of interleaving inside it.
 */
export class PgliteSerialPool implements PostgresPool {
  /**
   * kysely (0.29+) reads a pool's `options` to open a separate control client that cancels a running
   * query. There is no second connection to a PGlite instance and no `Client` here, so kysely falls back
   * to its pool path; the options are empty.
   */
  readonly options: object = {};
  private tail: Promise<void> = Promise.resolve();
  private ended = false;

  constructor(private readonly db: PGlite) {}

  async connect(): Promise<PostgresPoolClient> {
    if (this.ended) throw new Error('PGlite pool has been ended');
    let release!: () => void;
    const previous = this.tail;
    this.tail = new Promise<void>((resolve) => (release = resolve));
    await previous;
    const db = this.db;
    let released = false;
    const client = {
      async query<R>(sqlText: string, parameters: ReadonlyArray<unknown>): Promise<PostgresQueryResult<R>> {
        const result = await db.query<R>(sqlText, [...parameters]);
        return {
          command: commandOf(sqlText),
          rowCount: result.affectedRows ?? result.rows.length,
          rows: result.rows,
        };
      },
      release(): void {
        if (released) return;
        released = true;
        release();
      },
    };
    return client as unknown as PostgresPoolClient;
  }

  async end(): Promise<void> {
    this.ended = true;
    await this.tail;
  }
}

/** The statement keyword kysely uses to decide whether rowCount means "affected rows". */
function commandOf(sqlText: string): PostgresQueryResult<unknown>['command'] {
  const keyword = /^\s*(\w+)/.exec(sqlText)?.[1]?.toUpperCase();
  switch (keyword) {
    case 'INSERT':
    case 'UPDATE':
    case 'DELETE':
    case 'MERGE':
      return keyword;
    default:
      return 'SELECT';
  }
}
