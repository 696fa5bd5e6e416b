// Development stand-ins for contributors: dev wallets create invoices, settle released preimages, and cancel on request.

import type { ContributorChannel } from '../../domain/ports/lightning.js';
import type { PayoutRequest } from '../../domain/reactions/escrow.js';
import type { DevLightningNetwork } from './dev/dev-lightning-network.js';
import type { ContributorInvoiceKind } from '../../domain/assignment/index.js';
import type { ContributorInvoiceSource } from './contributor-invoice-cache.js';

export type DevContributorOptions = Readonly<{
  /** Payout invoices' lifetime in seconds. */
  payoutExpirySec?: number;
  /** A contributor who declines cancel requests keeps the HTLC until its CLTV limit (griefing, or hoping to dispute). */
  declinesCancel?: (contributorId: string) => boolean;
}>;

/**
 * Each contributor id is a dev wallet name. Real contributors run their own nodes: they create
 * hold invoices through the API and fetch released preimages from the log; this plays that part
 * in-process so `npm start` and the tests exercise the whole escrow flow.
 */
export class DevContributors implements ContributorChannel, ContributorInvoiceSource {
  /** Hold invoices handed out, by payment hash: asking again gets the same one, as a contributor re-sending it would. */
  private readonly holdInvoices = new Map<string, string | null>();

  constructor(private readonly network: DevLightningNetwork, private readonly options: DevContributorOptions = {}) {}

  /**
   * A wallet holds one hold invoice per hash. Once the coordinator refused it, the dev wallet has
   * no other to give (a real contributor would fix and repost), so it answers null from then on.
   */
  async holdInvoice(request: Parameters<ContributorInvoiceSource['holdInvoice']>[0]): Promise<string | null> {
    const known = this.holdInvoices.get(request.paymentHash);
    if (known !== undefined) return known;
    const wallet = this.network.wallet(request.contributorId);
    // Made before this process started (a restart): the wallet keeps it, this process lost its text.
    if ((await wallet.holdInvoiceState(request.paymentHash)).status !== 'unknown') return null;
    const bolt11 = await wallet.createHoldInvoice({ paymentHash: request.paymentHash, amountMsat: request.amountMsat, expirySec: request.expirySec, cltvDelta: request.cltvDelta, description: `escrow ${request.assignmentId}` });
    this.holdInvoices.set(request.paymentHash, bolt11);
    return bolt11;
  }

  async discardInvoice(request: Readonly<{ assignmentId: string; kind: ContributorInvoiceKind; bolt11: string }>): Promise<void> {
    for (const [hash, bolt11] of this.holdInvoices) if (bolt11 === request.bolt11) this.holdInvoices.set(hash, null);
  }

  async payoutInvoice(request: PayoutRequest): Promise<string> {
    const { bolt11 } = await this.network.wallet(request.contributorId).createInvoice({
      amountMsat: request.amountMsat,
      expirySec: this.options.payoutExpirySec ?? 7 * 24 * 3600,
      description: `${request.kind} ${request.assignmentId}`,
    });
    return bolt11;
  }

  async releasePreimage(request: Readonly<{ contributorId: string; paymentHash: string; preimageHex: string }>): Promise<void> {
    const wallet = this.network.wallet(request.contributorId);
    const state = await wallet.holdInvoiceState(request.paymentHash);
    // Only a held HTLC can be settled; anything else is for the dispatcher to observe.
    if (state.status === 'accepted') await wallet.settleHoldInvoice(request.preimageHex);
  }

  async requestCancel(request: Readonly<{ contributorId: string; paymentHash: string }>): Promise<void> {
    if (this.options.declinesCancel?.(request.contributorId)) return;
    const wallet = this.network.wallet(request.contributorId);
    const state = await wallet.holdInvoiceState(request.paymentHash);
    if (state.status === 'open' || state.status === 'accepted') await wallet.cancelHoldInvoice(request.paymentHash);
  }
}
