// A simulated wallet's invoices: creating hold and plain invoices, their state, and settle/cancel with LND's rules.

import { createHash } from 'node:crypto';
import { LightningError, type HoldInvoiceState } from '../../../domain/ports/lightning.js';
import { cancelInvoice, settleHeld } from './dev-htlc.js';
import type { DevInvoice, DevState } from './dev-state.js';

const HEX_32_PATTERN = /^[0-9a-f]{64}$/;
/** Bounds what a dev wallet accepts, as LND does (its invoice expiry cap is a year; BOLT11 descriptions fit 639 bytes). */
export const DEV_INVOICE_LIMITS = Object.freeze({ maxExpirySec: 365 * 24 * 3600, maxCltvDelta: 2016, maxDescriptionBytes: 639 });

export type NewInvoice = Readonly<{ amountMsat: bigint; expirySec: number; cltvDelta: number; description: string }>;

/** Refuses parameters no real wallet would accept, and a CLTV delta the safety margin would cancel on arrival. */
export function validateNewInvoice(request: NewInvoice, safetyMarginBlocks: number): void {
  const problems: string[] = [];
  if (typeof request.amountMsat !== 'bigint' || request.amountMsat <= 0n) problems.push('amountMsat must be a positive bigint');
  if (!Number.isSafeInteger(request.expirySec) || request.expirySec <= 0 || request.expirySec > DEV_INVOICE_LIMITS.maxExpirySec) {
    problems.push(`expirySec must be a whole number of seconds in 1..${DEV_INVOICE_LIMITS.maxExpirySec}`);
  }
  if (!Number.isSafeInteger(request.cltvDelta) || request.cltvDelta <= safetyMarginBlocks || request.cltvDelta > DEV_INVOICE_LIMITS.maxCltvDelta) {
    problems.push(`cltvDelta must be a whole number of blocks above the safety margin (${safetyMarginBlocks}) and at most ${DEV_INVOICE_LIMITS.maxCltvDelta}`);
  }
  if (typeof request.description !== 'string' || Buffer.byteLength(request.description, 'utf8') > DEV_INVOICE_LIMITS.maxDescriptionBytes) {
    problems.push(`description must be a string of at most ${DEV_INVOICE_LIMITS.maxDescriptionBytes} bytes`);
  }
  if (problems.length > 0) throw new LightningError('INVALID_REQUEST', `the invoice request is malformed: ${problems.join('; ')}`, false);
}

export function requireHash(paymentHash: string, field = 'paymentHash'): void {
  if (typeof paymentHash !== 'string' || !HEX_32_PATTERN.test(paymentHash)) {
    throw new LightningError('INVALID_REQUEST', `${field} must be 32 bytes as 64 lowercase hex`, false);
  }
}

/** As LND: one invoice per hash per wallet, forever (a canceled invoice still holds its hash). */
export function assertHashUnused(invoices: Map<string, DevInvoice>, paymentHash: string): void {
  if (invoices.has(paymentHash)) {
    throw new LightningError('PAYMENT_HASH_REUSED', `this wallet already has an invoice for hash ${paymentHash}; every invoice needs a fresh hash`, false);
  }
}

export function holdView(invoice: DevInvoice | undefined): HoldInvoiceState {
  if (!invoice) return { status: 'unknown' };
  switch (invoice.status) {
    case 'open':
      return { status: 'open' };
    case 'accepted':
      return { status: 'accepted', amountMsat: invoice.amountMsat, htlcExpiryHeight: invoice.htlcExpiryHeight! };
    case 'settled':
      return { status: 'settled', preimageHex: invoice.preimageHex! };
    case 'canceled':
      return { status: 'canceled' };
    default: {
      const unreachable: never = invoice.status;
      throw new Error(`unknown dev invoice status ${String(unreachable)}`);
    }
  }
}

/** Settling twice is a no-op; settling what is not held (unknown, open, canceled) is refused. */
export function settle(state: DevState, walletName: string, preimageHex: string): void {
  requireHash(preimageHex, 'preimageHex');
  const paymentHash = createHash('sha256').update(Buffer.from(preimageHex, 'hex')).digest('hex');
  const invoice = state.wallets.get(walletName)?.get(paymentHash);
  if (!invoice) throw new LightningError('INVOICE_NOT_FOUND', `wallet ${walletName} has no invoice for sha256(preimage) = ${paymentHash}`, false);
  switch (invoice.status) {
    case 'settled':
      return;
    case 'accepted':
      settleHeld(state, walletName, invoice, preimageHex);
      return;
    case 'open':
      // The HTLC may still arrive, so asking again later can succeed.
      throw new LightningError('INVOICE_NOT_HELD', `invoice ${paymentHash} holds no HTLC yet; settle it once it is accepted`, true);
    case 'canceled':
      throw new LightningError('INVOICE_CANCELED', `invoice ${paymentHash} was canceled (${invoice.canceledBecause}); it can no longer be settled`, false);
  }
}

/** Canceling twice is a no-op; canceling a settled invoice is refused: the money has moved. */
export function cancel(state: DevState, walletName: string, paymentHash: string): void {
  requireHash(paymentHash);
  const invoice = state.wallets.get(walletName)?.get(paymentHash);
  if (!invoice) throw new LightningError('INVOICE_NOT_FOUND', `wallet ${walletName} has no invoice for hash ${paymentHash}`, false);
  if (invoice.status === 'canceled') return;
  if (invoice.status === 'settled') {
    throw new LightningError('INVOICE_ALREADY_SETTLED', `invoice ${paymentHash} is settled; a settled invoice cannot be canceled`, false);
  }
  cancelInvoice(state, walletName, invoice, 'wallet');
}
