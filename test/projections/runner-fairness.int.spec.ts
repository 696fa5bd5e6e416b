// Fairness on both engines: the runner gives each projector one bounded batch per turn, so none waits for another's backlog, even while a writer appends.

import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { LedgerStore } from '../../adapters/event-store/ledger-store.js';
import { ALL_PROJECTORS } from '../../projections/index.js';
import { ledgerProjector } from '../../projections/ledger/ledger-projector.js';
import { ProjectionRunner } from '../../projections/runner.js';
import { appendHistory, generateHistory } from './history.js';
import { countedLag, PROJECTION_ENGINES } from './engines.js';

/** Small against the backlog (about 53 batches per projector), so every projector has a backlog for many turns. */
const BATCH_SIZE = 10;
const NAMES = ALL_PROJECTORS.map((p) => p.name);

/** Every committed batch in order, and a way to wait until they satisfy a condition (the synchronisation). */
function batchLog() {
  const batches: { projector: string; events: number }[] = [];
  const waiters: { done: () => boolean; resolve: () => void }[] = [];
  /** Events applied per projector after the first `count` batches (all of them by default). */
  const appliedAfter = (count = batches.length): Record<string, number> => {
    const applied: Record<string, number> = Object.fromEntries(NAMES.map((n) => [n, 0]));
    for (const b of batches.slice(0, count)) applied[b.projector]! += b.events;
    return applied;
  };
  const record = (projector: string, events: number): void => {
    batches.push({ projector, events });
    for (const waiter of waiters.filter((w) => w.done())) {
      waiters.splice(waiters.indexOf(waiter), 1);
      waiter.resolve();
    }
  };
  const until = (done: () => boolean): Promise<void> => (done() ? Promise.resolve() : new Promise((resolve) => waiters.push({ done, resolve })));
  const reached = (count: number): Promise<void> => until(() => batches.length >= count);
  return { batches, record, until, reached, appliedAfter };
}

function spread(applied: Record<string, number>): number {
  const values = Object.values(applied);
  return Math.max(...values) - Math.min(...values);
}

