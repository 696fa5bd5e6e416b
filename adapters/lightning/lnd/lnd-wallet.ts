// A contributor's ContributorWallet on LND: hold invoices for the coordinator's hash, plain invoices, settle and cancel.

import { createHash } from 'node:crypto';
import { cancelHodlInvoice, createHodlInvoice, createInvoice, getInvoice, getWalletInfo, settleHodlInvoice, subscribeToInvoice, subscribeToInvoices, type AuthenticatedLnd, type GetInvoiceResult } from 'ln-service';
import { LightningError, type ContributorWallet, type HoldInvoiceState, type UpdateListener, type UpdateSubscription } from '../../../domain/ports/lightning.js';
import { LND_LIMITS, type LndConnection, type LndLimits } from './lnd-config.js';
import { callLnd, closeLnd, connectLnd } from './lnd-connection.js';
import { holdInvoiceStateFrom } from './lnd-invoice-state.js';
import { invoiceUpdateFrom, relay, type LndInvoiceUpdate } from './lnd-updates.js';
import { requireInvoiceTerms, requirePaymentHash, requirePreimage } from './lnd-validate.js';

export type LndWalletOptions = Readonly<{ limits?: Partial<LndLimits> }>;

type HoldInvoiceRequest = Parameters<ContributorWallet['createHoldInvoice']>[0];
type PlainInvoiceRequest = Parameters<ContributorWallet['createInvoice']>[0];

export class LndContributorWallet implements ContributorWallet {
  private readonly limits: LndLimits;
  private publicKeyHex: string | null = null;

  constructor(private readonly lnd: AuthenticatedLnd, options: LndWalletOptions = {}) {
    this.limits = { ...LND_LIMITS, ...options.limits };
  }

  static connect(connection: LndConnection, options: LndWalletOptions = {}): LndContributorWallet {
    return new LndContributorWallet(connectLnd(connection), options);
  }

  async publicKey(): Promise<string> {
    this.publicKeyHex ??= (await this.call('read the node info', () => getWalletInfo({ lnd: this.lnd }))).public_key;
    return this.publicKeyHex;
  }

  /**
   * A retry with the same terms (after a crash between create and record) returns the invoice LND already
   * holds; any other reuse of the hash is PAYMENT_HASH_REUSED.
   */
  async createHoldInvoice(request: HoldInvoiceRequest): Promise<string> {
    requireInvoiceTerms(request);
    const id = requirePaymentHash(request.paymentHash);
    try {
      const created = await this.call('create the hold invoice', () =>
        createHodlInvoice({
          lnd: this.lnd,
          id,
          mtokens: request.amountMsat.toString(),
          expires_at: expiresAt(request.expirySec),
          cltv_delta: request.cltvDelta,
          description: request.description,
          // Route hints for private channels, so a contributor behind an unannounced channel can still be paid.
          is_including_private_channels: true,
        }),
      );
      return created.request;
    } catch (error) {
      if (!(error instanceof LightningError && error.code === 'PAYMENT_HASH_REUSED')) throw error;
      const existing = await this.call('look up the existing invoice', () => getInvoice({ lnd: this.lnd, id }));
      if (sameHoldTerms(existing, request) && existing.request) return existing.request;
      throw error;
    }
  }

  async createInvoice(request: PlainInvoiceRequest): Promise<{ bolt11: string; paymentHash: string }> {
    requireInvoiceTerms(request);
    const created = await this.call('create the invoice', () =>
      createInvoice({
        lnd: this.lnd,
        mtokens: request.amountMsat.toString(),
        expires_at: expiresAt(request.expirySec),
        description: request.description,
        is_including_private_channels: true,
      }),
    );
    return { bolt11: created.request, paymentHash: created.id.toLowerCase() };
  }

  async holdInvoiceState(paymentHash: string): Promise<HoldInvoiceState> {
    const id = requirePaymentHash(paymentHash);
    try {
      return holdInvoiceStateFrom(await this.call('look up the invoice', () => getInvoice({ lnd: this.lnd, id })));
    } catch (error) {
      if (error instanceof LightningError && error.code === 'INVOICE_NOT_FOUND') return { status: 'unknown' };
      throw error;
    }
  }

  /** LND answers a repeat settle with success; older releases said "invoice already settled", also a no-op here. */
  async settleHoldInvoice(preimageHex: string): Promise<void> {
    const secret = requirePreimage(preimageHex);
    try {
      await this.call('settle the hold invoice', () => settleHodlInvoice({ lnd: this.lnd, secret }));
    } catch (error) {
      if (error instanceof LightningError && error.code === 'INVOICE_SETTLED') return;
      if (error instanceof LightningError && error.code === 'INVOICE_NOT_FOUND') {
        throw new LightningError('INVOICE_NOT_FOUND', `no hold invoice on this node has hash ${sha256Hex(secret)}, the hash of that preimage`, false);
      }
      throw error;
    }
  }

  /** LND answers a repeat cancel with success; canceling a settled invoice is INVOICE_SETTLED. */
  async cancelHoldInvoice(paymentHash: string): Promise<void> {
    const id = requirePaymentHash(paymentHash);
    await this.call('cancel the hold invoice', () => cancelHodlInvoice({ lnd: this.lnd, id }));
  }

  /** invoicesrpc SubscribeSingleInvoice: every state of one invoice, held and canceled included. */
  async subscribeToInvoice(paymentHash: string, listener: UpdateListener): Promise<UpdateSubscription> {
    const id = requirePaymentHash(paymentHash);
    const emitter = subscribeToInvoice({ lnd: this.lnd, id });
    return relay(emitter, { invoice_updated: (event: LndInvoiceUpdate) => invoiceUpdateFrom(event) }, listener, `follow invoice ${id}`);
  }

  /** lnrpc SubscribeInvoices: LND sends additions and settlements of every invoice here, not holds or cancels. */
  async subscribeToInvoices(listener: UpdateListener): Promise<UpdateSubscription> {
    const emitter = subscribeToInvoices({ lnd: this.lnd });
    return relay(emitter, { invoice_updated: (event: LndInvoiceUpdate) => invoiceUpdateFrom(event) }, listener, 'follow the invoices');
  }

  async close(): Promise<void> {
    closeLnd(this.lnd);
  }

  private call<T>(action: string, run: () => Promise<T>): Promise<T> {
    return callLnd(action, this.limits.rpcTimeoutMs, run);
  }
}

/** ln-service turns expires_at back into seconds against its own wall clock, so this uses the wall clock too. */
function expiresAt(expirySec: number): string {
  return new Date(Date.now() + expirySec * 1000).toISOString();
}

/** ln-service's typings omit the invoice's `mtokens`, which its code always sets. */
function sameHoldTerms(existing: GetInvoiceResult & { mtokens?: string }, request: HoldInvoiceRequest): boolean {
  const live = !existing.is_canceled && !existing.is_confirmed;
  return live && existing.mtokens !== undefined && BigInt(existing.mtokens) === request.amountMsat && existing.cltv_delta === request.cltvDelta && existing.description === request.description;
}

function sha256Hex(preimageHex: string): string {
  return createHash('sha256').update(Buffer.from(preimageHex, 'hex')).digest('hex');
}
