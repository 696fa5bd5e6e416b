// Typed queries over the ledger projection: balances, transfers per assignment, the trial balance.

import { sql, type Kysely } from 'kysely';
import type { LedgerTables } from './schema.js';

export type AccountBalance = Readonly<{
  accountId: string;
  kind: string;
  runId: string | null;
  contributorId: string | null;
  debitsPendingMsat: bigint;
  debitsPostedMsat: bigint;
  creditsPendingMsat: bigint;
  creditsPostedMsat: bigint;
  /** Posted credits minus posted debits: what the account holds, ignoring money in flight. */
  postedBalanceMsat: bigint;
}>;

export async function accountBalances(db: Kysely<LedgerTables>, filter: { runId?: string; contributorId?: string } = {}): Promise<AccountBalance[]> {
  let query = db.selectFrom('accounts').selectAll().orderBy('account_id');
  if (filter.runId !== undefined) query = query.where('run_id', '=', filter.runId);
  if (filter.contributorId !== undefined) query = query.where('contributor_id', '=', filter.contributorId);
  const rows = await query.execute();
  return rows.map((r) => {
    const creditsPostedMsat = BigInt(r.credits_posted_msat);
    const debitsPostedMsat = BigInt(r.debits_posted_msat);
    return {
      accountId: r.account_id,
      kind: r.kind,
      runId: r.run_id,
      contributorId: r.contributor_id,
      debitsPendingMsat: BigInt(r.debits_pending_msat),
      debitsPostedMsat,
      creditsPendingMsat: BigInt(r.credits_pending_msat),
      creditsPostedMsat,
      postedBalanceMsat: creditsPostedMsat - debitsPostedMsat,
    };
  });
}

export type LedgerTransfer = Readonly<{ transferId: string; kind: string; debitAccountId: string; creditAccountId: string; amountMsat: bigint; status: string; paymentHash: string | null }>;

export async function transfersForAssignment(db: Kysely<LedgerTables>, assignmentId: string): Promise<LedgerTransfer[]> {
  const rows = await db.selectFrom('transfers').selectAll().where('assignment_id', '=', assignmentId).orderBy('transfer_id').execute();
  return rows.map((r) => ({ transferId: r.transfer_id, kind: r.kind, debitAccountId: r.debit_account_id, creditAccountId: r.credit_account_id, amountMsat: BigInt(r.amount_msat), status: r.status, paymentHash: r.payment_hash }));
}

export type TrialBalance = Readonly<{ debitsPendingMsat: bigint; creditsPendingMsat: bigint; debitsPostedMsat: bigint; creditsPostedMsat: bigint }>;

/** Sums over every account; a balanced ledger has equal debits and credits in each phase. */
export async function trialBalance(db: Kysely<LedgerTables>): Promise<TrialBalance> {
  const row = await db
    .selectFrom('accounts')
    .select([
      sql<string>`coalesce(sum(debits_pending_msat), 0)::text`.as('dp'),
      sql<string>`coalesce(sum(credits_pending_msat), 0)::text`.as('cp'),
      sql<string>`coalesce(sum(debits_posted_msat), 0)::text`.as('dq'),
      sql<string>`coalesce(sum(credits_posted_msat), 0)::text`.as('cq'),
    ])
    .executeTakeFirstOrThrow();
  return { debitsPendingMsat: BigInt(row.dp), creditsPendingMsat: BigInt(row.cp), debitsPostedMsat: BigInt(row.dq), creditsPostedMsat: BigInt(row.cq) };
}
