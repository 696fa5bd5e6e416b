// Contributors' payout invoices per (assignment, kind, attempt): fetched once, checked, cached durably, refused with a reason when unusable.

import { createHash } from 'node:crypto';
import { sql, type Kysely } from 'kysely';
import type { ContributorInvoiceKind } from '../../domain/assignment/index.js';
import type { EventStore } from '../../domain/ports/event-store.js';
import { LightningError, type CoordinatorNode } from '../../domain/ports/lightning.js';
import type { PayoutInvoiceTerms, PayoutRequest } from '../../domain/reactions/escrow.js';
import { MIN_INVOICE_REMAINING_MS, verifyPayoutInvoice } from './verify-escrow-invoice.js';
import { onContributorSide } from './contributor-side.js';

export type HoldInvoiceRequest = Readonly<{ assignmentId: string; contributorId: string; paymentHash: string; amountMsat: bigint; expirySec: number; cltvDelta: number }>;

/** Where contributors' invoices come from: the development network asks its wallets; production, the API. */
export interface ContributorInvoiceSource {
  /** The contributor's hold invoice for the escrow's hash, or null while they have not provided one. */
  holdInvoice(request: HoldInvoiceRequest): Promise<string | null>;
  /** An ordinary invoice for a bonus or compensation attempt, or null while the contributor has not provided one. */
  payoutInvoice(request: PayoutRequest): Promise<string | null>;
  /** Forgets an invoice the coordinator refused, so the contributor may post a fresh one for the same attempt. */
  discardInvoice(request: Readonly<{ assignmentId: string; kind: ContributorInvoiceKind; attempt: number; bolt11: string }>): Promise<void>;
}

/** Why an invoice was set aside: stable code and a sentence for the contributor. */
export type InvoiceRefusal = Readonly<{ code: string; message: string; bolt11: string }>;

export type CachedPayoutInvoice = { status: 'ready'; terms: PayoutInvoiceTerms } | { status: 'awaited' } | { status: 'refused'; refusal: InvoiceRefusal };

/** A short digest naming a refused invoice in idempotency keys: the same invoice refused twice is one event. */
export function invoiceDigest(bolt11: string): string {
  return createHash('sha256').update(bolt11).digest('hex').slice(0, 16);
}

export class ContributorInvoiceCache {
  constructor(
    private readonly db: Kysely<any>,
    private readonly store: EventStore,
    private readonly source: ContributorInvoiceSource,
    private readonly node: CoordinatorNode,
    private readonly network: string,
    /** The escrow hash of an assignment: a payout may never be paid through it. */
    private readonly escrowHashOf: (assignmentId: string) => string,
  ) {}

  /**
   * The invoice for this attempt. A cached one is re-checked while it is not logged (it may have
   * expired since); a fresh one is checked before it is cached. Only one invoice per attempt is
   * ever cached: a crash between asking and logging hands the retry the same invoice.
   */
  async payout(request: PayoutRequest, destination: string, nowMs: number): Promise<CachedPayoutInvoice> {
    const cached = await this.find(request);
    const bolt11 = cached ?? (await onContributorSide(request.contributorId, () => this.source.payoutInvoice(request)));
    if (bolt11 === null) return { status: 'awaited' };
    const checked = await this.check(bolt11, request, destination, nowMs);
    if ('code' in checked) {
      await this.forget(request, bolt11);
      return { status: 'refused', refusal: checked };
    }
    if (cached === undefined) {
      await sql`INSERT INTO lightning_contributor_invoices (assignment_id, kind, attempt, bolt11, payment_hash)
        VALUES (${request.assignmentId}, ${request.kind}, ${request.attempt}, ${bolt11}, ${checked.paymentHash}) ON CONFLICT DO NOTHING`.execute(this.db);
      // A racing process may have cached another first: the first one cached wins for everyone.
      if ((await this.find(request)) !== bolt11) return this.payout(request, destination, nowMs);
    }
    return { status: 'ready', terms: checked };
  }

  /** Drops an invoice that the log refused or that was found unusable, here and at its source. */
  async forget(request: PayoutRequest, bolt11: string): Promise<void> {
    await sql`DELETE FROM lightning_contributor_invoices WHERE assignment_id = ${request.assignmentId} AND kind = ${request.kind}
      AND attempt = ${request.attempt} AND bolt11 = ${bolt11}`.execute(this.db);
    await onContributorSide(request.contributorId, () => this.source.discardInvoice({ assignmentId: request.assignmentId, kind: request.kind, attempt: request.attempt, bolt11 }));
  }

  /**
   * A payment hash backs one payment, ever: not an escrow (that would settle or strand it), not
   * another payout's attempt (two payouts, one payment), not an invoice already in the log.
   */
  private async hashInUse(paymentHash: string, request: PayoutRequest): Promise<string | null> {
    if (paymentHash === this.escrowHashOf(request.assignmentId)) return "is this assignment's escrow hash";
    const cached = await sql<{ assignment_id: string; kind: string; attempt: number }>`SELECT assignment_id, kind, attempt FROM lightning_contributor_invoices WHERE payment_hash = ${paymentHash}`.execute(this.db);
    if (cached.rows.some((r) => r.assignment_id !== request.assignmentId || r.kind !== request.kind || r.attempt !== request.attempt)) return 'backs another payout';
    if ((await this.store.readStream(`invoice-${paymentHash}`, { maxCount: 1 })).length > 0) return 'is used by an invoice in the log';
    return null;
  }

  private async find(request: PayoutRequest): Promise<string | undefined> {
    const rows = await sql<{ bolt11: string }>`SELECT bolt11 FROM lightning_contributor_invoices
      WHERE assignment_id = ${request.assignmentId} AND kind = ${request.kind} AND attempt = ${request.attempt}`.execute(this.db);
    return rows.rows[0]?.bolt11;
  }

  private async check(bolt11: string, request: PayoutRequest, destination: string, nowMs: number): Promise<PayoutInvoiceTerms | InvoiceRefusal> {
    try {
      const decoded = await this.node.decodeInvoice(bolt11);
      verifyPayoutInvoice(decoded, { amountMsat: request.amountMsat, destination, nowMs, minRemainingMs: MIN_INVOICE_REMAINING_MS, network: this.network });
      const inUse = await this.hashInUse(decoded.paymentHash, request);
      if (inUse !== null) return { code: 'INVOICE_HASH_IN_USE', message: `the invoice's payment hash ${decoded.paymentHash} already ${inUse}; create a new invoice for the payout`, bolt11 };
      return { paymentHash: decoded.paymentHash, bolt11, expiresAtMs: decoded.expiresAtMs };
    } catch (error) {
      // A node that is down is retried; an invoice the node or the check refuses is the contributor's to fix.
      if (error instanceof LightningError && !error.retryable) return { code: error.code, message: error.message, bolt11 };
      throw error;
    }
  }
}
