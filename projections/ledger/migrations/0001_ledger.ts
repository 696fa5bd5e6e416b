// Migration 0001 of the ledger projection: accounts, two-phase transfers, and the invoice index they need.

import type { Kysely } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('accounts')
    .addColumn('account_id', 'text', (c) => c.primaryKey())
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('run_id', 'text')
    .addColumn('contributor_id', 'text')
    .addColumn('debits_pending_msat', 'bigint', (c) => c.notNull())
    .addColumn('debits_posted_msat', 'bigint', (c) => c.notNull())
    .addColumn('credits_pending_msat', 'bigint', (c) => c.notNull())
    .addColumn('credits_posted_msat', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema
    .createTable('transfers')
    .addColumn('transfer_id', 'text', (c) => c.primaryKey())
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('debit_account_id', 'text', (c) => c.notNull())
    .addColumn('credit_account_id', 'text', (c) => c.notNull())
    .addColumn('amount_msat', 'bigint', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('run_id', 'text', (c) => c.notNull())
    .addColumn('assignment_id', 'text')
    .addColumn('payment_hash', 'text')
    .addColumn('created_at_ms', 'bigint', (c) => c.notNull())
    .addColumn('resolved_at_ms', 'bigint')
    .execute();
  await db.schema.createIndex('transfers_by_assignment').on('transfers').column('assignment_id').execute();
  await db.schema
    .createTable('invoices')
    .addColumn('payment_hash', 'text', (c) => c.primaryKey())
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('run_id', 'text', (c) => c.notNull())
    .addColumn('contributor_id', 'text', (c) => c.notNull())
    .addColumn('assignment_id', 'text', (c) => c.notNull())
    .addColumn('amount_msat', 'bigint', (c) => c.notNull())
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('invoices').execute();
  await db.schema.dropTable('transfers').execute();
  await db.schema.dropTable('accounts').execute();
}
