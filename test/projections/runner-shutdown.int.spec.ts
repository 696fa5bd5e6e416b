// Shutdown under a backlog: a long pass sees the stop request between batches, so stop() waits for one batch at most, on both engines.

import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { LedgerStore } from '../../adapters/event-store/ledger-store.js';
import { PassLoop, STOP_ON_ERROR } from '../../projections/pass-loop.js';
import type { LogPosition } from '../../domain/ports/event-store.js';
import { ALL_PROJECTORS } from '../../projections/index.js';
import { ProjectionRunner } from '../../projections/runner.js';
import { appendHistory, generateHistory } from './history.js';
import { countedLag, PROJECTION_ENGINES } from './engines.js';

/** About 53 batches per projector in this backlog: a pass that ran to the end would take over a hundred and fifty. */
const BATCH_SIZE = 10;

/** Resolves the n-th time `tick` is called; the stop request is made there, whatever the machine's speed. */
function nth(n: number): { tick: () => void; reached: Promise<void> } {
  let resolve!: () => void;
  const reached = new Promise<void>((r) => (resolve = r));
  let count = 0;
  return { tick: () => void (++count === n && resolve()), reached };
}

describe.each(PROJECTION_ENGINES)('stopping under a backlog [$name]', (engine) => {
  let store: LedgerStore;
  let backlog: number;

  beforeEach(async () => {
    store = (await engine.open()).store;
    const history = generateHistory(7, { runs: 3, assignments: 60 });
    await appendHistory(store, history);
    backlog = history.length;
  });
  afterEach(async () => {
    await store?.close();
  });

  it('a PassLoop whose pass reads the log in many batches stops within one batch of stop()', async () => {
    let batches = 0;
    let finished = false;
    const fifth = nth(5);
    const loop = new PassLoop({
      store,
      pollIntervalMs: 1_000,
      onError: STOP_ON_ERROR,
      pass: async (stopped) => {
        let after: LogPosition | undefined;
        for (;;) {
          if (stopped()) return;
          const batch = await store.readAll({ ...(after ? { after } : {}), maxCount: BATCH_SIZE });
          if (batch.length === 0) break;
          after = batch[batch.length - 1]!.position;
          batches += 1;
          fifth.tick();
        }
        finished = true;
      },
    });
    const running = loop.start();
    await fifth.reached;
    const atRequest = batches;
    await loop.stop();
    await running;
    expect(batches - atRequest).toBeLessThanOrEqual(1);
    expect(finished).toBe(false);
    expect(batches).toBeLessThan(Math.ceil(backlog / BATCH_SIZE));
  });

  it('the projection runner, stopped mid-backlog, finishes at most the batch in progress and leaves the rest for the next pass', async () => {
    let committed = 0;
    const fifth = nth(5);
    const runner = new ProjectionRunner({ store, projectors: ALL_PROJECTORS, batchSize: BATCH_SIZE, beforeCommit: () => {
      committed += 1;
      fifth.tick();
    } });
    await runner.prepare();
    const running = runner.start();
    await fifth.reached;
    const atRequest = committed;
    await runner.stop();
    await running;
    expect(committed - atRequest).toBeLessThanOrEqual(1);
    expect(runner.progress().batchesAfterStopRequest).toBeLessThanOrEqual(1);
    const lags = await runner.lag();
    expect(lags.filter((l) => l.lagEvents > 0).map((l) => l.projector)).toEqual(ALL_PROJECTORS.map((p) => p.name));

    // The next pass goes on from the checkpoints to the head: nothing was lost or applied twice.
    const applied = await runner.pass();
    expect(Object.fromEntries(Object.entries(applied).map(([name, n]) => [name, countedLag(engine, n)]))).toEqual(Object.fromEntries(lags.map((l) => [l.projector, l.lagEvents])));
    for (const lag of await runner.lag()) expect(lag.lagEvents, lag.projector).toBe(0);
    expect(runner.progress().events).toBe(backlog * ALL_PROJECTORS.length);
  });

  it('an aborted signal stops the started runner between batches, before anyone awaits stop()', async () => {
    let committed = 0;
    const fifth = nth(5);
    const runner = new ProjectionRunner({ store, projectors: ALL_PROJECTORS, batchSize: BATCH_SIZE, beforeCommit: () => {
      committed += 1;
      fifth.tick();
    } });
    await runner.prepare();
    const shutdown = new AbortController();
    const running = runner.start({ signal: shutdown.signal });
    await fifth.reached;
    const atRequest = committed;
    shutdown.abort();
    // The loop ends on its own; stop() afterwards only collects it.
    await running;
    expect(committed - atRequest).toBeLessThanOrEqual(1);
    expect(runner.progress().batchesAfterStopRequest).toBeLessThanOrEqual(1);
    await runner.stop();
    expect((await runner.lag()).every((l) => l.lagEvents > 0)).toBe(true);
  });
});
