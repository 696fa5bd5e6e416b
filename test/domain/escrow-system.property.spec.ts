// Property tests of the escrow system model: no assignment is paid twice, upheld rejections are never paid, overturned ones always are.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { worstCaseCostMsat } from '../../domain/assignment/index.js';
import { impliedSettlement } from '../../domain/index.js';
import { EscrowModel, scenarioArb } from './escrow-model.js';

/** PROPERTY_RUNS raises the effort for a deeper search (the default keeps the suite fast). */
const NUM_RUNS = Number(process.env.PROPERTY_RUNS ?? 400);

type Outcome = 'accepted' | 'overturned' | 'upheld' | 'expired' | 'forfeited' | 'other';

function outcomeOf(model: EscrowModel): Outcome {
  const { status, resolution } = model.assignment.state;
  if (status === 'accepted' || status === 'expired' || status === 'forfeited') return status;
  if (status === 'resolved') return resolution?.resolution === 'overturned' ? 'overturned' : 'upheld';
  return 'other';
}

/** Checked after every step: at most one base payment, and the preimage goes out only when a verdict pays. */
function checkStep(model: EscrowModel): void {
  expect(model.basePayments()).toBeLessThanOrEqual(1);
  expect(model.bonusPayments()).toBeLessThanOrEqual(1);
  if (model.escrow?.status === 'settled') expect(impliedSettlement(model.assignment.state)).toBe('pay');
}

function checkFinal(model: EscrowModel, outcome: Outcome): void {
  if (outcome === 'upheld' || outcome === 'expired' || outcome === 'forfeited') {
    expect(model.basePayments()).toBe(0);
    expect(model.escrow?.status).not.toBe('settled');
    expect(model.compensationInvoices()).toBe(0);
  }
  const abandoned = model.assignment.state.abandonedPayouts;
  if (outcome === 'overturned' || outcome === 'accepted') expect(model.basePayments()).toBe(abandoned.compensation ? 0 : 1);
  if (outcome === 'accepted') expect(model.bonusPayments()).toBe(model.assignment.state.acceptance?.bonusMsat === 0n || abandoned.bonus ? 0 : 1);
  // Liveness: once the world has settled, every payout the verdicts owe is paid or abandoned, and the budget can be released.
  if (outcome !== 'other') {
    expect(model.lines().map((line) => line.state).filter((state) => state !== 'paid' && state !== 'abandoned')).toEqual([]);
    const release = model.release();
    expect(release).not.toBeNull();
    expect(release!.spentMsat).toBeLessThanOrEqual(worstCaseCostMsat(model.assignment.state.terms!));
  }
  if (outcome === 'other' && model.assignment.state.status !== 'accepted') expect(model.basePayments()).toBe(0);
}

describe('property: escrow system model (assignment + escrow + process manager + random node)', () => {
  it('pays an assignment at most once; never pays an upheld rejection; always pays an overturned one', () => {
    const outcomes = new Map<Outcome, number>();
    const paths = new Map<string, number>();
    fc.assert(
      fc.property(scenarioArb, ({ config, steps }) => {
        const model = new EscrowModel(config);
        for (const { dtMs, action } of steps) {
          model.nowMs += dtMs;
          model.apply(action);
          checkStep(model);
        }
        model.drain();
        checkStep(model);
        const outcome = outcomeOf(model);
        checkFinal(model, outcome);
        outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
        const path = model.escrow?.status === 'settled' ? 'settled' : model.compensationInvoices() > 0 ? 'compensated' : 'unpaid';
        paths.set(`${outcome}:${path}`, (paths.get(`${outcome}:${path}`) ?? 0) + 1);
      }),
      { numRuns: NUM_RUNS },
    );
    // Every interesting ending must be reached often enough for the properties to mean something.
    for (const outcome of ['accepted', 'overturned', 'upheld', 'expired'] as const) expect(outcomes.get(outcome) ?? 0).toBeGreaterThan(10);
    for (const path of ['accepted:settled', 'accepted:compensated', 'overturned:settled', 'overturned:compensated']) expect(paths.get(path) ?? 0).toBeGreaterThan(3);
  });
});
