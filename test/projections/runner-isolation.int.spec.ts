// Poison isolation on both engines: a projector that cannot apply an event stops alone and says why; the others and the runner carry on.

import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Kysely } from 'kysely';
import type { LedgerStore } from '../../adapters/event-store/ledger-store.js';
import { DomainError, invariant, InvariantViolation } from '../../domain/errors.js';
import type { RecordedEvent } from '../../domain/ports/event-store.js';
import { ledgerProjector } from '../../projections/ledger/ledger-projector.js';
import type { ProjectedEvent, Projector } from '../../projections/projector.js';
import { rebuildProjection } from '../../projections/rebuild.js';
import { isTransientDatabaseError, ProjectionRunner, type ProjectionLag } from '../../projections/runner.js';
import { appendHistory, generateHistory, type HistoryEvent } from './history.js';
import { countedLag, PROJECTION_ENGINES } from './engines.js';

/** First well inside this history and inside a batch of 25 (checked below), so its batch holds healthy events either side. */
const POISON_TYPE = 'CheckpointPublished';

type TallyTables = { tally: { stream_id: string; revision: number; type: string } };

/**
 * A test read model: one row per event. It refuses `poisonType` with an
 * InvariantViolation, refuses an event it already holds (so a corrupted table
 * stops it), and throws `failFirst` from its first applies.
 */
function tallyProjector(name: string, options: { poisonType?: string; failFirst?: { times: number; error: () => unknown } } = {}) {
  const calls = { apply: 0 };
  const projector: Projector = {
    name,
    migrations: {
      '0001_tally': {
        up: async (db) => {
          await db.schema
            .createTable('tally')
            .addColumn('stream_id', 'text', (c) => c.notNull())
            .addColumn('revision', 'integer', (c) => c.notNull())
            .addColumn('type', 'text', (c) => c.notNull())
            .addPrimaryKeyConstraint('tally_pk', ['stream_id', 'revision'])
            .execute();
        },
      },
    },
    tables: [{ name: 'tally', orderBy: ['stream_id', 'revision'] }],
    async apply(db: Kysely<any>, events: readonly ProjectedEvent[]): Promise<void> {
      calls.apply += 1;
      if (options.failFirst && calls.apply <= options.failFirst.times) throw options.failFirst.error();
      for (const e of events) invariant(e.event.type !== options.poisonType, `${name} cannot apply ${e.event.type}`);
      const tally = db as Kysely<TallyTables>;
      const held = await tally.selectFrom('tally').select(['stream_id', 'revision']).where('stream_id', 'in', [...new Set(events.map((e) => e.streamId))]).execute();
      const keys = new Set(held.map((r) => `${r.stream_id}@${r.revision}`));
      for (const e of events) invariant(!keys.has(`${e.streamId}@${e.revision}`), `${name}: ${e.streamId}@${e.revision} is already tallied`);
      await tally.insertInto('tally').values(events.map((e) => ({ stream_id: e.streamId, revision: e.revision, type: e.event.type }))).execute();
    },
  };
  return { projector, calls };
}

function connectionReset(): Error {
  return Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET', errno: -104, syscall: 'read' });
}

function byName(lags: readonly ProjectionLag[]): Record<string, ProjectionLag> {
  return Object.fromEntries(lags.map((l) => [l.projector, l]));
}

