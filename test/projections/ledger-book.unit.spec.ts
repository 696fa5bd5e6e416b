// Unit tests of the in-memory double-entry book: two-phase escrow, payouts, and the invariants it stops on.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { InvariantViolation } from '../../domain/errors.js';
import type { DomainEvent } from '../../domain/events.js';
import { LedgerBook, balanceChange, balancesOf, type Account, type AccountBalances, type LedgerInvoice, type Transfer } from '../../projections/ledger/ledger-book.js';
import { historyArbitrary } from './history.js';

const HASH = 'a'.repeat(64);
const AT = 1_700_000_000_000;
const ref = { paymentHash: HASH, kind: 'escrow' as const, assignmentId: 'asg-1', runId: 'run-1', contributorId: 'c-1', amountMsat: 1_000n, atMs: AT };

function ev<T extends DomainEvent['type']>(type: T, data: Record<string, unknown>): DomainEvent {
  return { type, data } as unknown as DomainEvent;
}
const funded = (amountMsat: bigint, fundingId = 'f1', source = 'customer') => ev('RunFunded', { runId: 'run-1', fundingId, source, amountMsat, atMs: AT });
const opened = (kind = 'escrow', paymentHash = HASH, amountMsat = 1_000n) =>
  ev('InvoiceOpened', { ...ref, kind, paymentHash, amountMsat, bolt11: 'lnbcrt1', expiresAtMs: AT + 1, cltvExpiryHeight: kind === 'escrow' ? 500 : null });

function book(): LedgerBook {
  return new LedgerBook(new Map(), new Map(), new Map());
}
function apply(b: LedgerBook, events: DomainEvent[]): LedgerBook {
  for (const e of events) b.apply(e);
  return b;
}
function totals(b: LedgerBook) {
  const all = [...b.accounts.values()];
  const sum = (f: (a: Account) => bigint) => all.reduce((s, a) => s + f(a), 0n);
  return {
    debitsPendingMsat: sum((a) => a.debitsPendingMsat),
    creditsPendingMsat: sum((a) => a.creditsPendingMsat),
    debitsPostedMsat: sum((a) => a.debitsPostedMsat),
    creditsPostedMsat: sum((a) => a.creditsPostedMsat),
  };
}

