// The event-store contract: one suite that every EventStore adapter must pass, run once per adapter.

import { randomUUID } from 'node:crypto';
import { sql, type Kysely } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  comparePositions,
  LOG_START,
  type EventStore,
  type NewEvent,
  type RecordedEvent,
} from '../../domain/ports/event-store.js';
import { WrongExpectedRevisionError } from '../../domain/ports/event-store-errors.js';
import { CatchUpSubscription } from '../../adapters/event-store/catch-up-subscription.js';
import type { PostgresEventStore } from '../../adapters/postgres/postgres-event-store.js';

export type EventStoreUnderTest = {
  store: PostgresEventStore;
  db: Kysely<any>;
  /** Whether two transactions can be open at once (a server yes, single-connection PGlite no). */
  concurrentTransactions: boolean;
};

export type EventStoreContractOptions = {
  engine: string;
  open: () => Promise<EventStoreUnderTest>;
  parallelWriters: number;
  appendsPerWriter: number;
};

export function event(type = 'Tested', data: Record<string, unknown> = {}): NewEvent {
  return { eventId: randomUUID(), type, data: data as NewEvent['data'] };
}

function uniqueStream(prefix = 'contract'): string {
  return `${prefix}-${randomUUID()}`;
}

async function expectCode(promise: Promise<unknown>, code: string): Promise<unknown> {
  const error = await promise.then(
    () => {
      throw new Error(`expected the call to fail with ${code}, but it succeeded`);
    },
    (e: unknown) => e,
  );
  expect(error).toMatchObject({ code });
  return error;
}

