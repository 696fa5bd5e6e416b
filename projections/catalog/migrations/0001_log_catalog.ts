// Migration 0001 of the log catalog: one row per stream of the log, with its head as this database last saw it.

import type { Kysely } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('streams')
    .addColumn('stream_id', 'text', (c) => c.primaryKey())
    .addColumn('last_revision', 'bigint', (c) => c.notNull())
    .addColumn('last_hash', 'text', (c) => c.notNull())
    .addColumn('event_count', 'bigint', (c) => c.notNull())
    // Invoice streams only: the assignment their InvoiceOpened names, so the audit finds an assignment's invoices without a scan of the log.
    .addColumn('assignment_id', 'text')
    .execute();
  await db.schema.createIndex('streams_by_assignment').on('streams').column('assignment_id').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('streams').execute();
}
