// The asynchronous-commit pool for nonces and HTTP idempotency records: its commits skip the WAL flush wait, the main pool's do not, and its rows are seen at once.

import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openAsyncCommitDatabase, openDatabase, type OpenedDatabase } from '../../adapters/postgres/database.js';
import { createPostgresDatabase } from '../support/databases.js';

describe('openAsyncCommitDatabase [postgres]', () => {
  let main: OpenedDatabase<any>;
  let relaxed: OpenedDatabase<any>;

  beforeAll(async () => {
    const connectionString = await createPostgresDatabase('async_commit');
    main = await openDatabase({ engine: 'postgres', connectionString });
    relaxed = openAsyncCommitDatabase(connectionString);
  });

  afterAll(async () => {
    await relaxed?.close();
    await main?.close();
  });

  it('commits with synchronous_commit off, set by its own connections, while the main pool keeps the server setting', async () => {
    // The test cluster itself runs with synchronous_commit off, so look at where each session's value comes from.
    const setting = async (db: OpenedDatabase<any>['db']) =>
      (await sql<{ setting: string; source: string }>`SELECT setting, source FROM pg_settings WHERE name = 'synchronous_commit'`.execute(db)).rows[0]!;
    expect(await setting(relaxed.db)).toEqual({ setting: 'off', source: 'client' });
    expect((await setting(main.db)).source).not.toBe('client');
  });

  it('makes a committed row visible to the main pool as soon as the commit returns', async () => {
    await sql`CREATE TABLE IF NOT EXISTS async_commit_probe (id text PRIMARY KEY)`.execute(main.db);
    for (let i = 0; i < 20; i += 1) {
      await sql`INSERT INTO async_commit_probe (id) VALUES (${`row-${i}`})`.execute(relaxed.db);
      const seen = await sql<{ n: string }>`SELECT count(*)::text AS n FROM async_commit_probe`.execute(main.db);
      expect(Number(seen.rows[0]!.n)).toBe(i + 1);
    }
  });
});
