// Migration 0002 of the Lightning outbox: each invoice's routing-fee ceiling, the one reserved with its assignment.

import type { Kysely } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  // Null for invoices logged before ceilings were recorded: the dispatcher's default applies to them.
  await db.schema.alterTable('invoices').addColumn('max_fee_msat', 'bigint').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('invoices').dropColumn('max_fee_msat').execute();
}
