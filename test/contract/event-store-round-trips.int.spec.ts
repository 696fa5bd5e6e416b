// Counts what an append sends to the database, at the driver: one statement when the stream head is known, on both engines.

import { randomUUID } from 'node:crypto';
import { PGlite } from '@electric-sql/pglite';
import { Kysely, PostgresDialect, type PostgresPool, type PostgresPoolClient } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrateEventStore } from '../../adapters/postgres/database.js';
import { PgliteSerialPool } from '../../adapters/postgres/pglite-pool.js';
import { PostgresEventStore } from '../../adapters/postgres/postgres-event-store.js';
import type { EventStoreTables } from '../../adapters/postgres/schema.js';
import { createPostgresDatabase } from '../support/databases.js';
import { event } from './event-store.contract.js';

/**
 * A pool that records every statement its clients send. Each `client.query` is one exchange with the
 * server (pg sends parse, bind, execute and sync together and waits once; PGlite runs one query per call).
 */
class CountingPool implements PostgresPool {
  readonly statements: string[] = [];
  constructor(private readonly inner: PostgresPool) {}

  /** kysely builds its query-cancelling control client from these: the inner pool's own. */
  get options(): object {
    return this.inner.options;
  }

  async connect(): Promise<PostgresPoolClient> {
    const client = await this.inner.connect();
    const statements = this.statements;
    return {
      query: ((text: string, parameters: readonly unknown[]) => {
        statements.push(text.replace(/\s+/g, ' ').trim());
        return client.query(text, parameters);
      }) as PostgresPoolClient['query'],
      release: () => client.release(),
    };
  }

  async end(): Promise<void> {
    await this.inner.end();
  }
}

type Engine = { name: string; open: () => Promise<{ pool: CountingPool; db: Kysely<EventStoreTables>; close: () => Promise<void> }> };

const engines: Engine[] = [
  {
    name: 'postgres',
    open: async () => {
      const pool = new CountingPool(new pg.Pool({ connectionString: await createPostgresDatabase('round_trips'), max: 4 }) as unknown as PostgresPool);
      const db = new Kysely<EventStoreTables>({ dialect: new PostgresDialect({ pool }) });
      return { pool, db, close: () => db.destroy() };
    },
  },
  {
    name: 'pglite',
    open: async () => {
      const pglite = await PGlite.create('memory://', { parsers: { 20: (value: string) => value } });
      const pool = new CountingPool(new PgliteSerialPool(pglite));
      const db = new Kysely<EventStoreTables>({ dialect: new PostgresDialect({ pool }) });
      return {
        pool,
        db,
        close: async () => {
          await db.destroy();
          await pglite.close();
        },
      };
    },
  },
];

describe.each(engines)('round trips per append [$name]', (engine) => {
  let opened: Awaited<ReturnType<Engine['open']>>;
  let store: PostgresEventStore;
  const counted = async <T>(work: () => Promise<T>): Promise<{ value: T; statements: string[] }> => {
    const from = opened.pool.statements.length;
    const value = await work();
    return { value, statements: opened.pool.statements.slice(from) };
  };

  beforeAll(async () => {
    opened = await engine.open();
    await migrateEventStore(opened.db as Kysely<unknown>);
    store = new PostgresEventStore(opened.db, { nowMs: Date.now });
  });
  afterAll(async () => {
    await opened?.close();
  });

  it('sends one statement, no BEGIN or COMMIT, for a new stream and for each append at the known head', async () => {
    const streamId = `rt-${randomUUID()}`;
    const created = await counted(() => store.append(streamId, [event('A')], { expectedRevision: 'no_stream' }));
    expect(created.statements).toHaveLength(1);
    expect(created.statements[0]).toMatch(/^SELECT appended_position, appended_transaction FROM event_store_append_at_known_head\(/);
    for (let revision = 0; revision < 5; revision += 1) {
      const next = await counted(() => store.append(streamId, [event('N', { revision })], { expectedRevision: revision }));
      expect(next.statements).toHaveLength(1);
      expect(next.statements[0]).toMatch(/^SELECT appended_position, appended_transaction FROM event_store_append_at_known_head\(/);
      expect(next.value).toMatchObject({ status: 'appended', firstRevision: revision + 1 });
    }
    const batch = await counted(() => store.append(streamId, Array.from({ length: 100 }, (_, n) => event('B', { n })), { expectedRevision: 5, idempotency: { key: `k-${randomUUID()}`, requestDigest: 'a'.repeat(64) } }));
    expect(batch.statements).toHaveLength(1);
    expect(batch.value).toMatchObject({ firstRevision: 6, lastRevision: 105 });
    expect(await store.verifyStream(streamId)).toEqual({ ok: true, streamsChecked: 1, eventsChecked: 106 });
  });

  it('after a read of the stream, a command append is one statement; with no known head it is the transaction', async () => {
    const streamId = `rt-${randomUUID()}`;
    await new PostgresEventStore(opened.db, { nowMs: Date.now }).append(streamId, [event('ByAnother')], { expectedRevision: 'no_stream' });
    const cold = await counted(() => store.append(streamId, [event('Cold')], { expectedRevision: 0 }));
    // begin; idempotency-free lock of the head with the duplicate check; insert and move; commit.
    expect(cold.statements.map((s) => s.split(' ')[0]!.toLowerCase())).toEqual(['begin', 'select', 'with', 'commit']);
    await new PostgresEventStore(opened.db, { nowMs: Date.now }).append(streamId, [event('ByAnother')], { expectedRevision: 'any' });
    const read = await store.readStream(streamId, { direction: 'backwards', maxCount: 1 });
    const warm = await counted(() => store.append(streamId, [event('Warm')], { expectedRevision: read[0]!.revision }));
    expect(warm.statements).toHaveLength(1);
  });
});
