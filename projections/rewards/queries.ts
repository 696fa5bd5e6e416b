// Typed reads of the rewards projection; pass a Kysely scoped to its schema (db.withSchema('rewards')).

import type { Kysely } from 'kysely';
import type { ContributorRewards, RunBudget } from './rewards-book.js';
import { contributorFromRow, runFromRow } from './rows.js';
import type { RewardsTables } from './schema.js';

export type { ContributorRewards, RunBudget } from './rewards-book.js';

export async function contributorRewards(db: Kysely<any>, contributorId: string): Promise<ContributorRewards | null> {
  const row = await (db as Kysely<RewardsTables>).selectFrom('contributors').selectAll().where('contributor_id', '=', contributorId).executeTakeFirst();
  return row === undefined ? null : contributorFromRow(row);
}

/** Every contributor the log has named, ordered by id. */
export async function listContributorRewards(db: Kysely<any>): Promise<ContributorRewards[]> {
  const rows = await (db as Kysely<RewardsTables>).selectFrom('contributors').selectAll().orderBy('contributor_id').execute();
  return rows.map(contributorFromRow);
}

export async function runBudget(db: Kysely<any>, runId: string): Promise<RunBudget | null> {
  const row = await (db as Kysely<RewardsTables>).selectFrom('runs').selectAll().where('run_id', '=', runId).executeTakeFirst();
  return row === undefined ? null : runFromRow(row);
}

/** Every run the log has named, ordered by id. */
export async function listRunBudgets(db: Kysely<any>): Promise<RunBudget[]> {
  const rows = await (db as Kysely<RewardsTables>).selectFrom('runs').selectAll().orderBy('run_id').execute();
  return rows.map(runFromRow);
}
