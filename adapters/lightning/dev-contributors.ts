// Development stand-ins for contributors: dev wallets create invoices, settle released preimages, and cancel on request.

import type { ContributorChannel } from '../../domain/ports/lightning.js';
import type { PayoutRequest } from '../../domain/reactions/escrow.js';
import type { DevLightningNetwork } from './dev/dev-lightning-network.js';
import type { ContributorInvoiceSource } from './escrow-reactor.js';

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
  constructor(private readonly network: DevLightningNetwork, private readonly options: DevContributorOptions = {}) {}

  async holdInvoice(request: Parameters<ContributorInvoiceSource['holdInvoice']>[0]): Promise<string> {
    const wallet = this.network.wallet(request.contributorId);
    const existing = await wallet.holdInvoiceState(request.paymentHash);
    if (existing.status !== 'unknown') throw new Error(`dev wallet ${request.contributorId} already has an invoice for ${request.paymentHash}`);
    return wallet.createHoldInvoice({ paymentHash: request.paymentHash, amountMsat: request.amountMsat, expirySec: request.expirySec, cltvDelta: request.cltvDelta, description: `escrow ${request.assignmentId}` });
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
