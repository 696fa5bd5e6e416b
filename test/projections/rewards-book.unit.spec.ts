// RewardsBook's invariants: the fold stops on money that would go negative, a hash used twice, or a base reward paid twice.

import { describe, expect, it } from 'vitest';
import { InvariantViolation, type DomainEvent } from '../../domain/index.js';
import { RewardsBook, remainingMsat } from '../../projections/rewards/rewards-book.js';
import { generateHistory, paymentHashFor } from './history.js';

const freshBook = (): RewardsBook => new RewardsBook(new Map(), new Map(), new Map(), new Map());

function fold(events: readonly DomainEvent[]): RewardsBook {
  const book = freshBook();
  for (const event of events) book.apply(event);
  book.finish();
  return book;
}

const REF = { assignmentId: 'a1', runId: 'r1', contributorId: 'c1', atMs: 1 };
const ESCROW = { ...REF, paymentHash: paymentHashFor('a1', 'escrow'), kind: 'escrow' as const, amountMsat: 1000n };
const assigned: DomainEvent = {
  type: 'WorkAssigned',
  data: { ...REF, step: 1, shardId: 's', batchIndex: 0, baseCheckpointDigest: '0'.repeat(64), seed: '1', baseRewardMsat: 1000n, maxBonusMsat: 0n, maxFeeMsat: 0n, deadlineMs: 10, disputeWindowMs: 10 },
};
const accepted: DomainEvent = { type: 'SubmissionAccepted', data: { ...REF, validatorId: 'v', qualityScore: 1, bonusMsat: 0n, evidence: {}, baseRewardMsat: 1000n } };
const opened: DomainEvent = { type: 'InvoiceOpened', data: { ...ESCROW, bolt11: 'lnbc1', expiresAtMs: 100, cltvExpiryHeight: 1 } };
const held: DomainEvent = { type: 'InvoiceHeld', data: ESCROW };
const settled: DomainEvent = { type: 'InvoiceSettled', data: { ...ESCROW, preimageHex: '1'.repeat(64), feeMsat: 0n } };

describe('RewardsBook', () => {
  it('folds a generated history and keeps remaining = funded - paid - fees - escrowed', () => {
    const book = fold(generateHistory(3, { runs: 2, assignments: 30 }).map((h) => h.event));
    for (const run of book.runs.values()) expect(run.remainingMsat).toBe(remainingMsat(run));
    expect([...book.runs.values()].some((run) => run.paidMsat > 0n)).toBe(true);
  });

  it('posts a held escrow: pending becomes earned, escrowed becomes paid', () => {
    const book = fold([assigned, accepted, opened, held, settled]);
    expect(book.contributors.get('c1')).toMatchObject({ earnedMsat: 1000n, pendingEscrowMsat: 0n, acceptedCount: 1 });
    expect(book.runs.get('r1')).toMatchObject({ paidMsat: 1000n, escrowedMsat: 0n, remainingMsat: -1000n });
  });

  it('stops on a settle without a hold, a reused payment hash, or a release beyond the reservation', () => {
    expect(() => fold([assigned, accepted, opened, settled])).toThrow(InvariantViolation);
    expect(() => fold([assigned, opened, opened])).toThrow(InvariantViolation);
    const release: DomainEvent = { type: 'BudgetReleased', data: { runId: 'r1', reservationId: 'x', assignmentId: 'a1', reservedMsat: 5n, spentMsat: 0n, returnedMsat: 5n, atMs: 1 } };
    expect(() => fold([release])).toThrow(/released more than it reserved/);
  });

  it('refuses to pay a base reward twice or without a paying verdict', () => {
    const compensation = { ...REF, paymentHash: paymentHashFor('a1', 'compensation'), kind: 'compensation' as const, amountMsat: 1000n };
    const payout: DomainEvent[] = [
      { type: 'InvoiceOpened', data: { ...compensation, bolt11: 'lnbc1', expiresAtMs: 100, cltvExpiryHeight: null } },
      { type: 'PaymentSent', data: { ...compensation, feeMsat: 1n, preimageHex: '2'.repeat(64) } },
    ];
    expect(() => fold([assigned, accepted, opened, held, settled, ...payout])).toThrow(/paid twice/);
    expect(() => fold([assigned, opened, held, settled])).toThrow(/paid with verdict null/);
  });
});
