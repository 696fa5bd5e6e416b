// Migration 0001 of the Lightning outbox read model: one row per payment hash with its unfinished intent.

import type { Kysely } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('invoices')
    .addColumn('payment_hash', 'text', (c) => c.primaryKey())
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('assignment_id', 'text', (c) => c.notNull())
    .addColumn('run_id', 'text', (c) => c.notNull())
    .addColumn('contributor_id', 'text', (c) => c.notNull())
    .addColumn('amount_msat', 'bigint', (c) => c.notNull())
    .addColumn('bolt11', 'text', (c) => c.notNull())
    .addColumn('expires_at_ms', 'bigint', (c) => c.notNull())
    .addColumn('cltv_expiry_height', 'bigint')
    .addColumn('was_held', 'boolean', (c) => c.notNull())
    .addColumn('released_preimage_hex', 'text')
    .addColumn('failed_attempts', 'integer', (c) => c.notNull())
    .addColumn('updated_at_ms', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('invoices_by_status').on('invoices').columns(['status', 'payment_hash']).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('invoices').execute();
}
