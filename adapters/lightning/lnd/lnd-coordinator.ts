// The coordinator's CoordinatorNode on LND: decode and check invoices, pay each hash at most once, read payment state.

import { decodePaymentRequest, getChannels, getPayment, getWalletInfo, subscribeToPayments, type AuthenticatedLnd } from 'ln-service';
import { LightningError, type CoordinatorNode, type DecodedInvoice, type PaymentState, type PayRequest, type UpdateListener, type UpdateSubscription } from '../../../domain/ports/lightning.js';
import { channelFundsMsat } from './lnd-balance.js';
import { LND_LIMITS, type LndConnection, type LndLimits } from './lnd-config.js';
import { callLnd, closeLnd, connectLnd } from './lnd-connection.js';
import { decodedInvoiceFrom } from './lnd-decode.js';
import { startPayment } from './lnd-pay.js';
import { paymentStateFromGetPayment } from './lnd-payment-state.js';
import { paymentUpdateFrom, relay } from './lnd-updates.js';
import { requirePaymentHash } from './lnd-validate.js';
import { listLndPayments } from './lnd-payment-list.js';
import type { NodePaymentLedger, NodePaymentPage } from '../../../replay/audit/ports.js';

export type LndNodeOptions = Readonly<{
  limits?: Partial<LndLimits>;
  /** Injected so expiry checks are testable; defaults to the wall clock. */
  nowMs?: () => number;
}>;

export class LndCoordinatorNode implements CoordinatorNode, NodePaymentLedger {
  private readonly limits: LndLimits;
  private readonly nowMs: () => number;
  /** One pay() per hash at a time in this process; LND refuses a second payment for a hash across processes. */
  private readonly paying = new Map<string, Promise<PaymentState>>();
  private publicKeyHex: string | null = null;

  constructor(private readonly lnd: AuthenticatedLnd, options: LndNodeOptions = {}) {
    this.limits = { ...LND_LIMITS, ...options.limits };
    this.nowMs = options.nowMs ?? Date.now;
  }

  static connect(connection: LndConnection, options: LndNodeOptions = {}): LndCoordinatorNode {
    return new LndCoordinatorNode(connectLnd(connection), options);
  }

  async publicKey(): Promise<string> {
    this.publicKeyHex ??= (await this.walletInfo()).public_key;
    return this.publicKeyHex;
  }

  async blockHeight(): Promise<number> {
    return (await this.walletInfo()).current_block_height;
  }

  async decodeInvoice(bolt11: string): Promise<DecodedInvoice> {
    if (typeof bolt11 !== 'string' || bolt11.trim() === '') throw new LightningError('INVOICE_INVALID', 'the payment request is empty; ask the payee for a BOLT11 invoice', false);
    const request = bolt11.trim();
    const decoded = await callLnd('decode the payment request', this.limits.rpcTimeoutMs, () => decodePaymentRequest({ lnd: this.lnd, request }));
    return decodedInvoiceFrom(request, decoded);
  }

  async pay(request: PayRequest): Promise<PaymentState> {
    requirePayBounds(request);
    const paymentHash = requirePaymentHash(request.paymentHash);
    const invoice = await this.decodeInvoice(request.bolt11);
    requireInvoiceMatches(invoice, { ...request, paymentHash });
    const running = this.paying.get(paymentHash);
    if (running) return running;
    const payment = this.payOnce(invoice, request).finally(() => this.paying.delete(paymentHash));
    this.paying.set(paymentHash, payment);
    return payment;
  }

  async paymentState(paymentHash: string): Promise<PaymentState> {
    const id = requirePaymentHash(paymentHash);
    try {
      return paymentStateFromGetPayment(await callLnd('read the payment state', this.limits.rpcTimeoutMs, () => getPayment({ lnd: this.lnd, id })));
    } catch (error) {
      if (error instanceof LightningError && error.code === 'PAYMENT_NOT_FOUND') return { status: 'unknown' };
      throw error;
    }
  }

  /** Every payment this node made, page by page (the audit's node-payment check). */
  listPayments(page: Readonly<{ after: string | null; limit: number }>): Promise<NodePaymentPage> {
    return listLndPayments(this.lnd, this.limits.rpcTimeoutMs, page);
  }

