// Migration 0001 of the metrics projection: hourly additive facts per run, settlement times per assignment, run funding mix.

import type { Kysely } from 'kysely';

/** Spelled out here, not imported: a landed migration must not change when the code's column list does. */
const FACT_COLUMNS = [
  'external_revenue_msat',
  'subsidy_funding_msat',
  'rewards_paid_msat',
  'rewards_paid_from_subsidy_msat',
  'fees_msat',
  'accepted_count',
  'rejected_count',
  'disputed_count',
  'resolved_count',
  'overturned_count',
  'replay_compute_ms',
  'claimed_compute_ms',
  'escrow_locked_msat',
  'escrow_released_msat',
] as const;

export async function up(db: Kysely<any>): Promise<void> {
  let hourly = db.schema.createTable('hourly').addColumn('run_id', 'text', (c) => c.notNull()).addColumn('hour_start_ms', 'bigint', (c) => c.notNull());
  for (const column of FACT_COLUMNS) hourly = hourly.addColumn(column, 'bigint', (c) => c.notNull());
  await hourly.addPrimaryKeyConstraint('hourly_pkey', ['run_id', 'hour_start_ms']).execute();
  // Period queries over all runs scan by time.
  await db.schema.createIndex('hourly_by_hour').on('hourly').column('hour_start_ms').execute();
  await db.schema
    .createTable('settlements')
    .addColumn('assignment_id', 'text', (c) => c.primaryKey())
    .addColumn('run_id', 'text', (c) => c.notNull())
    .addColumn('assigned_at_ms', 'bigint')
    .addColumn('settled_at_ms', 'bigint')
    .execute();
  await db.schema
    .createTable('run_funding')
    .addColumn('run_id', 'text', (c) => c.primaryKey())
    .addColumn('customer_msat', 'bigint', (c) => c.notNull())
    .addColumn('subsidy_msat', 'bigint', (c) => c.notNull())
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('run_funding').execute();
  await db.schema.dropTable('settlements').execute();
  await db.schema.dropTable('hourly').execute();
}
