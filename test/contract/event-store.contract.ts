// The event-store contract: one suite that every EventStore adapter must pass, run once per adapter.

import { randomUUID } from 'node:crypto';
import { sql, type Kysely } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  comparePositions,
  LOG_START,
  type EventStore,
  type LogPosition,
  type NewEvent,
  type RecordedEvent,
} from '../../domain/ports/event-store.js';
import { WrongExpectedRevisionError } from '../../domain/ports/event-store-errors.js';
import { CatchUpSubscription, type CatchUpOptions } from '../../adapters/event-store/catch-up-subscription.js';
import { PostgresEventStore, type AppendPathCounts } from '../../adapters/postgres/postgres-event-store.js';
import { verifyChain } from '../../adapters/event-store/verify-chain.js';

export type EventStoreUnderTest = {
  store: EventStore;
  /** The SQL store and its database, for what only a SQL log has (one-statement appends, triggers, open transactions). */
  sql?: { store: PostgresEventStore; db: Kysely<any> };
  /** Whether two transactions can be open at once (a server yes, single-connection PGlite no). */
  concurrentTransactions: boolean;
};

export type EventStoreContractOptions = {
  engine: string;
  open: () => Promise<EventStoreUnderTest>;
  parallelWriters: number;
  appendsPerWriter: number;
  /** Whether the store is the SQL one: its own parts of the suite run only then (open() must give `sql`). */
  sql: boolean;
  /**
   * A batch whose LAST event the store refuses only once it is writing, to show a multi-event append is
   * atomic. PostgreSQL: jsonb refuses a NUL character. EventStoreDB accepts any JSON, so its suite
   * passes a batch larger than the cluster's MaxAppendSize (1 MiB by default) instead.
   */
  poisonedBatch?: () => NewEvent[];
  /** The catch-up subscription the subscriber tests drive; the polling CatchUpSubscription (any store) by default. */
  subscribe?: (store: EventStore, options: CatchUpOptions) => Subscription;
};