export function describeEventStoreContract(options: EventStoreContractOptions): void {
  describe(`event store contract [${options.engine}]`, () => {
    let subject: EventStoreUnderTest;
    let store: EventStore;

    beforeAll(async () => {
      subject = await options.open();
      store = subject.store;
    });
    afterAll(async () => {
      await subject?.store.close();
    });

    describe('appends and expected revisions', () => {
      it('appends to a new stream with gapless revisions from 0', async () => {
        const streamId = uniqueStream();
        const first = await store.append(streamId, [event(), event()], { expectedRevision: 'no_stream' });
        expect(first).toMatchObject({ status: 'appended', firstRevision: 0, lastRevision: 1 });
        const second = await store.append(streamId, [event()], { expectedRevision: 1 });
        expect(second).toMatchObject({ status: 'appended', firstRevision: 2, lastRevision: 2 });
        const revisions = (await store.readStream(streamId)).map((e) => e.revision);
        expect(revisions).toEqual([0, 1, 2]);
      });

      it('refuses each stale or impossible expectation with a typed error and writes nothing', async () => {
        const streamId = uniqueStream();
        await expectCode(store.append(streamId, [event()], { expectedRevision: 'stream_exists' }), 'WRONG_EXPECTED_REVISION');
        await expectCode(store.append(streamId, [event()], { expectedRevision: 0 }), 'WRONG_EXPECTED_REVISION');
        await store.append(streamId, [event()], { expectedRevision: 'no_stream' });
        const error = await expectCode(store.append(streamId, [event()], { expectedRevision: 'no_stream' }), 'WRONG_EXPECTED_REVISION');
        expect(error).toBeInstanceOf(WrongExpectedRevisionError);
        expect(error).toMatchObject({ actual: 0, expected: 'no_stream' });
        await store.append(streamId, [event()], { expectedRevision: 0 });
        await expectCode(store.append(streamId, [event()], { expectedRevision: 0 }), 'WRONG_EXPECTED_REVISION');
        expect(await store.readStream(streamId)).toHaveLength(2);
        await store.append(streamId, [event()], { expectedRevision: 'stream_exists' });
        await store.append(streamId, [event()], { expectedRevision: 'any' });
        expect(await store.readStream(streamId)).toHaveLength(4);
      });

      it('makes a multi-event append atomic: a failure in its last event leaves no trace', async () => {
        const streamId = uniqueStream();
        // jsonb refuses a NUL character, so the database fails on the second row.
        const poisoned = event('Poisoned', { text: 'nul \u0000 here' });
        await expect(store.append(streamId, [event(), poisoned], { expectedRevision: 'no_stream' })).rejects.toThrow();
        expect(await store.readStream(streamId)).toEqual([]);
        const created = await store.append(streamId, [event()], { expectedRevision: 'no_stream' });
        expect(created.firstRevision).toBe(0);
      });

      it('treats re-appending the same event ids as a reported no-op, never a duplicate', async () => {
        const streamId = uniqueStream();
        const batch = [event('A', { n: 1 }), event('B', { n: 2 })];
        const original = await store.append(streamId, batch, { expectedRevision: 'no_stream' });
        // The retry carries a stale expectation, as a retry after a lost reply would.
        const retry = await store.append(streamId, batch, { expectedRevision: 'no_stream' });
        expect(retry).toEqual({ ...original, status: 'duplicate' });
        const reordered = { ...batch[0]!, data: { n: 1 } };
        expect((await store.append(streamId, [reordered], { expectedRevision: 'any' })).status).toBe('duplicate');
        expect(await store.readStream(streamId)).toHaveLength(2);
      });

      it('refuses an event id reused for other content, or a half-duplicate batch', async () => {
        const streamId = uniqueStream();
        const original = event('A', { n: 1 });
        await store.append(streamId, [original], { expectedRevision: 'no_stream' });
        await expectCode(store.append(streamId, [{ ...original, data: { n: 2 } }], { expectedRevision: 'any' }), 'EVENT_ID_CONFLICT');
        await expectCode(store.append(streamId, [original, event()], { expectedRevision: 'any' }), 'EVENT_ID_CONFLICT');
        expect(await store.readStream(streamId)).toHaveLength(1);
      });

      it('refuses malformed appends before touching the database', async () => {
        const streamId = uniqueStream();
        await expectCode(store.append(streamId, [], { expectedRevision: 'any' }), 'INVALID_APPEND');
        await expectCode(store.append('bad stream id!', [event()], { expectedRevision: 'any' }), 'INVALID_APPEND');
        await expectCode(store.append(streamId, [{ ...event(), eventId: 'not-a-uuid' }], { expectedRevision: 'any' }), 'INVALID_APPEND');
        const twice = event();
        await expectCode(store.append(streamId, [twice, twice], { expectedRevision: 'any' }), 'INVALID_APPEND');
        await expectCode(store.append(streamId, [event('Big', { blob: 'x'.repeat(300_000) })], { expectedRevision: 'any' }), 'INVALID_APPEND');
        await expectCode(store.append(streamId, [event()], { expectedRevision: -1 }), 'INVALID_APPEND');
        expect(await store.readStream(streamId)).toEqual([]);
      });
    });

    describe('atomic multi-stream appends (where the store offers them)', () => {
      it('commits every stream or none: a stale expectation on one leaves the others untouched', async () => {
        if (!store.appendAtomically) {
          console.warn(`event store contract [${options.engine}]: no appendAtomically; callers fall back to one append per stream`);
          return;
        }
        const [a, b] = [uniqueStream(), uniqueStream()];
        await store.append(b, [event()], { expectedRevision: 'no_stream' });
        await expectCode(store.appendAtomically([{ streamId: a, events: [event()], options: { expectedRevision: 'no_stream' } }, { streamId: b, events: [event()], options: { expectedRevision: 'no_stream' } }]), 'WRONG_EXPECTED_REVISION');
        expect(await store.readStream(a)).toEqual([]);
        expect(await store.readStream(b)).toHaveLength(1);
        const results = await store.appendAtomically([{ streamId: b, events: [event()], options: { expectedRevision: 0 } }, { streamId: a, events: [event(), event()], options: { expectedRevision: 'no_stream' } }]);
        expect(results.map((r) => [r.status, r.firstRevision, r.lastRevision])).toEqual([['appended', 1, 1], ['appended', 0, 1]]);
        // One transaction: both parts share it, so a reader sees both or neither.
        expect(results[0]!.position.transactionId).toBe(results[1]!.position.transactionId);
        await expectCode(store.appendAtomically([{ streamId: a, events: [event()], options: { expectedRevision: 'any' } }, { streamId: a, events: [event()], options: { expectedRevision: 'any' } }]), 'INVALID_APPEND');
      });
    });

    describe('idempotency keys', () => {
      it('returns the original result for the same key and payload, and refuses another payload', async () => {
        const streamId = uniqueStream();
        const key = `key-${randomUUID()}`;
        const claim = { key, requestDigest: 'a'.repeat(64) };
        const original = await store.append(streamId, [event()], { expectedRevision: 'no_stream', idempotency: claim });
        const again = await store.append(streamId, [event()], { expectedRevision: 'no_stream', idempotency: claim });
        expect(again).toEqual({ ...original, status: 'duplicate' });
        await expectCode(
          store.append(streamId, [event()], { expectedRevision: 'any', idempotency: { key, requestDigest: 'b'.repeat(64) } }),
          'IDEMPOTENCY_KEY_REUSED',
        );
        expect(await store.readStream(streamId)).toHaveLength(1);
        expect(await store.lookupIdempotencyKey(key)).toEqual({ requestDigest: claim.requestDigest, result: again });
      });
    });

    describe('reads', () => {
      it('reads a stream forwards and backwards from a revision, bounded by maxCount', async () => {
        const streamId = uniqueStream();
        await store.append(streamId, Array.from({ length: 10 }, (_, n) => event('N', { n })), { expectedRevision: 'no_stream' });
        const forwards = await store.readStream(streamId, { fromRevision: 3, maxCount: 4 });
        expect(forwards.map((e) => e.data.n)).toEqual([3, 4, 5, 6]);
        const backwards = await store.readStream(streamId, { direction: 'backwards', fromRevision: 5, maxCount: 3 });
        expect(backwards.map((e) => e.revision)).toEqual([5, 4, 3]);
        const lastOne = await store.readStream(streamId, { direction: 'backwards', maxCount: 1 });
        expect(lastOne[0]!.revision).toBe(9);
        await expectCode(store.readStream(streamId, { maxCount: 1_000_000 }), 'INVALID_APPEND');
      });

      it('reads the whole log after a checkpoint, in checkpoint order', async () => {
        const before = await store.headPosition();
        const streamA = uniqueStream();
        const streamB = uniqueStream();
        await store.append(streamA, [event('A1')], { expectedRevision: 'no_stream' });
        await store.append(streamB, [event('B1'), event('B2')], { expectedRevision: 'no_stream' });
        await store.append(streamA, [event('A2')], { expectedRevision: 0 });
        const after = await store.readAll({ after: before, maxCount: 100 });
        expect(after.map((e) => e.type)).toEqual(['A1', 'B1', 'B2', 'A2']);
        expectCheckpointOrder(after);
        const fromMiddle = await store.readAll({ after: after[1]!.position });
        expect(fromMiddle.map((e) => e.type)).toEqual(['B2', 'A2']);
        expect(comparePositions(await store.headPosition(), after[3]!.position)).toBe(0);
      });
    });

    describe('parallel writers', () => {
      it('keeps every stream gapless and loses nothing under parallel writers on shared and separate streams', async () => {
        const shared = [uniqueStream('shared'), uniqueStream('shared')];
        const written = await runParallelWriters(store, shared, options.parallelWriters, options.appendsPerWriter);
        for (const streamId of [...shared, ...written.separateStreams]) {
          const events = await store.readStream(streamId, { maxCount: 10_000 });
          expect(events.map((e) => e.revision)).toEqual(events.map((_, i) => i));
          expect((await store.verifyStream(streamId)).ok).toBe(true);
        }
        const sharedCount = (await Promise.all(shared.map((s) => store.readStream(s, { maxCount: 10_000 })))).flat().length;
        expect(sharedCount).toBe(written.sharedAppends);
        expect(written.sharedAppends).toBe(options.parallelWriters * options.appendsPerWriter);
        expect(written.conflictsRetried).toBeGreaterThanOrEqual(0);
      });

      it('a subscriber sees every committed event exactly once, in checkpoint order, while writers race', async () => {
        const subscriptionId = `sub-${randomUUID()}`;
        await store.saveCheckpoint(subscriptionId, await store.headPosition());
        const seen: RecordedEvent[] = [];
        const subscription = new CatchUpSubscription(store, {
          subscriptionId,
          batchSize: 7,
          pollIntervalMs: 20,
          handle: async (batch) => {
            seen.push(...batch);
          },
        });
        const start = await store.loadCheckpoint(subscriptionId);
        await runParallelWriters(store, [uniqueStream('sub')], options.parallelWriters, options.appendsPerWriter);
        const head = await store.headPosition();
        await subscription.reached(head);
        await subscription.stop();

        const committed = await readAllAfter(store, start);
        expect(seen.map((e) => e.eventId)).toEqual(committed.map((e) => e.eventId));
        expect(new Set(seen.map((e) => e.eventId)).size).toBe(seen.length);
        expectCheckpointOrder(seen);
        expect(comparePositions(await store.loadCheckpoint(subscriptionId), head)).toBe(0);
      });

      it('resumes a subscription from its durable checkpoint', async () => {
        const subscriptionId = `sub-${randomUUID()}`;
        const streamId = uniqueStream();
        await store.saveCheckpoint(subscriptionId, await store.headPosition());
        await store.append(streamId, [event('First')], { expectedRevision: 'no_stream' });
        const firstRun: string[] = [];
        const one = new CatchUpSubscription(store, { subscriptionId, handle: async (b) => void firstRun.push(...b.map((e) => e.type)) });
        await one.reached(await store.headPosition());
        await one.stop();
        await store.append(streamId, [event('Second')], { expectedRevision: 0 });
        const secondRun: string[] = [];
        const two = new CatchUpSubscription(store, { subscriptionId, handle: async (b) => void secondRun.push(...b.map((e) => e.type)) });
        await two.reached(await store.headPosition());
        await two.stop();
        expect(firstRun).toEqual(['First']);
        expect(secondRun).toEqual(['Second']);
      });

      it('stops a subscription whose handler fails, without moving its checkpoint past the failed batch', async () => {
        const subscriptionId = `sub-${randomUUID()}`;
        const start = await store.headPosition();
        await store.saveCheckpoint(subscriptionId, start);
        await store.append(uniqueStream(), [event('Boom')], { expectedRevision: 'no_stream' });
        const failing = new CatchUpSubscription(store, {
          subscriptionId,
          handle: async () => {
            throw new Error('projector failed');
          },
        });
        await expect(failing.done).rejects.toThrow('projector failed');
        expect(comparePositions(await store.loadCheckpoint(subscriptionId), start)).toBe(0);
      });
    });

    describe.runIf(options.engine === 'postgres')('in-flight transactions (needs a second connection, so a server)', () => {
      it('never reads past a transaction that is still open, then delivers its event in order', async () => {
        const held = uniqueStream('held');
        const later = uniqueStream('later');
        const start = await store.headPosition();
        let releaseHeld!: () => void;
        const gate = new Promise<void>((resolve) => (releaseHeld = resolve));
        let heldAppended!: () => void;
        const heldIsIn = new Promise<void>((resolve) => (heldAppended = resolve));
        const pg = subject.store;
        const heldTx = pg.db.transaction().execute(async (trx) => {
          await pg.appendInTransaction(trx, held, [event('Held')], { expectedRevision: 'no_stream' });
          heldAppended();
          await gate;
        });
        await heldIsIn;
        await store.append(later, [event('Later')], { expectedRevision: 'no_stream' });
        // 'Later' committed with a higher xid than the open transaction: invisible for now.
        expect((await store.readAll({ after: start })).map((e) => e.type)).toEqual([]);
        releaseHeld();
        await heldTx;
        expect((await store.readAll({ after: start })).map((e) => e.type)).toEqual(['Held', 'Later']);
      });
    });

    describe('tamper evidence', () => {
      it('refuses UPDATE and DELETE on the log outright', async () => {
        const streamId = uniqueStream();
        await store.append(streamId, [event('A', { amountMsat: '1000' })], { expectedRevision: 'no_stream' });
        await expect(sql`UPDATE events SET data = '{"amountMsat":"9"}'::jsonb WHERE stream_id = ${streamId}`.execute(subject.db)).rejects.toThrow(/append-only/);
        await expect(sql`DELETE FROM events WHERE stream_id = ${streamId}`.execute(subject.db)).rejects.toThrow(/append-only/);
        expect((await store.verifyStream(streamId)).ok).toBe(true);
      });

      it('detects an edited event row through the hash chain, naming the revision', async () => {
        const streamId = uniqueStream();
        await store.append(streamId, [event('A', { amountMsat: '1000' }), event('B', { amountMsat: '2000' }), event('C')], { expectedRevision: 'no_stream' });
        expect(await store.verifyStream(streamId)).toEqual({ ok: true, streamsChecked: 1, eventsChecked: 3 });
        await withTriggerOff(subject.db, sql`UPDATE events SET data = '{"amountMsat":"9000"}'::jsonb WHERE stream_id = ${streamId} AND stream_revision = 1`);
        expect(await store.verifyStream(streamId)).toMatchObject({ ok: false, streamId, revision: 1, problem: 'hash-mismatch' });
        expect(await store.verifyAll()).toMatchObject({ ok: false, streamId, revision: 1 });
      });

      it('detects a deleted tail event through the stream head', async () => {
        const streamId = uniqueStream();
        await store.append(streamId, [event('A'), event('B')], { expectedRevision: 'no_stream' });
        await withTriggerOff(subject.db, sql`DELETE FROM events WHERE stream_id = ${streamId} AND stream_revision = 1`);
        expect(await store.verifyStream(streamId)).toMatchObject({ ok: false, streamId, problem: 'head-mismatch' });
      });
    });
  });
}