  /**
   * routerrpc TrackPayments through ln-service's subscribeToPayments (LND 0.16 and later): every
   * outgoing payment's updates, which for a hold invoice are the escrow's: HTLCs out, settled, failed.
   */
  async subscribeToPayments(listener: UpdateListener): Promise<UpdateSubscription> {
    const emitter = subscribeToPayments({ lnd: this.lnd });
    return relay(
      emitter,
      {
        paying: (event: { id?: unknown }) => paymentUpdateFrom('paying', event),
        confirmed: (event: { id?: unknown }) => paymentUpdateFrom('confirmed', event),
        failed: (event: { id?: unknown }) => paymentUpdateFrom('failed', event),
      },
      listener,
      'follow the outgoing payments',
    );
  }

  /** The channels' funds on this side (see channelFundsMsat): an upper bound on what can still be sent. */
  async channelFundsMsat(): Promise<bigint> {
    const { channels } = await callLnd('list the channels', this.limits.rpcTimeoutMs, () => getChannels({ lnd: this.lnd }));
    return channelFundsMsat(channels);
  }

  async close(): Promise<void> {
    closeLnd(this.lnd);
  }

  /** Never sends for a hash LND already has in flight or succeeded: a retried pay() returns that payment's state. */
  private async payOnce(invoice: DecodedInvoice, request: PayRequest): Promise<PaymentState> {
    const existing = await this.paymentState(invoice.paymentHash);
    if (existing.status === 'in_flight' || existing.status === 'succeeded') return existing;
    if (invoice.expiresAtMs <= this.nowMs()) return { status: 'failed', failureCode: 'INVOICE_EXPIRED' };
    const start = await startPayment(this.lnd, {
      bolt11: invoice.bolt11,
      maxFeeMsat: request.maxFeeMsat,
      maxTimeoutHeight: request.maxTimeoutHeight,
      pathfindingTimeoutMs: this.limits.pathfindingTimeoutMs,
      waitMs: this.limits.payStartTimeoutMs,
    });
    if (start.kind === 'state') return start.state;
    const state = await this.paymentState(invoice.paymentHash);
    if (state.status !== 'unknown') return state;
    throw new LightningError('TIMEOUT', `LND neither started nor refused the payment for ${invoice.paymentHash} within ${this.limits.payStartTimeoutMs} ms; pay again (it will not pay twice)`, true);
  }

  private walletInfo() {
    return callLnd('read the node info', this.limits.rpcTimeoutMs, () => getWalletInfo({ lnd: this.lnd }));
  }
}

/** Paying a request other than the one the escrow named is the mistake that cannot be undone: refuse before any HTLC. */
function requireInvoiceMatches(invoice: DecodedInvoice, request: PayRequest): void {
  const refuse = (message: string): never => {
    throw new LightningError('INVOICE_MISMATCH', `${message}; refusing to pay it`, false);
  };
  if (invoice.paymentHash !== request.paymentHash) refuse(`the payment request pays hash ${invoice.paymentHash}, not ${request.paymentHash}`);
  if (invoice.amountMsat === null) refuse('the payment request has no amount');
  if (invoice.amountMsat !== request.amountMsat) refuse(`the payment request asks ${String(invoice.amountMsat)} msat, not ${request.amountMsat} msat`);
}

function requirePayBounds(request: PayRequest): void {
  const refuse = (message: string): never => {
    throw new LightningError('PAY_REQUEST_INVALID', message, false);
  };
  if (typeof request.amountMsat !== 'bigint' || request.amountMsat <= 0n) refuse(`amountMsat must be a positive bigint, got ${String(request.amountMsat)}`);
  if (typeof request.maxFeeMsat !== 'bigint' || request.maxFeeMsat < 0n) refuse(`maxFeeMsat must be a bigint of at least 0, got ${String(request.maxFeeMsat)}`);
  if (!Number.isSafeInteger(request.maxTimeoutHeight) || request.maxTimeoutHeight <= 0) refuse(`maxTimeoutHeight must be a positive block height, got ${String(request.maxTimeoutHeight)}`);
}
