// Checks contributors' invoices before the coordinator pays them: escrow hold invoices (hash, amount, destination, expiry, CLTV) and payout invoices.

import type { DecodedInvoice } from '../../domain/ports/lightning.js';
import { LightningError } from '../../domain/ports/lightning.js';

export type EscrowInvoiceExpectations = Readonly<{
  paymentHash: string;
  amountMsat: bigint;
  /** The Lightning node key the contributor registered. */
  destination: string;
  nowMs: number;
  /** The invoice must stay payable at least this long, so the HTLC can arrive before it expires. */
  minRemainingMs: number;
  /** The largest final CLTV delta the escrow policy accepts: it bounds how long the coordinator's funds can be locked. */
  maxCltvDelta: number;
  network: string;
}>;

/**
 * Every refusal is permanent (not retryable) and names what the contributor must fix.
 * Paying a wrong invoice is the one mistake escrow cannot undo.
 */
export function verifyEscrowInvoice(invoice: DecodedInvoice, expected: EscrowInvoiceExpectations): void {
  const refuse = (code: string, message: string): never => {
    throw new LightningError(code, `${message}; create a new hold invoice with the escrow's terms`, false);
  };
  if (invoice.paymentHash !== expected.paymentHash) refuse('INVOICE_WRONG_HASH', `the invoice pays hash ${invoice.paymentHash}, the escrow's hash is ${expected.paymentHash}`);
  if (invoice.amountMsat === null) refuse('INVOICE_NO_AMOUNT', 'the invoice has no amount');
  if (invoice.amountMsat !== expected.amountMsat) refuse('INVOICE_WRONG_AMOUNT', `the invoice asks ${String(invoice.amountMsat)} msat, the escrow is ${expected.amountMsat} msat`);
  if (invoice.destination !== expected.destination) refuse('INVOICE_WRONG_DESTINATION', `the invoice pays node ${invoice.destination}, the contributor registered ${expected.destination}`);
  if (invoice.network !== expected.network) refuse('INVOICE_WRONG_NETWORK', `the invoice is for ${invoice.network}, the coordinator runs on ${expected.network}`);
  if (invoice.expiresAtMs - expected.nowMs < expected.minRemainingMs) refuse('INVOICE_EXPIRES_TOO_SOON', `the invoice expires at ${invoice.expiresAtMs}, less than ${expected.minRemainingMs} ms from now`);
  if (invoice.cltvDelta > expected.maxCltvDelta) refuse('INVOICE_CLTV_TOO_LARGE', `the invoice asks a final CLTV delta of ${invoice.cltvDelta} blocks, the escrow policy allows ${expected.maxCltvDelta}`);
}

export type PayoutInvoiceExpectations = Readonly<{
  amountMsat: bigint;
  destination: string;
  nowMs: number;
  minRemainingMs: number;
  network: string;
}>;

/** Checks a contributor's plain invoice for a bonus or compensation: amount, destination, network and time left. */
export function verifyPayoutInvoice(invoice: DecodedInvoice, expected: PayoutInvoiceExpectations): void {
  const refuse = (code: string, message: string): never => {
    throw new LightningError(code, `${message}; create a new invoice for the payout`, false);
  };
  if (invoice.amountMsat === null) refuse('INVOICE_NO_AMOUNT', 'the invoice has no amount');
  if (invoice.amountMsat !== expected.amountMsat) refuse('INVOICE_WRONG_AMOUNT', `the invoice asks ${String(invoice.amountMsat)} msat, the payout is ${expected.amountMsat} msat`);
  if (invoice.destination !== expected.destination) refuse('INVOICE_WRONG_DESTINATION', `the invoice pays node ${invoice.destination}, the contributor registered ${expected.destination}`);
  if (invoice.network !== expected.network) refuse('INVOICE_WRONG_NETWORK', `the invoice is for ${invoice.network}, the coordinator runs on ${expected.network}`);
  if (invoice.expiresAtMs - expected.nowMs < expected.minRemainingMs) refuse('INVOICE_EXPIRES_TOO_SOON', `the invoice expires at ${invoice.expiresAtMs}, less than ${expected.minRemainingMs} ms from now`);
}

/** An invoice must stay payable at least this long after it is checked, so the payment can arrive first. */
export const MIN_INVOICE_REMAINING_MS = 60_000;
