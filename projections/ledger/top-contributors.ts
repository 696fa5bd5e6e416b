// Contributors ranked by what the ledger posted to them (escrow settlements and payouts), per run and period if asked.

import { sql, type Kysely } from 'kysely';
import type { LedgerTables } from './schema.js';

export type TopContributor = Readonly<{
  contributorId: string;
  /** Posted escrow settlements plus bonus and compensation payouts, routing fees excluded. */
  paidMsat: bigint;
  /** Posted transfers counted in paidMsat. */
  payments: number;
  /** Escrow held for the contributor now (pending transfers created in the window). */
  pendingEscrowMsat: bigint;
}>;

export type TopContributorsQuery = Readonly<{ runId?: string; fromMs?: number; toMs?: number; limit: number }>;

/**
 * A posted transfer counts in the period it was posted (resolved_at_ms for a settled escrow,
 * created_at_ms for a payout, which is posted at once). Ties are broken by contributor id, so the
 * order is stable between polls.
 */
export async function topContributors(db: Kysely<LedgerTables>, query: TopContributorsQuery): Promise<TopContributor[]> {
  const at = sql<string>`coalesce(resolved_at_ms, created_at_ms)`;
  const rows = await db
    .selectFrom('transfers')
    .innerJoin('accounts', 'accounts.account_id', 'transfers.credit_account_id')
    .where('accounts.kind', '=', 'contributor')
    .where('transfers.status', 'in', ['posted', 'pending'])
    .$if(query.runId !== undefined, (q) => q.where('transfers.run_id', '=', query.runId!))
    .$if(query.fromMs !== undefined, (q) => q.where(at, '>=', String(query.fromMs)))
    .$if(query.toMs !== undefined, (q) => q.where(at, '<', String(query.toMs)))
    .select('accounts.contributor_id')
    .select(sql<string>`coalesce(sum(amount_msat) FILTER (WHERE transfers.status = 'posted'), 0)::text`.as('paid'))
    .select(sql<string>`count(*) FILTER (WHERE transfers.status = 'posted')::text`.as('payments'))
    .select(sql<string>`coalesce(sum(amount_msat) FILTER (WHERE transfers.status = 'pending'), 0)::text`.as('pending'))
    .groupBy('accounts.contributor_id')
    .orderBy(sql`coalesce(sum(amount_msat) FILTER (WHERE transfers.status = 'posted'), 0)`, 'desc')
    .orderBy('accounts.contributor_id')
    .limit(query.limit)
    .execute();
  return rows.map((r) => ({ contributorId: r.contributor_id!, paidMsat: BigInt(r.paid), payments: Number(r.payments), pendingEscrowMsat: BigInt(r.pending) }));
}
