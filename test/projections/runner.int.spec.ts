// The projection runner on both engines: exactly-once under an injected crash before commit, resume, lag, rebuild and swap.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Kysely } from 'kysely';
import type { LedgerStore } from '../../adapters/event-store/ledger-store.js';
import { ledgerProjector } from '../../projections/ledger/ledger-projector.js';
import { accountBalances, trialBalance } from '../../projections/ledger/queries.js';
import type { LedgerTables } from '../../projections/ledger/schema.js';
import { rebuildProjection } from '../../projections/rebuild.js';
import { ProjectionRunner } from '../../projections/runner.js';
import { checksumTables } from '../../projections/checksum.js';
import { appendHistory, generateHistory, type HistoryEvent } from './history.js';
import { countedLag, PROJECTION_ENGINES } from './engines.js';
import { expectedLedger } from './ledger-fold.js';

class InjectedCrash extends Error {}

describe.each(PROJECTION_ENGINES)('projection runner [$name]', (engine) => {
  let store: LedgerStore;
  let history: HistoryEvent[];
  const ledgerDb = () => store.db.withSchema('ledger') as unknown as Kysely<LedgerTables>;

  beforeAll(async () => {
    store = (await engine.open()).store;
    history = generateHistory(7, { runs: 3, assignments: 60 });
    await appendHistory(store, history);
  });
  afterAll(async () => {
    await store?.close();
  });

  it('rolls back a batch that crashes before commit and applies it exactly once after a restart', async () => {
    let batches = 0;
    const crashing = new ProjectionRunner({
      store,
      projectors: [ledgerProjector],
      batchSize: 25,
      beforeCommit: () => {
        batches += 1;
        if (batches === 3) throw new InjectedCrash('killed between the read-model write and the commit');
      },
    });
    await crashing.prepare();
    await expect(crashing.catchUp()).rejects.toThrow(InjectedCrash);
    const [lagAfterCrash] = await crashing.lag();
    expect(lagAfterCrash!.lagEvents).toBe(countedLag(engine, history.length - 2 * 25));

    const restarted = new ProjectionRunner({ store, projectors: [ledgerProjector], batchSize: 25 });
    const applied = await restarted.catchUp();
    expect(applied.ledger).toBe(history.length - 2 * 25);
    expect((await restarted.lag())[0]).toMatchObject({ lagEvents: 0, lagSeconds: 0 });

    const balances = await accountBalances(ledgerDb());
    expect(balancesByAccount(balances)).toEqual(expectedLedger(history.map((h) => h.event)));
    const trial = await trialBalance(ledgerDb());
    expect(trial.debitsPostedMsat).toBe(trial.creditsPostedMsat);
    expect(trial.debitsPendingMsat).toBe(trial.creditsPendingMsat);
  });

  it('rebuilds from position zero into fresh tables identical to the live ones, then swaps them in', async () => {
    const runner = new ProjectionRunner({ store, projectors: [ledgerProjector] });
    await runner.catchUp();
    const compared = await rebuildProjection({ store, projector: ledgerProjector, swap: false });
    expect(compared.identical).toBe(true);
    expect(compared.eventsApplied).toBe(history.length);
    expect(compared.rebuilt).toEqual(compared.live);

    const liveBefore = await checksumTables(store.db, ledgerProjector);
    const swapped = await rebuildProjection({ store, projector: ledgerProjector, swap: true });
    expect(swapped).toMatchObject({ identical: true, swapped: true });
    expect(await checksumTables(store.db, ledgerProjector)).toEqual(liveBefore);

    // The live runner carries on against the swapped-in tables.
    const more = generateHistory(8, { runs: 1, assignments: 5 }, { idPrefix: 'late-' });
    await appendHistory(store, more);
    expect((await runner.catchUp()).ledger).toBe(more.length);
    const all = [...history, ...more].map((h) => h.event);
    expect(balancesByAccount(await accountBalances(ledgerDb()))).toEqual(expectedLedger(all));
  });

  it('catches a rebuild up to a live projection that moved on while it ran', async () => {
    const runner = new ProjectionRunner({ store, projectors: [ledgerProjector] });
    await runner.catchUp();
    const extra = generateHistory(9, { runs: 1, assignments: 3 }, { idPrefix: 'mid-' });
    let appended = false;
    const report = await rebuildProjection({
      store,
      projector: ledgerProjector,
      swap: false,
      batchSize: 50,
      onProgress: async () => {
        if (appended) return;
        appended = true;
        // New events land mid-rebuild, and the live runner applies them first.
        await appendHistory(store, extra);
        await runner.catchUp();
      },
    });
    expect(report.identical).toBe(true);
    expect(report.position).toEqual((await runner.lag())[0]!.checkpoint);
  });
});

function balancesByAccount(balances: Awaited<ReturnType<typeof accountBalances>>) {
  return Object.fromEntries(
    balances.map((b) => [b.accountId, { debitsPendingMsat: b.debitsPendingMsat, debitsPostedMsat: b.debitsPostedMsat, creditsPendingMsat: b.creditsPendingMsat, creditsPostedMsat: b.creditsPostedMsat }]),
  );
}

