// Contributors' invoices as posted through the API (escrow hold invoices and payout invoices), kept until the escrow reactor asks.

import { sql, type Kysely, type Migration } from 'kysely';
import { migrateToLatest } from '../postgres/database.js';
import type { PayoutRequest } from '../../domain/reactions/escrow.js';
import type { ContributorInvoiceSource } from '../lightning/escrow-reactor.js';

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
  }

  /** Keeps the first payout invoice posted per (assignment, kind): one payout, one invoice, ever. */
  async postPayout(assignmentId: string, kind: PayoutRequest['kind'], bolt11: string, nowMs: number): Promise<{ stored: boolean }> {
    await sql`INSERT INTO api_payout_invoices (assignment_id, kind, bolt11, posted_at_ms)
      VALUES (${assignmentId}, ${kind}, ${bolt11}, ${String(nowMs)}) ON CONFLICT DO NOTHING`.execute(this.db);
    return { stored: (await this.postedPayout(assignmentId, kind)) === bolt11 };
  }

  async postedPayout(assignmentId: string, kind: string): Promise<string | null> {
    const rows = await sql<{ bolt11: string }>`SELECT bolt11 FROM api_payout_invoices WHERE assignment_id = ${assignmentId} AND kind = ${kind}`.execute(this.db);
    return rows.rows[0]?.bolt11 ?? null;
  }

  /** Keeps the first invoice posted for an assignment; a different one later is refused by the caller. */
  async post(assignmentId: string, contributorId: string, bolt11: string, nowMs: number): Promise<{ stored: boolean; bolt11: string }> {
    await sql`INSERT INTO api_hold_invoices (assignment_id, contributor_id, bolt11, posted_at_ms)
      VALUES (${assignmentId}, ${contributorId}, ${bolt11}, ${String(nowMs)}) ON CONFLICT DO NOTHING`.execute(this.db);
    const existing = await this.posted(assignmentId);
    return { stored: existing === bolt11, bolt11: existing ?? bolt11 };
  }

  async posted(assignmentId: string): Promise<string | null> {
    const rows = await sql<{ bolt11: string }>`SELECT bolt11 FROM api_hold_invoices WHERE assignment_id = ${assignmentId}`.execute(this.db);
    return rows.rows[0]?.bolt11 ?? null;
  }

  async holdInvoice(request: Parameters<ContributorInvoiceSource['holdInvoice']>[0]): Promise<string | null> {
    return (await this.posted(request.assignmentId)) ?? (this.fallback ? this.fallback.holdInvoice(request) : null);
  }

  /** Null until the contributor posts one (and no fallback answers): the reactor sets the payout aside and retries. */
  async payoutInvoice(request: PayoutRequest): Promise<string | null> {
    return (await this.postedPayout(request.assignmentId, request.kind)) ?? (this.fallback ? this.fallback.payoutInvoice(request) : null);
  }
}