/** The attack the hash chain exists for: someone with the rights to disable the append-only guard. */
async function withTriggerOff(db: Kysely<any>, statement: ReturnType<typeof sql>): Promise<void> {
  await db.transaction().execute(async (trx) => {
    await sql`ALTER TABLE events DISABLE TRIGGER events_append_only`.execute(trx);
    await statement.execute(trx);
    await sql`ALTER TABLE events ENABLE TRIGGER events_append_only`.execute(trx);
  });
}

function expectCheckpointOrder(events: readonly RecordedEvent[]): void {
  for (let i = 1; i < events.length; i += 1) {
    expect(comparePositions(events[i - 1]!.position, events[i]!.position)).toBe(-1);
  }
}

async function readAllAfter(store: EventStore, start: typeof LOG_START): Promise<RecordedEvent[]> {
  const all: RecordedEvent[] = [];
  for (let after = start; ; ) {
    const page = await store.readAll({ after, maxCount: 1_000 });
    all.push(...page);
    if (page.length < 1_000) return all;
    after = page[page.length - 1]!.position;
  }
}

type WriterOutcome = { sharedAppends: number; separateStreams: string[]; conflictsRetried: number };

/**
 * Each writer alternates between a shared stream (optimistic concurrency with
 * reload-and-retry, as the command handler does) and a stream of its own.
 */
async function runParallelWriters(store: EventStore, shared: string[], writers: number, appendsPerWriter: number): Promise<WriterOutcome> {
  let sharedAppends = 0;
  let conflictsRetried = 0;
  const separateStreams: string[] = [];
  await Promise.all(
    Array.from({ length: writers }, async (_, writer) => {
      const own = uniqueStream(`own${writer}`);
      separateStreams.push(own);
      for (let n = 0; n < appendsPerWriter; n += 1) {
        const target = shared[(writer + n) % shared.length]!;
        for (let attempt = 0; ; attempt += 1) {
          expect(attempt).toBeLessThan(10_000);
          const last = await store.readStream(target, { direction: 'backwards', maxCount: 1 });
          const expectedRevision = last[0] ? last[0].revision : 'no_stream';
          try {
            await store.append(target, [event('Shared', { writer, n })], { expectedRevision });
            sharedAppends += 1;
            break;
          } catch (error) {
            if (!(error instanceof WrongExpectedRevisionError)) throw error;
            conflictsRetried += 1;
          }
        }
        await store.append(own, [event('Own', { writer, n })], { expectedRevision: n === 0 ? 'no_stream' : n - 1 });
      }
    }),
  );
  return { sharedAppends, separateStreams, conflictsRetried };
}
