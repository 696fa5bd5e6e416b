// Runs the event-store contract against PGlite (embedded Postgres), plus what only a data folder can show: surviving a reopen.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openEventStore } from '../../adapters/event-store/open-event-store.js';
import { describeEventStoreContract, event } from './event-store.contract.js';

describeEventStoreContract({
  engine: 'pglite',
  parallelWriters: 8,
  appendsPerWriter: 10,
  open: async () => {
    const { store, db } = await openEventStore({ engine: 'pglite' });
    return { store, db, concurrentTransactions: false };
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
});
