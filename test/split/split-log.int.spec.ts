// The split store's own promises: nothing assumes position + 1 (sparse positions near 2^64), checkpoints are exact u64 pairs in SQL, the backlog is counted by reading.

import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import type { LedgerStore } from '../../adapters/event-store/ledger-store.js';
import { openEventStore, openSplitStore } from '../../adapters/event-store/open-event-store.js';
import { MAX_BACKLOG_COUNTED_EVENTS, openSplitLog } from '../../adapters/event-store/split-log.js';
import { comparePositions, LOG_START, type EventStore, type LogPosition, type RecordedEvent } from '../../domain/ports/event-store.js';
import { checksumTables } from '../../projections/checksum.js';
import { ALL_PROJECTORS } from '../../projections/index.js';
import { projectionCheckpointId, ProjectionRunner } from '../../projections/runner.js';
import { appendHistory, generateHistory } from '../projections/history.js';
import { portOnly, SQL_SPLIT_LOG } from '../support/split-logs.js';

/** Spreads positions 2^52 apart, plus an offset, so they are sparse and above 2^60, as EventStoreDB's byte offsets are sparse. */
const SPREAD = 1n << 52n;
const OFFSET = 12_345n;
const spread = (p: LogPosition): LogPosition => ({ transactionId: p.transactionId * SPREAD + OFFSET, globalPosition: p.globalPosition * SPREAD + OFFSET });
const unspread = (p: LogPosition): LogPosition =>
  comparePositions(p, LOG_START) === 0 ? LOG_START : { transactionId: (p.transactionId - OFFSET) / SPREAD, globalPosition: (p.globalPosition - OFFSET) / SPREAD };

/** The same log with sparse positions: order kept, and any "position + 1" read would land between two events and lose one. */
function sparsePositions(log: EventStore): EventStore {
  const out = (e: RecordedEvent): RecordedEvent => ({ ...e, position: spread(e.position) });
  return {
    ...log,
    append: async (streamId, events, options) => {
      const result = await log.append(streamId, events, options);
      return { ...result, position: spread(result.position) };
    },
    readStream: async (streamId, options) => (await log.readStream(streamId, options)).map(out),
    readAll: async (options = {}) => (await log.readAll({ ...options, ...(options.after ? { after: unspread(options.after) } : {}) })).map(out),
    headPosition: async () => spread(await log.headPosition()),
  };
}

const opened: LedgerStore[] = [];
afterEach(async () => {
  for (const store of opened.splice(0)) await store.close();
});

async function split(wrap: (log: EventStore) => EventStore = (log) => log): Promise<LedgerStore> {
  const { store } = await openSplitStore(wrap(await SQL_SPLIT_LOG.open()), { engine: 'pglite' });
  opened.push(store);
  return store;
}

describe('the split store', () => {
  it('projects a log with sparse positions above 2^60 into the same tables as a dense one, checkpointing the last position read', async () => {
    const history = generateHistory(7, { runs: 2, assignments: 40 });
    const dense = await split();
    const sparse = await split(sparsePositions);
    await appendHistory(dense, history);
    await appendHistory(sparse, history);
    for (const store of [dense, sparse]) {
      const runner = new ProjectionRunner({ store, projectors: ALL_PROJECTORS, batchSize: 7 });
      await runner.prepare();
      await runner.catchUp();
    }
    for (const projector of ALL_PROJECTORS) expect(await checksumTables(sparse.db, projector), projector.name).toEqual(await checksumTables(dense.db, projector));
    const head = await sparse.headPosition();
    expect(head.transactionId).toBeGreaterThan(1n << 60n);
    for (const projector of ALL_PROJECTORS) expect(await sparse.loadCheckpointIn(sparse.db, projectionCheckpointId(projector.name))).toEqual(head);
  });

  it('keeps checkpoints as exact unsigned 64-bit pairs, forgets them on delete, and starts a subscription it never saw at the log start', async () => {
    const store = await split();
    const max = (1n << 64n) - 1n;
    await store.saveCheckpoint('edge', { transactionId: max, globalPosition: max - 1n });
    expect(await store.loadCheckpoint('edge')).toEqual({ transactionId: max, globalPosition: max - 1n });
    await store.deleteCheckpointIn(store.db, 'edge');
    expect(await store.loadCheckpoint('edge')).toEqual(LOG_START);
    expect(await store.loadCheckpoint('never-saved')).toEqual(LOG_START);
  });

  it('counts the backlog after a checkpoint by reading the log, with the oldest unread event\'s time', async () => {
    const store = await split();
    const append = (n: number) => store.append(`s-${randomUUID()}`, Array.from({ length: n }, () => ({ eventId: randomUUID(), type: 'Noted', data: {} })), { expectedRevision: 'no_stream' });
    const first = await append(3);
    await append(2);
    const all = await store.readAll({ maxCount: 100 });
    expect(await store.backlogIn(store.db, LOG_START)).toEqual({ events: 5, oldestRecordedAtMs: all[0]!.recordedAtMs });
    expect(await store.backlogIn(store.db, first.position)).toEqual({ events: 2, oldestRecordedAtMs: all[3]!.recordedAtMs });
    expect(await store.backlogIn(store.db, all[4]!.position)).toEqual({ events: 0, oldestRecordedAtMs: null });
    // Further behind than the count's bound, a poll still reads one small page: the count saturates there.
    for (let i = 0; i < 3; i += 1) await append(50);
    expect(await store.backlogIn(store.db, LOG_START)).toEqual({ events: MAX_BACKLOG_COUNTED_EVENTS, oldestRecordedAtMs: all[0]!.recordedAtMs });
  });

  it('refuses a database that holds a SQL log (SPLIT_DATABASE_HOLDS_A_LOG), rather than replay the cluster\'s log into read models that already count one', async () => {
    const sqlLog = await openEventStore({ engine: 'pglite' });
    try {
      await expect(openSplitLog(portOnly((await openEventStore({ engine: 'pglite' })).store), sqlLog.db, { nowMs: Date.now })).rejects.toMatchObject({ code: 'SPLIT_DATABASE_HOLDS_A_LOG' });
    } finally {
      await sqlLog.store.close();
    }
  });
});
