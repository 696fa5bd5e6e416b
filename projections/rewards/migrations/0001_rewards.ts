// Migration 0001 of the rewards projection: per-contributor and per-run money, and the assignment and invoice indexes they need.

import type { Kysely } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('contributors')
    .addColumn('contributor_id', 'text', (c) => c.primaryKey())
    .addColumn('earned_msat', 'bigint', (c) => c.notNull())
    .addColumn('pending_escrow_msat', 'bigint', (c) => c.notNull())
    .addColumn('forfeited_msat', 'bigint', (c) => c.notNull())
    .addColumn('disputed_msat', 'bigint', (c) => c.notNull())
    .addColumn('overturned_msat', 'bigint', (c) => c.notNull())
    .addColumn('bonus_msat', 'bigint', (c) => c.notNull())
    .addColumn('assigned_count', 'integer', (c) => c.notNull())
    .addColumn('accepted_count', 'integer', (c) => c.notNull())
    .addColumn('rejected_count', 'integer', (c) => c.notNull())
    .addColumn('expired_count', 'integer', (c) => c.notNull())
    .execute();
  await db.schema
    .createTable('runs')
    .addColumn('run_id', 'text', (c) => c.primaryKey())
    .addColumn('funded_customer_msat', 'bigint', (c) => c.notNull())
    .addColumn('funded_subsidy_msat', 'bigint', (c) => c.notNull())
    .addColumn('reserved_msat', 'bigint', (c) => c.notNull())
    .addColumn('escrowed_msat', 'bigint', (c) => c.notNull())
    .addColumn('paid_msat', 'bigint', (c) => c.notNull())
    .addColumn('fees_msat', 'bigint', (c) => c.notNull())
    .addColumn('remaining_msat', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema
    .createTable('assignments')
    .addColumn('assignment_id', 'text', (c) => c.primaryKey())
    .addColumn('run_id', 'text', (c) => c.notNull())
    .addColumn('contributor_id', 'text', (c) => c.notNull())
    .addColumn('base_reward_msat', 'bigint', (c) => c.notNull())
    .addColumn('verdict', 'text')
    .addColumn('base_paid', 'boolean', (c) => c.notNull())
    .execute();
  await db.schema
    .createTable('invoices')
    .addColumn('payment_hash', 'text', (c) => c.primaryKey())
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('assignment_id', 'text', (c) => c.notNull())
    .addColumn('run_id', 'text', (c) => c.notNull())
    .addColumn('contributor_id', 'text', (c) => c.notNull())
    .addColumn('amount_msat', 'bigint', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('invoices').execute();
  await db.schema.dropTable('assignments').execute();
  await db.schema.dropTable('runs').execute();
  await db.schema.dropTable('contributors').execute();
}