describe.each(PROJECTION_ENGINES)('projection runner fairness [$name]', (engine) => {
  let store: LedgerStore;
  let backlog: number;

  beforeEach(async () => {
    store = (await engine.open()).store;
    const history = generateHistory(7, { runs: 3, assignments: 60 });
    await appendHistory(store, history);
    backlog = history.length;
    expect(backlog).toBeGreaterThan(40 * BATCH_SIZE);
  });
  afterEach(async () => {
    await store?.close();
  });

  it('advances every projector in each bounded pass: one batch each per turn, none idle while another runs ahead', async () => {
    const log = batchLog();
    const runner = new ProjectionRunner({ store, projectors: ALL_PROJECTORS, batchSize: BATCH_SIZE, beforeCommit: (name, batch) => log.record(name, batch.length) });
    await runner.prepare();

    const turnsPerPass = 2;
    for (let pass = 1; pass <= 3; pass += 1) {
      const before = log.batches.length;
      // A pass asked to stop after two turns of every projector, as the service's pass is at shutdown.
      await runner.pass(() => log.batches.length - before >= turnsPerPass * NAMES.length);
      for (const lag of await runner.lag()) {
        expect(lag, lag.projector).toMatchObject({ status: 'running', lagEvents: countedLag(engine, backlog - pass * turnsPerPass * BATCH_SIZE) });
      }
    }
    expect(log.batches.map((b) => b.projector)).toEqual(Array.from({ length: 3 * turnsPerPass * NAMES.length }, (_, i) => NAMES[i % NAMES.length]));

    // catchUp() takes turns the same way, and still brings every projector to the head.
    const rest = await runner.catchUp();
    expect(rest).toEqual(Object.fromEntries(NAMES.map((n) => [n, backlog - 3 * turnsPerPass * BATCH_SIZE])));
    for (let i = 0; i < log.batches.length; i += 1) expect(spread(log.appliedAfter(i + 1)), `after batch ${i + 1}`).toBeLessThanOrEqual(BATCH_SIZE);
    for (const lag of await runner.lag()) expect(lag.lagEvents, lag.projector).toBe(0);
    expect(runner.progress()).toMatchObject({ events: backlog * NAMES.length, batchesAfterStopRequest: null });
  });

  it('keeps every projector advancing, a batch each per turn, while a writer appends as fast as the runner applies', async () => {
    const log = batchLog();
    const runner = new ProjectionRunner({ store, projectors: ALL_PROJECTORS, batchSize: BATCH_SIZE, pollIntervalMs: 20, beforeCommit: (name, batch) => log.record(name, batch.length) });
    await runner.prepare();
    const running = runner.start();

    // A sustained append rate tied to the runner's own pace: a chunk of about a turn's worth of events after every turn.
    const chunks = 10;
    let appended = 0;
    const writer = (async () => {
      for (let k = 1; k <= chunks; k += 1) {
        await log.reached(k * NAMES.length);
        const chunk = generateHistory(100 + k, { runs: 1, assignments: 4 }, { idPrefix: `w${k}-` });
        await appendHistory(store, chunk);
        appended += chunk.length;
      }
    })();
    try {
      await writer;
      expect(appended).toBeGreaterThanOrEqual(chunks * BATCH_SIZE);
      // While the writer ran, the runner took turns: each projector had a batch in every turn.
      const whileWriting = log.batches.slice(0, chunks * NAMES.length).map((b) => b.projector);
      expect(whileWriting).toEqual(Array.from({ length: chunks * NAMES.length }, (_, i) => NAMES[i % NAMES.length]));

      // Then all of them reach the head.
      const total = backlog + appended;
      await log.until(() => Object.values(log.appliedAfter()).every((n) => n === total));
      for (const lag of await runner.lag()) expect(lag, lag.projector).toMatchObject({ status: 'running', lagEvents: 0 });
      // No projector ever ran more than one batch ahead of another.
      for (let i = 0; i < log.batches.length; i += 1) expect(spread(log.appliedAfter(i + 1)), `after batch ${i + 1}`).toBeLessThanOrEqual(BATCH_SIZE);
      expect(log.appliedAfter()).toEqual(Object.fromEntries(NAMES.map((n) => [n, total])));
    } finally {
      await runner.stop();
    }
    await running;
  });
  it('keeps the turn of a projector at the head: it takes in new appends while the others work through their backlog', async () => {
    const ahead = new ProjectionRunner({ store, projectors: [ledgerProjector] });
    await ahead.prepare();
    await ahead.catchUp();
    const log = batchLog();
    const runner = new ProjectionRunner({ store, projectors: ALL_PROJECTORS, batchSize: BATCH_SIZE, beforeCommit: (name, batch) => log.record(name, batch.length) });
    await runner.prepare();
    const rewardsBatches = () => log.batches.filter((b) => b.projector === 'rewards').length;

    // A chunk after each of the first rewards batches; the ledger, at the head, takes in each one over its next turns.
    const chunks = 6;
    let appended = 0;
    let writerDone = false;
    const writer = (async () => {
      for (let k = 1; k <= chunks; k += 1) {
        await log.until(() => rewardsBatches() >= k);
        const chunk = generateHistory(200 + k, { runs: 1, assignments: 1 }, { idPrefix: `h${k}-` });
        await appendHistory(store, chunk);
        appended += chunk.length;
      }
      writerDone = true;
    })();
    // The pass is asked to stop once the ledger has taken in every append: it would never get there if it lost its turn at the head.
    const applied = await runner.pass(() => writerDone && log.appliedAfter().ledger === appended);
    await writer;

    expect(applied.ledger).toBe(appended);
    const lag = Object.fromEntries((await runner.lag()).map((l) => [l.projector, l.lagEvents]));
    expect(lag.ledger).toBe(0);
    expect(lag.rewards).toBeGreaterThan(0);
    expect(lag.metrics).toBeGreaterThan(0);
  });
});
