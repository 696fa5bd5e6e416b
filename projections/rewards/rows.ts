// Row <-> record conversion for the rewards tables: int8 msat travel as decimal strings, bigint in code.

import type { Insertable, Selectable } from 'kysely';
import type { ContributorRewards, RunBudget } from './rewards-book.js';
import type { RewardsTables } from './schema.js';

export function contributorFromRow(row: Selectable<RewardsTables['contributors']>): ContributorRewards {
  return {
    contributorId: row.contributor_id,
    earnedMsat: BigInt(row.earned_msat),
    pendingEscrowMsat: BigInt(row.pending_escrow_msat),
    forfeitedMsat: BigInt(row.forfeited_msat),
    disputedMsat: BigInt(row.disputed_msat),
    overturnedMsat: BigInt(row.overturned_msat),
    bonusMsat: BigInt(row.bonus_msat),
    assignedCount: Number(row.assigned_count),
    acceptedCount: Number(row.accepted_count),
    rejectedCount: Number(row.rejected_count),
    expiredCount: Number(row.expired_count),
  };
}

export function runFromRow(row: Selectable<RewardsTables['runs']>): RunBudget {
  return {
    runId: row.run_id,
    fundedCustomerMsat: BigInt(row.funded_customer_msat),
    fundedSubsidyMsat: BigInt(row.funded_subsidy_msat),
    reservedMsat: BigInt(row.reserved_msat),
    escrowedMsat: BigInt(row.escrowed_msat),
    paidMsat: BigInt(row.paid_msat),
    feesMsat: BigInt(row.fees_msat),
    remainingMsat: BigInt(row.remaining_msat),
  };
}

export function contributorToRow(c: ContributorRewards): Insertable<RewardsTables['contributors']> {
  return {
    contributor_id: c.contributorId,
    earned_msat: c.earnedMsat.toString(),
    pending_escrow_msat: c.pendingEscrowMsat.toString(),
    forfeited_msat: c.forfeitedMsat.toString(),
    disputed_msat: c.disputedMsat.toString(),
    overturned_msat: c.overturnedMsat.toString(),
    bonus_msat: c.bonusMsat.toString(),
    assigned_count: c.assignedCount,
    accepted_count: c.acceptedCount,
    rejected_count: c.rejectedCount,
    expired_count: c.expiredCount,
  };
}

export function runToRow(r: RunBudget): Insertable<RewardsTables['runs']> {
  return {
    run_id: r.runId,
    funded_customer_msat: r.fundedCustomerMsat.toString(),
    funded_subsidy_msat: r.fundedSubsidyMsat.toString(),
    reserved_msat: r.reservedMsat.toString(),
    escrowed_msat: r.escrowedMsat.toString(),
    paid_msat: r.paidMsat.toString(),
    fees_msat: r.feesMsat.toString(),
    remaining_msat: r.remainingMsat.toString(),
  };
}