describe('LedgerBook', () => {
  it('funds a run from customer revenue and subsidy as posted transfers', () => {
    const b = apply(book(), [funded(5_000n), funded(2_000n, 'f2', 'subsidy')]);
    expect(b.accounts.get('run:run-1')).toMatchObject({ creditsPostedMsat: 7_000n, debitsPostedMsat: 0n });
    expect(b.accounts.get('customer-revenue')).toMatchObject({ debitsPostedMsat: 5_000n });
    expect(b.accounts.get('subsidy-pool')).toMatchObject({ debitsPostedMsat: 2_000n });
    LedgerBook.assertBalanced(totals(b));
  });

  it('locks escrow as a pending transfer and posts it on settlement', () => {
    const b = apply(book(), [funded(5_000n), opened(), ev('InvoiceHeld', ref)]);
    expect(b.transfers.get(`escrow:${HASH}`)).toMatchObject({ status: 'pending', amountMsat: 1_000n });
    expect(b.accounts.get('run:run-1')).toMatchObject({ debitsPendingMsat: 1_000n });
    expect(b.accounts.get('contributor:c-1')).toMatchObject({ creditsPendingMsat: 1_000n });
    b.apply(ev('InvoiceSettled', { ...ref, preimageHex: 'b'.repeat(64) }));
    expect(b.transfers.get(`escrow:${HASH}`)).toMatchObject({ status: 'posted', resolvedAtMs: AT });
    expect(b.accounts.get('contributor:c-1')).toMatchObject({ creditsPendingMsat: 0n, creditsPostedMsat: 1_000n });
    LedgerBook.assertBalanced(totals(b));
  });

  it('voids a held escrow on cancel and ignores one that was never held', () => {
    const held = apply(book(), [funded(5_000n), opened(), ev('InvoiceHeld', ref), ev('InvoiceCanceled', { ...ref, reason: 'rejected', wasHeld: true })]);
    expect(held.transfers.get(`escrow:${HASH}`)!.status).toBe('voided');
    expect(held.accounts.get('run:run-1')).toMatchObject({ debitsPendingMsat: 0n, debitsPostedMsat: 0n });
    const never = apply(book(), [funded(5_000n), opened(), ev('InvoiceExpired', { ...ref, expiresAtMs: AT, wasHeld: false })]);
    expect(never.transfers.size).toBe(1);
  });

  it('pays bonuses and compensation as posted transfers, with the routing fee to the fee account', () => {
    const bonusHash = 'c'.repeat(64);
    const b = apply(book(), [funded(5_000n), opened('bonus', bonusHash, 300n), ev('PaymentSent', { ...ref, kind: 'bonus', paymentHash: bonusHash, amountMsat: 300n, feeMsat: 7n, preimageHex: 'd'.repeat(64) })]);
    expect(b.transfers.get(`payout:${bonusHash}`)).toMatchObject({ kind: 'bonus', status: 'posted', amountMsat: 300n });
    expect(b.accounts.get('routing-fees')).toMatchObject({ creditsPostedMsat: 7n });
    expect(b.accounts.get('run:run-1')).toMatchObject({ debitsPostedMsat: 307n });
    LedgerBook.assertBalanced(totals(b));
  });

  it('stops on an event applied twice instead of double-counting it', () => {
    const b = apply(book(), [funded(5_000n)]);
    expect(() => b.apply(funded(5_000n))).toThrow(InvariantViolation);
    const e = apply(book(), [funded(5_000n), opened(), ev('InvoiceHeld', ref), ev('InvoiceSettled', { ...ref, preimageHex: 'b'.repeat(64) })]);
    expect(() => e.apply(ev('InvoiceSettled', { ...ref, preimageHex: 'b'.repeat(64) }))).toThrow(/is posted/);
  });

  it('stops before a run budget goes below zero', () => {
    const b = apply(book(), [funded(500n), opened()]);
    expect(() => b.apply(ev('InvoiceHeld', ref))).toThrow(/below zero/);
  });

  it('refuses money movements for invoices it never saw opened', () => {
    expect(() => apply(book(), [funded(5_000n), ev('InvoiceHeld', ref)])).toThrow(/never opened/);
  });

  it('detects an unbalanced trial balance', () => {
    expect(() => LedgerBook.assertBalanced({ debitsPendingMsat: 1n, creditsPendingMsat: 0n, debitsPostedMsat: 0n, creditsPostedMsat: 0n })).toThrow(/out of balance/);
  });

  it('checks each batch by the change it writes: the change balances, and adds up to the whole table\'s totals', () => {
    // The projector in memory: a table of accounts, batches of a random history, each batch's book opened
    // on copies of the table (accounts it creates open at zero), its dirty accounts written back.
    fc.assert(
      fc.property(historyArbitrary({ maxRuns: 3, maxAssignments: 10 }), fc.integer({ min: 1, max: 40 }), (history, batchSize) => {
        const table = new Map<string, Account>();
        const transfers = new Map<string, Transfer>();
        const invoices = new Map<string, LedgerInvoice>();
        for (let i = 0; i < history.length; i += batchSize) {
          const before = totals({ accounts: table } as LedgerBook);
          const b = new LedgerBook(new Map([...table].map(([id, a]) => [id, { ...a }])), new Map([...transfers].map(([id, t]) => [id, { ...t }])), new Map(invoices));
          const opening = new Map([...b.accounts].map(([id, a]) => [id, balancesOf(a)]));
          for (const { event } of history.slice(i, i + batchSize)) b.apply(event);
          const written = new Map<string, AccountBalances>();
          for (const id of b.dirtyAccounts) {
            table.set(id, { ...b.accounts.get(id)! });
            written.set(id, balancesOf(b.accounts.get(id)!));
          }
          for (const id of b.dirtyTransfers) transfers.set(id, { ...b.transfers.get(id)! });
          for (const h of b.newInvoices) invoices.set(h, b.invoices.get(h)!);
          const change = balanceChange(opening, written);
          LedgerBook.assertBalanced(change);
          const after = totals({ accounts: table } as LedgerBook);
          expect(after).toEqual({
            debitsPendingMsat: before.debitsPendingMsat + change.debitsPendingMsat,
            creditsPendingMsat: before.creditsPendingMsat + change.creditsPendingMsat,
            debitsPostedMsat: before.debitsPostedMsat + change.debitsPostedMsat,
            creditsPostedMsat: before.creditsPostedMsat + change.creditsPostedMsat,
          });
        }
      }),
      { numRuns: 60 },
    );
  });

  it('refuses a batch whose written rows do not balance', () => {
    const b = apply(book(), [funded(5_000n), opened(), ev('InvoiceHeld', ref)]);
    const written = new Map([...b.dirtyAccounts].map((id) => [id, balancesOf(b.accounts.get(id)!)]));
    LedgerBook.assertBalanced(balanceChange(new Map(), written));
    const contributor = written.get('contributor:c-1')!;
    written.set('contributor:c-1', { ...contributor, creditsPendingMsat: contributor.creditsPendingMsat + 1n });
    expect(() => LedgerBook.assertBalanced(balanceChange(new Map(), written))).toThrow(/pending debits 1000 != pending credits 1001/);
  });
});
