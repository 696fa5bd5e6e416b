// Rewards projection against a plain fold: per-contributor and per-run money on PostgreSQL and PGlite, and rebuild identity.

import fc from 'fast-check';
import type { Kysely } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LedgerStore } from '../../adapters/event-store/ledger-store.js';
import type { DomainEvent } from '../../domain/events.js';
import { rebuildProjection } from '../../projections/rebuild.js';
import { contributorRewards, listContributorRewards, listRunBudgets, runBudget } from '../../projections/rewards/queries.js';
import { rewardsProjector } from '../../projections/rewards/rewards-projector.js';
import { ProjectionRunner } from '../../projections/runner.js';
import { PROJECTION_ENGINES } from './engines.js';
import { appendHistory, generateHistory, historyArbitrary } from './history.js';

const NUM_RUNS = Number(process.env.PROPERTY_RUNS ?? 6);
/** A fixed history that reaches every figure, so the coverage checks below never depend on luck. */
const COVERING_HISTORY = generateHistory(20261121, { runs: 3, assignments: 150 }, { idPrefix: 'cover-' });

describe.each(PROJECTION_ENGINES)('rewards projection [$name]', (engine) => {
  let store: LedgerStore;
  let runner: ProjectionRunner;
  let histories = 0;
  const everything: DomainEvent[] = [];
  const rewards = (): Kysely<any> => store.db.withSchema('rewards') as unknown as Kysely<any>;

  beforeAll(async () => {
    store = (await engine.open()).store;
    runner = new ProjectionRunner({ store, projectors: [rewardsProjector], batchSize: 29 });
    await runner.prepare();
  });
  afterAll(async () => {
    await store?.close();
  });

  it('matches a plain fold per contributor and per run, and never goes negative where it must not', async () => {
    const arbitrary = fc.tuple(historyArbitrary({ maxRuns: 3, maxAssignments: 20, idPrefix: () => `w${(histories += 1)}-` }), fc.integer({ min: 10, max: 150 }));
    await fc.assert(
      fc.asyncProperty(arbitrary, async ([history, chunkSize]) => {
        for (let i = 0; i < history.length; i += chunkSize) {
          await appendHistory(store, history.slice(i, i + chunkSize));
          await runner.catchUp();
        }
        everything.push(...history.map((h) => h.event));
        const expected = expectedRewards(everything);
        const contributors = await listContributorRewards(rewards());
        const runs = await listRunBudgets(rewards());
        expect(Object.fromEntries(contributors.map(({ contributorId, ...rest }) => [contributorId, rest]))).toEqual(expected.contributors);
        expect(Object.fromEntries(runs.map(({ runId, ...rest }) => [runId, rest]))).toEqual(expected.runs);
        for (const c of contributors) expect([c.pendingEscrowMsat, c.forfeitedMsat, c.disputedMsat].every((v) => v >= 0n)).toBe(true);
        for (const r of runs) expect([r.reservedMsat, r.escrowedMsat].every((v) => v >= 0n)).toBe(true);
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it('answers single lookups, and a covering history exercises every figure', async () => {
    await appendHistory(store, COVERING_HISTORY);
    await runner.catchUp();
    everything.push(...COVERING_HISTORY.map((h) => h.event));
    const expected = expectedRewards(everything);
    const runs = await listRunBudgets(rewards());
    expect(Object.fromEntries(runs.map(({ runId, ...rest }) => [runId, rest]))).toEqual(expected.runs);
    const [contributorId, figures] = Object.entries(expected.contributors).find(([, c]) => c.overturnedMsat > 0n)!;
    expect(await contributorRewards(rewards(), contributorId)).toEqual({ contributorId, ...figures });
    expect(await contributorRewards(rewards(), 'nobody')).toBeNull();
    const [runId, budget] = Object.entries(expected.runs).find(([, r]) => r.feesMsat > 0n && r.escrowedMsat > 0n && r.reservedMsat > 0n)!;
    expect(await runBudget(rewards(), runId)).toEqual({ runId, ...budget });
    const totals = Object.values(expected.contributors);
    for (const figure of ['earnedMsat', 'pendingEscrowMsat', 'forfeitedMsat', 'bonusMsat'] as const) expect(totals.some((c) => c[figure] > 0n)).toBe(true);
    expect(totals.some((c) => c.expiredCount > 0)).toBe(true);
    expect(Object.values(expected.runs).some((r) => r.fundedSubsidyMsat > 0n && r.fundedCustomerMsat > 0n)).toBe(true);
  });

  it('rebuilds from position zero into tables identical to the live ones', async () => {
    const report = await rebuildProjection({ store, projector: rewardsProjector, swap: false, batchSize: 500 });
    expect(report.identical).toBe(true);
  });
});

// ---- the independent fold: plain loops over the events, no SQL, no RewardsBook code --------

type ExpectedContributor = {
  earnedMsat: bigint;
  pendingEscrowMsat: bigint;
  forfeitedMsat: bigint;
  disputedMsat: bigint;
  overturnedMsat: bigint;
  bonusMsat: bigint;
  assignedCount: number;
  acceptedCount: number;
  rejectedCount: number;
  expiredCount: number;
};

type ExpectedRun = {
  fundedCustomerMsat: bigint;
  fundedSubsidyMsat: bigint;
  reservedMsat: bigint;
  escrowedMsat: bigint;
  paidMsat: bigint;
  feesMsat: bigint;
  remainingMsat: bigint;
};

type Expected = { contributors: Record<string, ExpectedContributor>; runs: Record<string, ExpectedRun> };

function expectedRewards(events: readonly DomainEvent[]): Expected {
  const expected: Expected = { contributors: {}, runs: {} };
  const baseReward = new Map<string, bigint>();
  for (const event of events) foldOne(expected, baseReward, event);
  for (const run of Object.values(expected.runs)) run.remainingMsat = run.fundedCustomerMsat + run.fundedSubsidyMsat - run.paidMsat - run.feesMsat - run.escrowedMsat;
  return expected;
}

type Lookup<T> = (id: string) => T;

function foldOne(expected: Expected, baseReward: Map<string, bigint>, event: DomainEvent): void {
  const c: Lookup<ExpectedContributor> = (id) =>
    (expected.contributors[id] ??= {
      earnedMsat: 0n,
      pendingEscrowMsat: 0n,
      forfeitedMsat: 0n,
      disputedMsat: 0n,
      overturnedMsat: 0n,
      bonusMsat: 0n,
      assignedCount: 0,
      acceptedCount: 0,
      rejectedCount: 0,
      expiredCount: 0,
    });
  const r: Lookup<ExpectedRun> = (id) =>
    (expected.runs[id] ??= { fundedCustomerMsat: 0n, fundedSubsidyMsat: 0n, reservedMsat: 0n, escrowedMsat: 0n, paidMsat: 0n, feesMsat: 0n, remainingMsat: 0n });
  const d = event.data as Record<string, any>;
  if (typeof d.contributorId === 'string') c(d.contributorId);
  if (typeof d.runId === 'string') r(d.runId);
  switch (event.type) {
    case 'RunFunded':
      if (event.data.source === 'customer') r(event.data.runId).fundedCustomerMsat += event.data.amountMsat;
      else r(event.data.runId).fundedSubsidyMsat += event.data.amountMsat;
      break;
    case 'BudgetReserved':
      r(event.data.runId).reservedMsat += event.data.amountMsat;
      break;
    case 'BudgetReleased':
      r(event.data.runId).reservedMsat -= event.data.reservedMsat;
      break;
    case 'WorkAssigned':
      baseReward.set(event.data.assignmentId, event.data.baseRewardMsat);
      c(event.data.contributorId).assignedCount += 1;
      break;
    case 'SubmissionAccepted':
      c(event.data.contributorId).acceptedCount += 1;
      break;
    case 'SubmissionRejected':
      c(event.data.contributorId).rejectedCount += 1;
      c(event.data.contributorId).forfeitedMsat += baseReward.get(event.data.assignmentId)!;
      break;
    case 'RejectionDisputed':
      c(event.data.contributorId).disputedMsat += baseReward.get(event.data.assignmentId)!;
      break;
    case 'DisputeResolved':
      c(event.data.contributorId).disputedMsat -= event.data.baseRewardMsat;
      if (event.data.resolution === 'overturned') {
        c(event.data.contributorId).forfeitedMsat -= event.data.baseRewardMsat;
        c(event.data.contributorId).overturnedMsat += event.data.baseRewardMsat;
      }
      break;
    case 'AssignmentExpired':
      c(event.data.contributorId).expiredCount += 1;
      break;
    default:
      foldInvoice(c, r, event);
  }
}

function foldInvoice(c: Lookup<ExpectedContributor>, r: Lookup<ExpectedRun>, event: DomainEvent): void {
  switch (event.type) {
    case 'InvoiceHeld':
      c(event.data.contributorId).pendingEscrowMsat += event.data.amountMsat;
      r(event.data.runId).escrowedMsat += event.data.amountMsat;
      break;
    case 'InvoiceSettled':
      c(event.data.contributorId).pendingEscrowMsat -= event.data.amountMsat;
      c(event.data.contributorId).earnedMsat += event.data.amountMsat;
      r(event.data.runId).escrowedMsat -= event.data.amountMsat;
      r(event.data.runId).paidMsat += event.data.amountMsat;
      r(event.data.runId).feesMsat += event.data.feeMsat ?? 0n;
      break;
    case 'InvoiceCanceled':
    case 'InvoiceExpired':
      if (event.data.wasHeld) {
        c(event.data.contributorId).pendingEscrowMsat -= event.data.amountMsat;
        r(event.data.runId).escrowedMsat -= event.data.amountMsat;
      }
      break;
    case 'PaymentSent':
      if (event.data.kind === 'bonus') c(event.data.contributorId).bonusMsat += event.data.amountMsat;
      else c(event.data.contributorId).earnedMsat += event.data.amountMsat;
      r(event.data.runId).paidMsat += event.data.amountMsat;
      r(event.data.runId).feesMsat += event.data.feeMsat;
      break;
    default:
      break;
  }
}
