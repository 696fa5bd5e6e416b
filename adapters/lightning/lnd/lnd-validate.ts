// Argument checks shared by the LND adapters, so a malformed hash or amount never reaches the node.

import { LightningError } from '../../../domain/ports/lightning.js';

/** BOLT 11 caps the description field at 639 bytes. */
export const BOLT11_DESCRIPTION_MAX_BYTES = 639;

/** Returns the hash in lowercase: LND answers in lowercase, and the log compares hashes as strings. */
export function requirePaymentHash(paymentHash: string): string {
  if (typeof paymentHash !== 'string' || !/^[0-9a-fA-F]{64}$/.test(paymentHash)) {
    throw new LightningError('PAYMENT_HASH_INVALID', `a payment hash is 64 hex characters (SHA-256), got ${JSON.stringify(paymentHash)}`, false);
  }
  return paymentHash.toLowerCase();
}

export function requirePreimage(preimageHex: string): string {
  if (typeof preimageHex !== 'string' || !/^[0-9a-fA-F]{64}$/.test(preimageHex)) {
    throw new LightningError('PREIMAGE_INVALID', 'a preimage is 32 bytes as 64 hex characters', false);
  }
  return preimageHex.toLowerCase();
}

export type InvoiceTerms = Readonly<{ amountMsat: bigint; expirySec: number; description: string; cltvDelta?: number }>;

export function requireInvoiceTerms(terms: InvoiceTerms): void {
  const refuse = (message: string): never => {
    throw new LightningError('INVOICE_REQUEST_INVALID', message, false);
  };
  if (typeof terms.amountMsat !== 'bigint' || terms.amountMsat <= 0n) refuse(`amountMsat must be a positive bigint, got ${String(terms.amountMsat)}`);
  if (!Number.isSafeInteger(terms.expirySec) || terms.expirySec <= 0) refuse(`expirySec must be a positive whole number of seconds, got ${String(terms.expirySec)}`);
  if (terms.cltvDelta !== undefined && (!Number.isInteger(terms.cltvDelta) || terms.cltvDelta <= 0 || terms.cltvDelta > 0xffff)) {
    refuse(`cltvDelta must be a whole number of blocks from 1 to 65535, got ${String(terms.cltvDelta)}`);
  }
  if (typeof terms.description !== 'string' || Buffer.byteLength(terms.description, 'utf8') > BOLT11_DESCRIPTION_MAX_BYTES) {
    refuse(`description must be a string of at most ${BOLT11_DESCRIPTION_MAX_BYTES} UTF-8 bytes`);
  }
}
