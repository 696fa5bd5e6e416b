// Contributors' invoices as posted through the API (escrow hold invoices and payout invoices), kept until the escrow reactor asks.

import { sql, type Kysely } from 'kysely';
import type { Migration } from 'kysely/migration';
import { migrateToLatest } from '../postgres/database.js';
import type { PayoutRequest } from '../../domain/reactions/escrow.js';
import type { ContributorInvoiceKind } from '../../domain/assignment/index.js';
import type { ContributorInvoiceSource } from '../lightning/contributor-invoice-cache.js';
import { ESCROW_REACTOR_MIGRATIONS } from '../lightning/escrow-migrations.js';

/** Ordered; a landed migration is never edited. */
const HOLD_INVOICE_BOX_MIGRATIONS: Readonly<Record<string, Migration>> = {
  '0001_contributor_invoices': {
    async up(db: Kysely<any>): Promise<void> {
      await db.schema
        .createTable('api_hold_invoices')
        .addColumn('assignment_id', 'text', (c) => c.primaryKey())
        .addColumn('contributor_id', 'text', (c) => c.notNull())
        .addColumn('bolt11', 'text', (c) => c.notNull())
        .addColumn('posted_at_ms', 'int8', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('api_payout_invoices')
        .addColumn('assignment_id', 'text', (c) => c.notNull())
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('bolt11', 'text', (c) => c.notNull())
        .addColumn('posted_at_ms', 'int8', (c) => c.notNull())
        .addPrimaryKeyConstraint('api_payout_invoices_pk', ['assignment_id', 'kind'])
        .execute();
    },
  },
  /** One payout invoice per attempt: an invoice abandoned as never to be paid makes room for a fresh one. */
  '0002_payout_attempts': {
    async up(db: Kysely<any>): Promise<void> {
      await db.schema.alterTable('api_payout_invoices').addColumn('attempt', 'integer', (c) => c.notNull().defaultTo(0)).execute();
      await db.schema.alterTable('api_payout_invoices').dropConstraint('api_payout_invoices_pk').execute();
      await db.schema.alterTable('api_payout_invoices').addPrimaryKeyConstraint('api_payout_invoices_pk', ['assignment_id', 'kind', 'attempt']).execute();
    },
  },
};

/** A BOLT11 request of any sane invoice fits in this many characters. */
export const MAX_BOLT11_CHARS = 2_048;

/**
 * Production's source of contributor invoices: the contributor posts a hold invoice for the
 * escrow hash (and payout invoices) over the API; the reactor picks them up from here. In the
 * embedded development setup a fallback (the dev network's simulated wallets) answers when a
 * contributor has posted nothing.
 */
export class HoldInvoiceBox implements ContributorInvoiceSource {
  constructor(
    private readonly db: Kysely<any>,
    private readonly fallback: ContributorInvoiceSource | null = null,
  ) {}

  async prepare(): Promise<void> {
    await migrateToLatest(this.db, HOLD_INVOICE_BOX_MIGRATIONS, 'api_invoice_migrations');
    // The API reads payout attempts from the escrow engine's invoice table, wherever the engine runs.
    await migrateToLatest(this.db, ESCROW_REACTOR_MIGRATIONS, 'escrow_reactor_migrations');
  }

  /** Keeps the first payout invoice posted per (assignment, kind, attempt): one attempt, one invoice. */
  async postPayout(assignmentId: string, kind: PayoutRequest['kind'], attempt: number, bolt11: string, nowMs: number): Promise<{ stored: boolean }> {
    await sql`INSERT INTO api_payout_invoices (assignment_id, kind, attempt, bolt11, posted_at_ms)
      VALUES (${assignmentId}, ${kind}, ${attempt}, ${bolt11}, ${String(nowMs)}) ON CONFLICT DO NOTHING`.execute(this.db);
    const stored = (await this.postedPayout(assignmentId, kind, attempt)) === bolt11;
    if (stored) await this.wake(assignmentId);
    return { stored };
  }

  async postedPayout(assignmentId: string, kind: string, attempt: number): Promise<string | null> {
    const rows = await sql<{ bolt11: string }>`SELECT bolt11 FROM api_payout_invoices
      WHERE assignment_id = ${assignmentId} AND kind = ${kind} AND attempt = ${attempt}`.execute(this.db);
    return rows.rows[0]?.bolt11 ?? null;
  }

  /** Keeps the first invoice posted for an assignment; a different one later is refused by the caller. */
  async post(assignmentId: string, contributorId: string, bolt11: string, nowMs: number): Promise<{ stored: boolean; bolt11: string }> {
    await sql`INSERT INTO api_hold_invoices (assignment_id, contributor_id, bolt11, posted_at_ms)
      VALUES (${assignmentId}, ${contributorId}, ${bolt11}, ${String(nowMs)}) ON CONFLICT DO NOTHING`.execute(this.db);
    const existing = await this.posted(assignmentId);
    if (existing === bolt11) await this.wake(assignmentId);
    return { stored: existing === bolt11, bolt11: existing ?? bolt11 };
  }

  /** The escrow engine settles this assignment at its next pass instead of at its next scheduled check. */
  private async wake(assignmentId: string): Promise<void> {
    await sql`UPDATE lightning_pending_assignments SET next_check_at_ms = 0 WHERE assignment_id = ${assignmentId}`.execute(this.db);
  }

  async posted(assignmentId: string): Promise<string | null> {
    const rows = await sql<{ bolt11: string }>`SELECT bolt11 FROM api_hold_invoices WHERE assignment_id = ${assignmentId}`.execute(this.db);
    return rows.rows[0]?.bolt11 ?? null;
  }

  async holdInvoice(request: Parameters<ContributorInvoiceSource['holdInvoice']>[0]): Promise<string | null> {
    return (await this.posted(request.assignmentId)) ?? (this.fallback ? this.fallback.holdInvoice(request) : null);
  }

  /** Null until the contributor posts one (and no fallback answers): the settler looks again later. */
  async payoutInvoice(request: PayoutRequest): Promise<string | null> {
    return (await this.postedPayout(request.assignmentId, request.kind, request.attempt)) ?? (this.fallback ? this.fallback.payoutInvoice(request) : null);
  }

  /** Drops an invoice the coordinator refused, so the contributor can post a fresh one for the same escrow or attempt. */
  async discardInvoice(request: Readonly<{ assignmentId: string; kind: ContributorInvoiceKind; attempt: number; bolt11: string }>): Promise<void> {
    const { assignmentId, kind, attempt, bolt11 } = request;
    if (kind === 'escrow') await sql`DELETE FROM api_hold_invoices WHERE assignment_id = ${assignmentId} AND bolt11 = ${bolt11}`.execute(this.db);
    else await sql`DELETE FROM api_payout_invoices WHERE assignment_id = ${assignmentId} AND kind = ${kind} AND attempt = ${attempt} AND bolt11 = ${bolt11}`.execute(this.db);
    await this.fallback?.discardInvoice(request);
  }
}