/** Polls `condition` until it holds, at most `attempts` times, a few milliseconds apart; the condition is the synchronisation. */
async function eventually(condition: () => Promise<boolean>, what: string, attempts = 1_000): Promise<void> {
  for (let i = 0; i < attempts; i += 1) {
    if (await condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe.each(PROJECTION_ENGINES)('projection runner isolation [$name]', (engine) => {
  let store: LedgerStore;
  let history: HistoryEvent[];
  let log: RecordedEvent[];

  beforeEach(async () => {
    store = (await engine.open()).store;
    history = generateHistory(7, { runs: 3, assignments: 60 });
    await appendHistory(store, history);
    log = await store.readAll({ maxCount: 10_000 });
  });
  afterEach(async () => {
    await store?.close();
  });

  const countTally = async (schema: string) => Number((await store.db.withSchema(schema).selectFrom('tally' as never).select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow() as { n: string | number }).n);

  it('stops a poison projector alone, at the event it cannot apply, while the others reach the head', async () => {
    const lines: string[] = [];
    const poison = tallyProjector('poison', { poisonType: POISON_TYPE });
    const healthy = tallyProjector('healthy');
    const runner = new ProjectionRunner({ store, projectors: [ledgerProjector, poison.projector, healthy.projector], batchSize: 25, log: (l) => lines.push(l) });
    await runner.prepare();

    const culpritIndex = log.findIndex((e) => e.type === POISON_TYPE);
    expect(culpritIndex).toBeGreaterThan(25);
    expect(culpritIndex % 25).toBeGreaterThan(0);
    expect(culpritIndex % 25).toBeLessThan(24);
    const culprit = log[culpritIndex]!;

    const applied = await runner.pass();
    expect(applied).toEqual({ ledger: log.length, poison: culpritIndex, healthy: log.length });
    // The events before the culprit are kept: its checkpoint is the event just before it.
    expect(await countTally('poison')).toBe(culpritIndex);

    const lag = byName(await runner.lag());
    expect(lag.ledger).toMatchObject({ status: 'running', lagEvents: 0 });
    expect(lag.ledger!.stopped).toBeUndefined();
    expect(lag.healthy).toMatchObject({ status: 'running', lagEvents: 0 });
    expect(lag.poison).toMatchObject({
      status: 'stopped',
      lagEvents: countedLag(engine, log.length - culpritIndex),
      checkpoint: log[culpritIndex - 1]!.position,
      stopped: {
        projector: 'poison',
        reason: `InvariantViolation: poison cannot apply ${POISON_TYPE}`,
        checkpoint: log[culpritIndex - 1]!.position,
        event: { streamId: culprit.streamId, revision: culprit.revision, type: POISON_TYPE, position: culprit.position },
      },
    });
    expect(runner.stoppedProjectors().map((s) => s.projector)).toEqual(['poison']);
    expect(lines.filter((l) => l.includes('PROJECTION_STOPPED'))).toHaveLength(1);
    expect(lines.find((l) => l.includes('PROJECTION_STOPPED'))).toContain(`${culprit.streamId}@${culprit.revision}`);

    // Not retried: further passes leave it alone while the others keep applying.
    const callsWhenStopped = poison.calls.apply;
    expect(await runner.pass()).toEqual({ ledger: 0, poison: 0, healthy: 0 });
    const more = generateHistory(8, { runs: 1, assignments: 5 }, { idPrefix: 'late-' });
    await appendHistory(store, more);
    expect(await runner.pass()).toEqual({ ledger: more.length, poison: 0, healthy: more.length });
    expect(poison.calls.apply).toBe(callsWhenStopped);
    expect(byName(await runner.lag()).poison).toMatchObject({ status: 'stopped', lagEvents: countedLag(engine, log.length + more.length - culpritIndex) });

    // The strict one-shot still fails loudly on it.
    await expect(runner.catchUp()).rejects.toThrow(InvariantViolation);

    // A restart (a new runner) tries again, and stops on the same event without throwing.
    const restarted = new ProjectionRunner({ store, projectors: [ledgerProjector, poison.projector, healthy.projector], batchSize: 25 });
    expect(await restarted.pass()).toEqual({ ledger: 0, poison: 0, healthy: 0 });
    expect(byName(await restarted.lag()).poison!.stopped?.event?.position).toEqual(culprit.position);
  });

  it('keeps the started runner going: start() does not reject and later appends still reach the healthy projectors', async () => {
    const poison = tallyProjector('poison', { poisonType: POISON_TYPE });
    const healthy = tallyProjector('healthy');
    const runner = new ProjectionRunner({ store, projectors: [poison.projector, ledgerProjector, healthy.projector], batchSize: 50, pollIntervalMs: 20 });
    await runner.prepare();
    let settled: string | null = null;
    const running = runner.start().then(
      () => (settled = 'resolved'),
      (error: unknown) => (settled = `rejected: ${String(error)}`),
    );
    try {
      await eventually(async () => {
        const lag = byName(await runner.lag());
        return lag.poison!.status === 'stopped' && lag.ledger!.lagEvents === 0 && lag.healthy!.lagEvents === 0;
      }, 'the poison projector to stop and the others to reach the head');
      expect(settled).toBeNull();

      const more = generateHistory(9, { runs: 1, assignments: 5 }, { idPrefix: 'later-' });
      await appendHistory(store, more);
      // The appends land in several transactions, so wait for both healthy projectors to see the last one.
      await eventually(async () => {
        const lag = byName(await runner.lag());
        return (await countTally('healthy')) === log.length + more.length && lag.ledger!.lagEvents === 0 && lag.healthy!.lagEvents === 0;
      }, 'the healthy projectors to apply the later appends');
      const lag = byName(await runner.lag());
      expect(lag.ledger).toMatchObject({ status: 'running', lagEvents: 0 });
      expect(lag.poison).toMatchObject({ status: 'stopped', stopped: { event: { type: POISON_TYPE } } });
      expect(settled).toBeNull();
    } finally {
      await runner.stop();
    }
    await running;
    expect(settled).toBe('resolved');
  });

  it('retries a projector after a transient database error instead of stopping it', async () => {
    const lines: string[] = [];
    const flaky = tallyProjector('flaky', { failFirst: { times: 2, error: connectionReset } });
    const runner = new ProjectionRunner({ store, projectors: [flaky.projector, ledgerProjector], batchSize: 100, log: (l) => lines.push(l) });
    await runner.prepare();

    expect(await runner.pass()).toEqual({ flaky: 0, ledger: log.length });
    expect(byName(await runner.lag()).flaky).toMatchObject({ status: 'running', lagEvents: countedLag(engine, log.length) });
    expect(await runner.pass()).toEqual({ flaky: 0, ledger: 0 });
    expect(await runner.pass()).toEqual({ flaky: log.length, ledger: 0 });
    expect(byName(await runner.lag()).flaky).toMatchObject({ status: 'running', lagEvents: 0 });
    expect(runner.stoppedProjectors()).toEqual([]);
    expect(lines.some((l) => l.includes('ECONNRESET') && l.includes('retrying'))).toBe(true);
    expect(lines.some((l) => l.includes('PROJECTION_STOPPED'))).toBe(false);
  });

  it('resumes a projector stopped on a corrupted read model once a rebuild swaps fresh tables in', async () => {
    const lines: string[] = [];
    const tally = tallyProjector('tally');
    const runner = new ProjectionRunner({ store, projectors: [tally.projector, ledgerProjector], batchSize: 40, log: (l) => lines.push(l) });
    await runner.prepare();
    await runner.pass();

    // Someone writes into the live table a row for an event not yet applied.
    const more = generateHistory(10, { runs: 1, assignments: 5 }, { idPrefix: 'fresh-' });
    await appendHistory(store, more);
    const fresh = (await store.readAll({ after: log[log.length - 1]!.position, maxCount: 10_000 }))[3]!;
    await store.db.withSchema('tally').insertInto('tally' as never).values({ stream_id: fresh.streamId, revision: fresh.revision, type: fresh.type } as never).execute();

    expect((await runner.pass()).tally).toBe(3);
    expect(byName(await runner.lag()).tally).toMatchObject({
      status: 'stopped',
      stopped: { reason: `InvariantViolation: tally: ${fresh.streamId}@${fresh.revision} is already tallied`, event: { position: fresh.position } },
    });

    // Compared only: the live tables cannot reach the rebuilt position, which the report says.
    const compared = await rebuildProjection({ store, projector: tally.projector, swap: false });
    expect(compared).toMatchObject({ identical: false, swapped: false, liveError: expect.stringContaining('already tallied') });
    expect(byName(await runner.lag()).tally!.status).toBe('stopped');
    expect(await runner.pass()).toEqual({ tally: 0, ledger: 0 });

    const swapped = await rebuildProjection({ store, projector: tally.projector, swap: true });
    expect(swapped).toMatchObject({ identical: false, swapped: true, liveError: expect.stringContaining('already tallied') });
    expect(await countTally('tally')).toBe(log.length + more.length);

    // The checkpoint moved past the event it stopped on: the next pass resumes it.
    expect(await runner.pass()).toEqual({ tally: 0, ledger: 0 });
    expect(byName(await runner.lag()).tally).toMatchObject({ status: 'running', lagEvents: 0 });
    expect(lines.some((l) => l.includes('PROJECTION_RESUMED'))).toBe(true);
    const last = generateHistory(11, { runs: 1, assignments: 2 }, { idPrefix: 'after-' });
    await appendHistory(store, last);
    expect(await runner.pass()).toEqual({ tally: last.length, ledger: last.length });
    const rebuilt = await rebuildProjection({ store, projector: tally.projector, swap: false });
    expect(rebuilt).toMatchObject({ identical: true, liveError: null });
  });
});

describe('isTransientDatabaseError', () => {
  it('retries connection and server-side transient failures, and nothing an invariant or a projector decided', () => {
    const transient = [
      connectionReset(),
      Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' }),
      new AggregateError([Object.assign(new Error('connect ECONNREFUSED ::1:5432'), { code: 'ECONNREFUSED' })], ''),
      new Error('Connection terminated unexpectedly'),
      new Error('timeout exceeded when trying to connect'),
      Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' }),
      Object.assign(new Error('could not serialize access'), { code: '40001' }),
      Object.assign(new Error('deadlock detected'), { code: '40P01' }),
      Object.assign(new Error('sorry, too many clients already'), { code: '53300' }),
      Object.assign(new Error('connection failure'), { code: '08006' }),
      new Error('query failed', { cause: connectionReset() }),
    ];
    for (const error of transient) expect(isTransientDatabaseError(error), String(error)).toBe(true);

    const permanent = [
      new InvariantViolation('run budget would go below zero'),
      new InvariantViolation('Connection terminated unexpectedly (an invariant, whatever it says)'),
      new DomainError('RUN_NOT_FOUND', 'no such run'),
      Object.assign(new Error('duplicate key value violates unique constraint'), { code: '23505' }),
      Object.assign(new Error('relation "x" does not exist'), { code: '42P01' }),
      new TypeError("Cannot read properties of undefined (reading 'amountMsat')"),
      'a string',
      null,
    ];
    for (const error of permanent) expect(isTransientDatabaseError(error), String(error)).toBe(false);
  });
});
