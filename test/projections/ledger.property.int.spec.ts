// Property: any valid random history gives a balanced ledger with no negative run budget, and incremental equals rebuild.

import fc from 'fast-check';
import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LedgerStore } from '../../adapters/event-store/ledger-store.js';
import type { DomainEvent } from '../../domain/events.js';
import { ledgerProjector } from '../../projections/ledger/ledger-projector.js';
import { accountBalances, trialBalance } from '../../projections/ledger/queries.js';
import type { LedgerTables } from '../../projections/ledger/schema.js';
import { rebuildProjection } from '../../projections/rebuild.js';
import { ProjectionRunner } from '../../projections/runner.js';
import { PROJECTION_ENGINES } from './engines.js';
import { appendHistory, historyArbitrary } from './history.js';
import { expectedLedger } from './ledger-fold.js';

const NUM_RUNS = Number(process.env.PROPERTY_RUNS ?? 8);

describe.each(PROJECTION_ENGINES)('ledger properties [$name]', (engine) => {
  let store: LedgerStore;
  let runner: ProjectionRunner;
  const everything: DomainEvent[] = [];

  beforeAll(async () => {
    store = (await engine.open()).store;
    runner = new ProjectionRunner({ store, projectors: [ledgerProjector], batchSize: 40 });
    await runner.prepare();
  });
  afterAll(async () => {
    await store?.close();
  });

  it('balances for every history, keeps run budgets >= 0, matches a plain fold, and equals a rebuild', async () => {
    const ledger = () => store.db.withSchema('ledger') as unknown as Kysely<LedgerTables>;
    await fc.assert(
      fc.asyncProperty(
        // A fresh id prefix per generated history (shrinks included): histories share one store.
        historyArbitrary({ maxRuns: 3, maxAssignments: 12, idPrefix: () => `p${randomUUID().slice(0, 8)}-` }),
        fc.integer({ min: 1, max: 60 }),
        async (history, chunkSize) => {
          // Incremental: the log grows in chunks and the runner catches up after each.
          for (let i = 0; i < history.length; i += chunkSize) {
            await appendHistory(store, history.slice(i, i + chunkSize));
            await runner.catchUp();
          }
          everything.push(...history.map((h) => h.event));

          const trial = await trialBalance(ledger());
          expect(trial.debitsPendingMsat).toBe(trial.creditsPendingMsat);
          expect(trial.debitsPostedMsat).toBe(trial.creditsPostedMsat);
          const balances = await accountBalances(ledger());
          for (const run of balances.filter((b) => b.kind === 'run_budget')) {
            expect(run.creditsPostedMsat - run.debitsPostedMsat - run.debitsPendingMsat).toBeGreaterThanOrEqual(0n);
          }
          const expected = expectedLedger(everything);
          expect(Object.fromEntries(balances.map((b) => [b.accountId, pick(b)]))).toEqual(expected);

          const rebuild = await rebuildProjection({ store, projector: ledgerProjector, swap: false, batchSize: 200 });
          expect(rebuild.identical).toBe(true);
        },
      ),
      { numRuns: NUM_RUNS },
    );
  });
});

function pick(b: { debitsPendingMsat: bigint; debitsPostedMsat: bigint; creditsPendingMsat: bigint; creditsPostedMsat: bigint }) {
  return { debitsPendingMsat: b.debitsPendingMsat, debitsPostedMsat: b.debitsPostedMsat, creditsPendingMsat: b.creditsPendingMsat, creditsPostedMsat: b.creditsPostedMsat };
}
