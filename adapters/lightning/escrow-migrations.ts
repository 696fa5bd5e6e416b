// The escrow process manager's own tables, as ordered kysely migrations; a landed migration is never edited.

import { sql, type Kysely } from 'kysely';
import type { Migration } from 'kysely/migration';

export const ESCROW_REACTOR_MIGRATIONS: Readonly<Record<string, Migration>> = {
  /**
   * Contributors' invoices, one per (assignment, kind), and reactions set aside while a
   * contributor's invoice was awaited. (0002 replaces both uses.)
   */
  '0001_escrow_reactor': {
    async up(db: Kysely<any>): Promise<void> {
      await db.schema
        .createTable('lightning_contributor_invoices')
        .addColumn('assignment_id', 'text', (c) => c.notNull())
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('bolt11', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('lightning_contributor_invoices_pk', ['assignment_id', 'kind'])
        .execute();
      await db.schema
        .createTable('lightning_deferred_reactions')
        .addColumn('stream_id', 'text', (c) => c.notNull())
        .addColumn('revision', 'integer', (c) => c.notNull())
        .addColumn('deferred_at_ms', 'int8', (c) => c.notNull())
        .addPrimaryKeyConstraint('lightning_deferred_reactions_pk', ['stream_id', 'revision'])
        .execute();
    },
  },
  /**
   * The money path's durable state. Payout invoices become one per (assignment, kind, attempt):
   * an invoice abandoned as never to be paid makes room for a fresh one, never two at once.
   * Pending assignments are those whose money is not final yet; each is settled again when its
   * next check falls due (a deadline, an awaited invoice), so deadlines survive restarts and a
   * pile of absent contributors rotates instead of starving the rest.
   */
  '0002_money_path': {
    async up(db: Kysely<any>): Promise<void> {
      await db.schema.alterTable('lightning_contributor_invoices').addColumn('attempt', 'integer', (c) => c.notNull().defaultTo(0)).execute();
      await db.schema.alterTable('lightning_contributor_invoices').addColumn('payment_hash', 'text').execute();
      await db.schema.alterTable('lightning_contributor_invoices').dropConstraint('lightning_contributor_invoices_pk').execute();
      await db.schema
        .alterTable('lightning_contributor_invoices')
        .addPrimaryKeyConstraint('lightning_contributor_invoices_pk', ['assignment_id', 'kind', 'attempt'])
        .execute();
      // Escrow hold invoices have a fixed hash and are no longer cached here.
      await sql`DELETE FROM lightning_contributor_invoices WHERE kind = 'escrow'`.execute(db);
      await db.schema
        .createTable('lightning_pending_assignments')
        .addColumn('assignment_id', 'text', (c) => c.primaryKey())
        .addColumn('next_check_at_ms', 'int8', (c) => c.notNull())
        .addColumn('invoice_needed_since_ms', 'int8')
        .execute();
      await db.schema.createIndex('lightning_pending_assignments_due').on('lightning_pending_assignments').columns(['next_check_at_ms', 'assignment_id']).execute();
      // Every assignment already in the log is settled once; the final ones leave the table at once. With the log
      // elsewhere (EventStoreDB: no streams table here) there is nothing older than the reactor's own checkpoint,
      // which starts at the log's start, so the reactor tracks every assignment as it reads the log.
      const hasStreams = await sql<{ found: boolean }>`SELECT to_regclass('streams') IS NOT NULL AS found`.execute(db);
      if (!hasStreams.rows[0]?.found) return;
      await sql`INSERT INTO lightning_pending_assignments (assignment_id, next_check_at_ms)
        SELECT substring(stream_id from 12), 0 FROM streams WHERE stream_id LIKE 'assignment-%' ON CONFLICT DO NOTHING`.execute(db);
    },
  },
  /**
   * A reservation seen without its assignment: where a store has no multi-stream transactions
   * (or a crash split an older append), the settler releases it once it has stood alone long enough.
   */
  '0003_orphan_reservations': {
    async up(db: Kysely<any>): Promise<void> {
      await db.schema.alterTable('lightning_pending_assignments').addColumn('run_id', 'text').execute();
      await db.schema.alterTable('lightning_pending_assignments').addColumn('first_seen_at_ms', 'int8').execute();
    },
  },
  /** The claim window per payout kind: a bonus waiting since yesterday does not shorten a compensation's week. */
  '0004_claim_window_per_kind': {
    async up(db: Kysely<any>): Promise<void> {
      await db.schema.alterTable('lightning_pending_assignments').addColumn('bonus_needed_since_ms', 'int8').execute();
      await db.schema.alterTable('lightning_pending_assignments').addColumn('compensation_needed_since_ms', 'int8').execute();
      await sql`UPDATE lightning_pending_assignments SET compensation_needed_since_ms = invoice_needed_since_ms, bonus_needed_since_ms = invoice_needed_since_ms`.execute(db);
    },
  },
};
