// An independent, deliberately plain fold of domain events into expected ledger balances (no LedgerBook code).

import type { DomainEvent } from '../../domain/events.js';

type Balance = { debitsPendingMsat: bigint; debitsPostedMsat: bigint; creditsPendingMsat: bigint; creditsPostedMsat: bigint };

export function expectedLedger(events: readonly DomainEvent[]): Record<string, Balance> {
  const balances: Record<string, Balance> = {};
  const at = (id: string): Balance => (balances[id] ??= { debitsPendingMsat: 0n, debitsPostedMsat: 0n, creditsPendingMsat: 0n, creditsPostedMsat: 0n });
  const invoices = new Map<string, { kind: string; runId: string; contributorId: string; amountMsat: bigint }>();
  for (const event of events) {
    if (event.type === 'RunFunded') {
      const d = event.data;
      at(d.source === 'customer' ? 'customer-revenue' : 'subsidy-pool').debitsPostedMsat += d.amountMsat;
      at(`run:${d.runId}`).creditsPostedMsat += d.amountMsat;
    } else if (event.type === 'InvoiceOpened') {
      invoices.set(event.data.paymentHash, event.data);
    } else if (event.type === 'InvoiceHeld') {
      const i = invoices.get(event.data.paymentHash)!;
      at(`run:${i.runId}`).debitsPendingMsat += i.amountMsat;
      at(`contributor:${i.contributorId}`).creditsPendingMsat += i.amountMsat;
    } else if (event.type === 'InvoiceSettled') {
      const i = invoices.get(event.data.paymentHash)!;
      at(`run:${i.runId}`).debitsPendingMsat -= i.amountMsat;
      at(`run:${i.runId}`).debitsPostedMsat += i.amountMsat;
      at(`contributor:${i.contributorId}`).creditsPendingMsat -= i.amountMsat;
      at(`contributor:${i.contributorId}`).creditsPostedMsat += i.amountMsat;
      const feeMsat = event.data.feeMsat ?? 0n;
      at(`run:${i.runId}`).debitsPostedMsat += feeMsat;
      if (feeMsat > 0n) at('routing-fees').creditsPostedMsat += feeMsat;
    } else if ((event.type === 'InvoiceCanceled' || event.type === 'InvoiceExpired') && event.data.wasHeld) {
      const i = invoices.get(event.data.paymentHash)!;
      at(`run:${i.runId}`).debitsPendingMsat -= i.amountMsat;
      at(`contributor:${i.contributorId}`).creditsPendingMsat -= i.amountMsat;
    } else if (event.type === 'PaymentSent') {
      const i = invoices.get(event.data.paymentHash)!;
      at(`run:${i.runId}`).debitsPostedMsat += i.amountMsat + event.data.feeMsat;
      at(`contributor:${i.contributorId}`).creditsPostedMsat += i.amountMsat;
      if (event.data.feeMsat > 0n) at('routing-fees').creditsPostedMsat += event.data.feeMsat;
    }
  }
  return balances;
}
