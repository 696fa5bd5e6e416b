// Migration 0003: finds an assignment's invoice streams by the assignment id their InvoiceOpened carries (the audit loads one assignment at a time).

import { sql, type Kysely } from 'kysely';

/**
 * Partial: only InvoiceOpened rows are indexed (one per invoice), so appends of every other
 * event pay nothing. Without it, loading one assignment's invoices would scan the whole log.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`CREATE INDEX events_invoice_opened_by_assignment ON events ((data->>'assignmentId')) WHERE event_type = 'InvoiceOpened'`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`DROP INDEX events_invoice_opened_by_assignment`.execute(db);
}
