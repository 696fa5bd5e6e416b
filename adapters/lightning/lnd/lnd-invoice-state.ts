// Maps an LND invoice as ln-service's getInvoice returns it to the port's HoldInvoiceState.

import type { GetInvoiceResult } from 'ln-service';
import { LightningError, type HoldInvoiceState } from '../../../domain/ports/lightning.js';

export type LndInvoice = Pick<GetInvoiceResult, 'is_confirmed' | 'is_canceled' | 'is_held' | 'secret'> & {
  payments: ReadonlyArray<Pick<GetInvoiceResult['payments'][number], 'is_held' | 'mtokens' | 'timeout'>>;
};

export function holdInvoiceStateFrom(invoice: LndInvoice): HoldInvoiceState {
  if (invoice.is_confirmed) return { status: 'settled', preimageHex: invoice.secret.toLowerCase() };
  if (invoice.is_canceled) return { status: 'canceled' };
  if (invoice.is_held) return accepted(invoice);
  return { status: 'open' };
}

/**
 * Held: the amount is what the held HTLCs carry, and the expiry is the earliest of their CLTV timeouts,
 * because the first HTLC to time out is when the escrow can no longer be settled in full.
 */
function accepted(invoice: LndInvoice): HoldInvoiceState {
  const held = invoice.payments.filter((payment) => payment.is_held);
  if (held.length === 0) throw new LightningError('LND_UNEXPECTED_RESPONSE', 'LND reports the invoice as held but lists no held HTLC', true);
  return {
    status: 'accepted',
    amountMsat: held.reduce((sum, payment) => sum + BigInt(payment.mtokens), 0n),
    htlcExpiryHeight: Math.min(...held.map((payment) => payment.timeout)),
  };
}
