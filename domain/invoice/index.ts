// The invoice decider and its stream naming: one stream per payment hash, so a hash can never back two invoices.

import type { Decider } from '../decider.js';
import { requirePaymentHashHex } from '../ids.js';
import { decide, type InvoiceCommand } from './invoice.logic.js';
import { evolve, initialState, type InvoiceEvent, type InvoiceState } from './invoice.state.js';

export * from './invoice.logic.js';
export * from './invoice.state.js';

export const invoiceDecider: Decider<InvoiceCommand, InvoiceEvent, InvoiceState> = { decide, evolve, initialState };

export const INVOICE_STREAM_PREFIX = 'invoice-';

export function streamId(paymentHashHex: string): string {
  return `${INVOICE_STREAM_PREFIX}${requirePaymentHashHex(paymentHashHex)}`;
}

export { streamId as invoiceStreamId };
