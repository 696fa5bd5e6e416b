// Runs the event-store contract against PGlite (embedded Postgres), plus what only a data folder can show: surviving a reopen.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import { describe, expect, it } from 'vitest';
import { openEventStore } from '../../adapters/event-store/open-event-store.js';
import { openDatabase } from '../../adapters/postgres/database.js';
import { describeEventStoreContract, event } from './event-store.contract.js';

describeEventStoreContract({
  engine: 'pglite',
  parallelWriters: 8,
  appendsPerWriter: 10,
  sql: true,
  open: async () => {
    const { store, db } = await openEventStore({ engine: 'pglite' });
    return { store, sql: { store, db }, concurrentTransactions: false };
  },
});

describe('PGlite in a data folder', () => {
  it('keeps every event, its chain and the checkpoints across a close and reopen', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'trainledger-pglite-'));
    try {
      const first = await openEventStore({ engine: 'pglite', dataDir });
      await first.store.append('run-persisted', [event('A'), event('B')], { expectedRevision: 'no_stream' });
      const head = await first.store.headPosition();
      await first.store.saveCheckpoint('persisted-sub', head);
      await first.store.close();

      const second = await openEventStore({ engine: 'pglite', dataDir });
      expect((await second.store.readStream('run-persisted')).map((e) => e.type)).toEqual(['A', 'B']);
      expect(await second.store.loadCheckpoint('persisted-sub')).toEqual(head);
      expect(await second.store.verifyAll()).toMatchObject({ ok: true, eventsChecked: 2 });
      const next = await second.store.append('run-persisted', [event('C')], { expectedRevision: 1 });
      expect(next.firstRevision).toBe(2);
      await second.store.close();
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('runs with the shared_buffers it is given, and with PostgreSQL\'s default when given none; a new folder is initialised outside the process', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'trainledger-pglite-'));
    try {
      const sized = await openDatabase<any>({ engine: 'pglite', dataDir, sharedBuffersMb: 8 });
      expect((await sql<{ shared_buffers: string }>`SHOW shared_buffers`.execute(sized.db)).rows[0]!.shared_buffers).toBe('8MB');
      await sized.close();
      const plain = await openDatabase<any>({ engine: 'pglite', dataDir });
      expect((await sql<{ shared_buffers: string }>`SHOW shared_buffers`.execute(plain.db)).rows[0]!.shared_buffers).toBe('128MB');
      await plain.close();
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('says which folder it could not initialise, and what to check', async () => {
    const notAFolder = join(mkdtempSync(join(tmpdir(), 'trainledger-pglite-')), 'file');
    writeFileSync(notAFolder, 'not a data folder');
    await expect(openDatabase({ engine: 'pglite', dataDir: join(notAFolder, 'pglite') })).rejects.toThrow(/could not initialise its data folder .*file\/pglite.*check that the folder is writable/s);
  });
});