/** What the subscriber tests need of a catch-up subscription (CatchUpSubscription and EventStoreDB's push-based one). */
export type Subscription = Readonly<{ done: Promise<void>; reached: (target: LogPosition) => Promise<void>; stop: () => Promise<void> }>;

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
    const subscribe = (o: CatchUpOptions): Subscription => (options.subscribe ?? ((s, opts) => new CatchUpSubscription(s, opts)))(store, o);

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
        // By default jsonb's refusal of a NUL character, so the database fails on the second row.
        const batch = options.poisonedBatch?.() ?? [event(), event('Poisoned', { text: 'nul \u0000 here' })];
        await expect(store.append(streamId, batch, { expectedRevision: 'no_stream' })).rejects.toThrow();
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

      it('answers one of two racing appends of the same batch as the duplicate of the other', async () => {
        const streamId = uniqueStream();
        await store.append(streamId, [event()], { expectedRevision: 'no_stream' });
        const batch = [event('Raced', { n: 1 }), event('Raced', { n: 2 })];
        const outcomes = await Promise.all([0, 1].map(() => store.append(streamId, batch, { expectedRevision: 0 })));
        expect(outcomes.map((o) => o.status).sort()).toEqual(['appended', 'duplicate']);
        expect(outcomes[0]).toEqual({ ...outcomes[1]!, status: outcomes[0]!.status });
        expect(await store.readStream(streamId)).toHaveLength(3);
        expect((await store.verifyStream(streamId)).ok).toBe(true);
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
        // Pages at the stream's ends: fewer than maxCount, never past revision 0 or the head.
        expect((await store.readStream(streamId, { direction: 'backwards', fromRevision: 1, maxCount: 5 })).map((e) => e.revision)).toEqual([1, 0]);
        expect((await store.readStream(streamId, { fromRevision: 8, maxCount: 5 })).map((e) => e.revision)).toEqual([8, 9]);
        expect((await store.readStream(streamId, { maxCount: 2 })).map((e) => e.revision)).toEqual([0, 1]);
        expect(await store.readStream(streamId, { fromRevision: 10, maxCount: 5 })).toEqual([]);
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
        const subscription = subscribe({
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
        const one = subscribe({ subscriptionId, handle: async (b) => void firstRun.push(...b.map((e) => e.type)) });
        await one.reached(await store.headPosition());
        await one.stop();
        await store.append(streamId, [event('Second')], { expectedRevision: 0 });
        const secondRun: string[] = [];
        const two = subscribe({ subscriptionId, handle: async (b) => void secondRun.push(...b.map((e) => e.type)) });
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
        const failing = subscribe({
          subscriptionId,
          handle: async () => {
            throw new Error('projector failed');
          },
        });
        await expect(failing.done).rejects.toThrow('projector failed');
        expect(comparePositions(await store.loadCheckpoint(subscriptionId), start)).toBe(0);
      });
    });

    describe.runIf(options.sql && options.engine === 'postgres')('in-flight transactions (needs a second connection, so a server)', () => {
      it('never reads past a transaction that is still open, then delivers its event in order', async () => {
        const held = uniqueStream('held');
        const later = uniqueStream('later');
        const start = await store.headPosition();
        let releaseHeld!: () => void;
        const gate = new Promise<void>((resolve) => (releaseHeld = resolve));
        let heldAppended!: () => void;
        const heldIsIn = new Promise<void>((resolve) => (heldAppended = resolve));
        const pg = subject.sql!.store;
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

    describe.runIf(options.sql)('one-statement appends (a known stream head)', () => {
      /** Another store over the same database: its own remembered heads, as another process would have. */
      const otherStore = () => new PostgresEventStore(subject.sql!.db, { nowMs: Date.now });
      const pathsDelta = (s: PostgresEventStore, before: AppendPathCounts) => {
        const now = s.appendPaths();
        return { fast: now.fast - before.fast, fastMissed: now.fastMissed - before.fastMissed, slow: now.slow - before.slow };
      };

      it('lets exactly one of many racing writers win each revision, each winner in one statement, with no gaps', async () => {
        const streamId = uniqueStream('race');
        const writers = Array.from({ length: options.parallelWriters }, otherStore);
        const rounds = 6;
        const winners: string[] = [];
        for (let round = 0; round <= rounds; round += 1) {
          const expectedRevision = round === 0 ? ('no_stream' as const) : round - 1;
          // Every writer learns the committed head, as a command handler does by reading the stream.
          if (round > 0) await Promise.all(writers.map((w) => w.readStream(streamId, { direction: 'backwards', maxCount: 1 })));
          const before = writers.map((w) => w.appendPaths());
          const attempts = writers.map((w, writer) => event('Raced', { round, writer }));
          const outcomes = await Promise.allSettled(writers.map((w, writer) => w.append(streamId, [attempts[writer]!], { expectedRevision })));
          const won = outcomes.flatMap((o, writer) => (o.status === 'fulfilled' ? [writer] : []));
          expect(won).toHaveLength(1);
          expect(outcomes[won[0]!]).toMatchObject({ value: { status: 'appended', firstRevision: round, lastRevision: round } });
          for (const o of outcomes) if (o.status === 'rejected') expect(o.reason).toMatchObject({ code: 'WRONG_EXPECTED_REVISION', actual: round });
          const deltas = writers.map((w, i) => pathsDelta(w, before[i]!));
          // Every writer knew the head, so every one tried the single statement; only the winner's took.
          expect(deltas.reduce((n, d) => n + d.fast, 0)).toBe(1);
          expect(deltas[won[0]!]!.fast).toBe(1);
          expect(deltas.reduce((n, d) => n + d.fastMissed, 0)).toBe(writers.length - 1);
          winners.push(attempts[won[0]!]!.eventId);
        }
        const stored = await store.readStream(streamId);
        expect(stored.map((e) => e.revision)).toEqual(Array.from({ length: rounds + 1 }, (_, i) => i));
        expect(stored.map((e) => e.eventId)).toEqual(winners);
        expect(await store.verifyStream(streamId)).toEqual({ ok: true, streamsChecked: 1, eventsChecked: rounds + 1 });
      });

      it('falls back on a stale known head: WrongExpectedRevisionError for a stale number, the real head for "any"', async () => {
        const streamId = uniqueStream('stale');
        const mine = otherStore();
        const theirs = otherStore();
        await mine.append(streamId, [event('Mine0')], { expectedRevision: 'no_stream' });
        await theirs.readStream(streamId);
        await theirs.append(streamId, [event('Theirs1')], { expectedRevision: 0 });

        let before = mine.appendPaths();
        const error = await expectCode(mine.append(streamId, [event('Lost')], { expectedRevision: 0 }), 'WRONG_EXPECTED_REVISION');
        expect(error).toMatchObject({ expected: 0, actual: 1 });
        expect(pathsDelta(mine, before)).toEqual({ fast: 0, fastMissed: 1, slow: 1 });

        await theirs.append(streamId, [event('Theirs2')], { expectedRevision: 1 });
        await mine.readStream(streamId, { fromRevision: 0, maxCount: 2 }); // learns revision 1: a head that is stale again
        before = mine.appendPaths();
        const anywhere = await mine.append(streamId, [event('Mine3')], { expectedRevision: 'any' });
        expect(anywhere).toMatchObject({ status: 'appended', firstRevision: 3 });
        expect(pathsDelta(mine, before)).toEqual({ fast: 0, fastMissed: 1, slow: 1 });
        // The transaction taught it the head: the next append is one statement again.
        before = mine.appendPaths();
        await mine.append(streamId, [event('Mine4')], { expectedRevision: 3 });
        await mine.append(streamId, [event('Mine5')], { expectedRevision: 'stream_exists' });
        expect(pathsDelta(mine, before)).toEqual({ fast: 2, fastMissed: 0, slow: 0 });
        expect((await store.readStream(streamId)).map((e) => e.type)).toEqual(['Mine0', 'Theirs1', 'Theirs2', 'Mine3', 'Mine4', 'Mine5']);
        expect((await store.verifyStream(streamId)).ok).toBe(true);

        // A stream someone else created: 'no_stream' tries the head insert, finds the row, and is refused.
        const created = uniqueStream('created');
        await theirs.append(created, [event()], { expectedRevision: 'no_stream' });
        before = mine.appendPaths();
        await expectCode(mine.append(created, [event()], { expectedRevision: 'no_stream' }), 'WRONG_EXPECTED_REVISION');
        expect(pathsDelta(mine, before)).toEqual({ fast: 0, fastMissed: 1, slow: 1 });
        expect(await store.readStream(created)).toHaveLength(1);
      });

      it('answers a retry of the same ids with the original positions, and refuses other content, whatever path it takes', async () => {
        const streamId = uniqueStream('retry');
        const writer = otherStore();
        const batch = [event('A', { n: 1 }), event('B', { n: 2 })];
        const original = await writer.append(streamId, batch, { expectedRevision: 'no_stream' });
        expect(writer.appendPaths().fast).toBe(1);
        // At the current head, the retry tries the single statement, hits the event-id constraint, and falls back.
        let before = writer.appendPaths();
        expect(await writer.append(streamId, batch, { expectedRevision: 1 })).toEqual({ ...original, status: 'duplicate' });
        expect(pathsDelta(writer, before)).toEqual({ fast: 0, fastMissed: 1, slow: 1 });
        // With its original, stale expectation it goes straight to the transaction.
        expect(await writer.append(streamId, batch, { expectedRevision: 'no_stream' })).toEqual({ ...original, status: 'duplicate' });
        await writer.readStream(streamId);
        before = writer.appendPaths();
        await expectCode(writer.append(streamId, [{ ...batch[1]!, data: { n: 3 } }], { expectedRevision: 1 }), 'EVENT_ID_CONFLICT');
        await expectCode(writer.append(streamId, [event('C'), batch[0]!], { expectedRevision: 'any' }), 'EVENT_ID_CONFLICT');
        expect(pathsDelta(writer, before).fastMissed).toBeGreaterThanOrEqual(1);
        expect(await store.readStream(streamId)).toHaveLength(2);
        const next = await writer.append(streamId, [event('C')], { expectedRevision: 1 });
        expect(next).toMatchObject({ status: 'appended', firstRevision: 2 });
        expect((await store.verifyStream(streamId)).ok).toBe(true);
      });

      it('commits an idempotency key with its events in the statement, and never without them', async () => {
        const streamId = uniqueStream('keyed');
        const writer = otherStore();
        const key = `key-${randomUUID()}`;
        const claim = { key, requestDigest: 'c'.repeat(64) };
        const original = await writer.append(streamId, [event()], { expectedRevision: 'no_stream', idempotency: claim });
        expect(writer.appendPaths()).toMatchObject({ fast: 1, slow: 0 });
        expect(await store.lookupIdempotencyKey(key)).toEqual({ requestDigest: claim.requestDigest, result: { ...original, status: 'duplicate' } });
        // Same key at the current head: the key's primary key fails the whole statement; the transaction answers.
        expect(await writer.append(streamId, [event()], { expectedRevision: 0, idempotency: claim })).toEqual({ ...original, status: 'duplicate' });
        await expectCode(writer.append(streamId, [event()], { expectedRevision: 0, idempotency: { key, requestDigest: 'd'.repeat(64) } }), 'IDEMPOTENCY_KEY_REUSED');
        expect(await store.readStream(streamId)).toHaveLength(1);

        // The same key on a new stream: the unique violation rolls back that stream's head row and events too.
        const elsewhere = uniqueStream('keyed-elsewhere');
        await expectCode(writer.append(elsewhere, [event()], { expectedRevision: 'no_stream', idempotency: { key, requestDigest: 'e'.repeat(64) } }), 'IDEMPOTENCY_KEY_REUSED');
        expect(await store.readStream(elsewhere)).toEqual([]);
        expect(await store.verifyStream(elsewhere)).toEqual({ ok: true, streamsChecked: 1, eventsChecked: 0 });
        expect((await store.append(elsewhere, [event()], { expectedRevision: 'no_stream' })).firstRevision).toBe(0);

        // A head that did not move writes no key: the key stays free for the retry that reloads.
        const stale = otherStore();
        await stale.readStream(streamId);
        await writer.append(streamId, [event()], { expectedRevision: 0 });
        const unlucky = `key-${randomUUID()}`;
        await expectCode(stale.append(streamId, [event()], { expectedRevision: 0, idempotency: { key: unlucky, requestDigest: 'f'.repeat(64) } }), 'WRONG_EXPECTED_REVISION');
        expect(stale.appendPaths()).toMatchObject({ fast: 0, fastMissed: 1 });
        expect(await store.lookupIdempotencyKey(unlucky)).toBeNull();
        const retried = await stale.append(streamId, [event()], { expectedRevision: 1, idempotency: { key: unlucky, requestDigest: 'f'.repeat(64) } });
        expect(await store.lookupIdempotencyKey(unlucky)).toEqual({ requestDigest: 'f'.repeat(64), result: { ...retried, status: 'duplicate' } });
      });

      it('keeps one valid chain over a mix of one-statement, transactional, in-transaction and atomic appends', async () => {
        const streamId = uniqueStream('mixed');
        const side = uniqueStream('mixed-side');
        const writer = otherStore();
        await writer.append(streamId, [event('F0'), event('F1')], { expectedRevision: 'no_stream' });
        await writer.append(streamId, [event('F2')], { expectedRevision: 1 });
        await writer.db.transaction().execute((trx) => writer.appendInTransaction(trx, streamId, [event('T3')], { expectedRevision: 2 }));
        await expectCode(writer.append(streamId, [event()], { expectedRevision: 2 }), 'WRONG_EXPECTED_REVISION');
        await writer.append(streamId, [event('S4')], { expectedRevision: 3 });
        await writer.append(streamId, Array.from({ length: 5 }, (_, n) => event('F', { n })), { expectedRevision: 4 });
        await writer.appendAtomically([
          { streamId, events: [event('A10')], options: { expectedRevision: 9 } },
          { streamId: side, events: [event('Side0')], options: { expectedRevision: 'no_stream' } },
        ]);
        await writer.append(streamId, [event('F11')], { expectedRevision: 10 });
        await writer.append(side, [event('Side1')], { expectedRevision: 0 });
        writer.forgetKnownHeads();
        await writer.append(streamId, [event('S12')], { expectedRevision: 11 });
        await writer.append(streamId, [event('F13')], { expectedRevision: 'any' });
        const paths = writer.appendPaths();
        expect(paths.fast).toBe(6);
        expect(paths.slow).toBeGreaterThanOrEqual(3);

        const events = await store.readStream(streamId);
        expect(events.map((e) => e.revision)).toEqual(Array.from({ length: 14 }, (_, i) => i));
        const head = await subject.sql!.db.selectFrom('streams').select(['revision', 'head_hash']).where('stream_id', '=', streamId).executeTakeFirstOrThrow();
        expect(verifyChain(streamId, events, { revision: Number(head.revision), headHash: head.head_hash })).toEqual({ ok: true, streamsChecked: 1, eventsChecked: 14 });
        expect(await store.verifyStream(side)).toEqual({ ok: true, streamsChecked: 1, eventsChecked: 2 });
        expectCheckpointOrder((await readAllAfter(store, LOG_START)).filter((e) => e.streamId === streamId));
      });

      it.runIf(options.engine === 'postgres')('re-checks a head that moves while its UPDATE waits on the row lock, and inserts nothing', async () => {
        const streamId = uniqueStream('blocked');
        const waiting = otherStore();
        await waiting.append(streamId, [event('First')], { expectedRevision: 'no_stream' });
        let release!: () => void;
        const gate = new Promise<void>((resolve) => (release = resolve));
        let locked!: () => void;
        const headLocked = new Promise<void>((resolve) => (locked = resolve));
        const holder = subject.sql!.store.db.transaction().execute(async (trx) => {
          await subject.sql!.store.appendInTransaction(trx, streamId, [event('Holder')], { expectedRevision: 0 });
          locked();
          await gate;
        });
        await headLocked;
        const blocked = waiting.append(streamId, [event('Blocked')], { expectedRevision: 0 }).then(
          () => 'appended',
          (e: unknown) => e,
        );
        // Wait, by observation, until that single statement is queued behind the holder's row lock.
        for (let polls = 0; ; polls += 1) {
          expect(polls).toBeLessThan(5_000);
          const rows = await sql<{ n: number }>`
            SELECT count(*)::int AS n FROM pg_stat_activity
            WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%FROM event_store_append_at_known_head(%'`.execute(subject.sql!.db);
          if (rows.rows[0]!.n > 0) break;
        }
        release();
        await holder;
        expect(await blocked).toMatchObject({ code: 'WRONG_EXPECTED_REVISION', actual: 1 });
        expect(waiting.appendPaths()).toMatchObject({ fast: 1, fastMissed: 1 });
        expect((await store.readStream(streamId)).map((e) => e.type)).toEqual(['First', 'Holder']);
        expect((await store.verifyStream(streamId)).ok).toBe(true);
      });
    });

    describe('the hash chain on read', () => {
      it('verifies every stream it wrote, one by one and in one pass over the log', async () => {
        const streamId = uniqueStream();
        await store.append(streamId, [event('A', { amountMsat: '1000' }), event('B')], { expectedRevision: 'no_stream' });
        await store.append(streamId, [event('C')], { expectedRevision: 1 });
        const events = await store.readStream(streamId);
        expect(events[0]!.prevHash).toBe('0'.repeat(64));
        expect(events[1]!.prevHash).toBe(events[0]!.hash);
        expect(events[2]!.prevHash).toBe(events[1]!.hash);
        expect(verifyChain(streamId, events, null)).toEqual({ ok: true, streamsChecked: 1, eventsChecked: 3 });
        expect(await store.verifyStream(streamId)).toEqual({ ok: true, streamsChecked: 1, eventsChecked: 3 });
        expect(await store.verifyStream(uniqueStream('never-written'))).toEqual({ ok: true, streamsChecked: 1, eventsChecked: 0 });
        const all = await store.verifyAll();
        expect(all.ok).toBe(true);
        if (all.ok) expect(all.eventsChecked).toBeGreaterThanOrEqual(3);
      });
    });

    describe.runIf(options.sql)('tamper evidence', () => {
      it('refuses UPDATE and DELETE on the log outright', async () => {
        const streamId = uniqueStream();
        await store.append(streamId, [event('A', { amountMsat: '1000' })], { expectedRevision: 'no_stream' });
        await expect(sql`UPDATE events SET data = '{"amountMsat":"9"}'::jsonb WHERE stream_id = ${streamId}`.execute(subject.sql!.db)).rejects.toThrow(/append-only/);
        await expect(sql`DELETE FROM events WHERE stream_id = ${streamId}`.execute(subject.sql!.db)).rejects.toThrow(/append-only/);
        expect((await store.verifyStream(streamId)).ok).toBe(true);
      });

      it('detects an edited event row through the hash chain, naming the revision', async () => {
        const streamId = uniqueStream();
        await store.append(streamId, [event('A', { amountMsat: '1000' }), event('B', { amountMsat: '2000' }), event('C')], { expectedRevision: 'no_stream' });
        expect(await store.verifyStream(streamId)).toEqual({ ok: true, streamsChecked: 1, eventsChecked: 3 });
        await withTriggerOff(subject.sql!.db, sql`UPDATE events SET data = '{"amountMsat":"9000"}'::jsonb WHERE stream_id = ${streamId} AND stream_revision = 1`);
        expect(await store.verifyStream(streamId)).toMatchObject({ ok: false, streamId, revision: 1, problem: 'hash-mismatch' });
        expect(await store.verifyAll()).toMatchObject({ ok: false, streamId, revision: 1 });
      });

      it('detects a deleted tail event through the stream head', async () => {
        const streamId = uniqueStream();
        await store.append(streamId, [event('A'), event('B')], { expectedRevision: 'no_stream' });
        await withTriggerOff(subject.sql!.db, sql`DELETE FROM events WHERE stream_id = ${streamId} AND stream_revision = 1`);
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
