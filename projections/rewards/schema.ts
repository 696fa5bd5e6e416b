// Typed kysely schema of the rewards projection's tables (int8 columns come back as decimal strings from pg and PGlite alike).

import type { ColumnType } from 'kysely';

/** Written as a decimal string, read as one: msat never passes through a float. */
type Int8 = ColumnType<string, string, string>;

export interface RewardsContributorsTable {
  contributor_id: string;
  /** Escrows settled plus compensations sent to the contributor (the base rewards it got). */
  earned_msat: Int8;
  /** Escrow HTLCs locked for the contributor and not yet settled, canceled or expired. */
  pending_escrow_msat: Int8;
  /** Base rewards of rejections not (yet) overturned. */
  forfeited_msat: Int8;
  /** Base rewards whose rejection is disputed and not yet resolved. */
  disputed_msat: Int8;
  /** Base rewards whose rejection a replay overturned. */
  overturned_msat: Int8;
  /** Bonus payouts sent. */
  bonus_msat: Int8;
  assigned_count: number;
  accepted_count: number;
  rejected_count: number;
  expired_count: number;
}

export interface RewardsRunsTable {
  run_id: string;
  funded_customer_msat: Int8;
  funded_subsidy_msat: Int8;
  /** Sum of open reservations. */
  reserved_msat: Int8;
  /** Escrow HTLCs held for the run's assignments and not yet settled, canceled or expired. */
  escrowed_msat: Int8;
  /** Escrows settled plus bonus and compensation payouts sent, routing fees excluded. */
  paid_msat: Int8;
  /** Routing fees of payouts sent. */
  fees_msat: Int8;
  /** funded_customer + funded_subsidy - paid - fees - escrowed (see RewardsBook.remainingMsat). */
  remaining_msat: Int8;
}

/** Helper: what an assignment's later events need (base reward) and what the pay-once check needs (verdict, paid). */
export interface RewardsAssignmentsTable {
  assignment_id: string;
  run_id: string;
  contributor_id: string;
  base_reward_msat: Int8;
  /** accepted | rejected | overturned | upheld | expired, or null while there is none. */
  verdict: string | null;
  base_paid: boolean;
}

/** Helper: each payment hash's kind, parties, amount and status, to know what a transition moves. */
export interface RewardsInvoicesTable {
  payment_hash: string;
  kind: string;
  assignment_id: string;
  run_id: string;
  contributor_id: string;
  amount_msat: Int8;
  status: string;
}

export interface RewardsTables {
  contributors: RewardsContributorsTable;
  runs: RewardsRunsTable;
  assignments: RewardsAssignmentsTable;
  invoices: RewardsInvoicesTable;
}
