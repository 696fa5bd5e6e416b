// Unit tests for the payout state machine: the lines the verdicts owe, the invoices they ask for, and when a reservation may be released.

import { describe, expect, it } from 'vitest';
import { type AssignmentCommand, assignmentDecider, worstCaseCostMsat } from '../../domain/assignment/index.js';
import { budgetRelease, type EscrowReactionContext, MAX_PAYOUT_INVOICES, payoutActions, payoutLines, type PayoutInputs } from '../../domain/index.js';
import { type InvoiceCommand, invoiceDecider, type InvoiceState } from '../../domain/invoice/index.js';
import { assignmentCommands as c, command, DISPUTE_WINDOW_MS, ESCROW_HASH, ESCROW_PREIMAGE, given, hex64, INVOICE_EXPIRES_AT_MS, openInvoiceData, T0 } from './fixtures.js';

const NOW = T0 + 100_000;
const ctx: EscrowReactionContext = {
  nowMs: NOW,
  escrowPreimageHex: () => ESCROW_PREIMAGE,
  payoutInvoice: ({ assignmentId, kind, attempt }) => ({ paymentHash: hex64(`${assignmentId}:${kind}:${attempt}`), bolt11: `lnbcrt1${kind}${attempt}`, expiresAtMs: NOW + 3_600_000 }),
};

const assignment = (commands: AssignmentCommand[]) => given(assignmentDecider, commands).state;
const accepted = (bonusMsat = 250_000n) => assignment([c.assign(), c.submit(), c.accept(T0 + 2000, bonusMsat)]);

const escrowOpen = command<InvoiceCommand>('OpenInvoice', openInvoiceData(), T0);
const held = command<InvoiceCommand>('MarkInvoiceHeld', { paymentHash: ESCROW_HASH }, T0 + 1);
const escrowAfter = (commands: InvoiceCommand[]): InvoiceState => given(invoiceDecider, [escrowOpen, ...commands]).state;
const settledEscrow = escrowAfter([held, command('SettleInvoice', { paymentHash: ESCROW_HASH, preimageHex: ESCROW_PREIMAGE, feeMsat: 1_200n }, T0 + 2)]);
const canceledEscrow = escrowAfter([command('CancelInvoice', { paymentHash: ESCROW_HASH, reason: 'no route' }, T0 + 1)]);

/** A payout invoice for one attempt, taken through the given outcome. */
function payoutInvoice(kind: 'bonus' | 'compensation', attempt: number, amountMsat: bigint, outcome: 'open' | 'failed' | 'sent' | 'abandoned'): InvoiceState {
  const paymentHash = hex64(`asg-1:${kind}:${attempt}`);
  const open = command<InvoiceCommand>('OpenInvoice', openInvoiceData({ paymentHash, kind, amountMsat, cltvExpiryHeight: null }), T0);
  const steps: Record<typeof outcome, InvoiceCommand[]> = {
    open: [],
    failed: [command('RecordPaymentFailed', { paymentHash, failureCode: 'NO_ROUTE' }, T0 + 1)],
    sent: [command('RecordPaymentSent', { paymentHash, feeMsat: 700n, preimageHex: hex64('p') }, T0 + 1)],
    abandoned: [command('AbandonPayment', { paymentHash, code: 'INVOICE_EXPIRED', message: 'expired unpaid' }, INVOICE_EXPIRES_AT_MS)],
  };
  return given(invoiceDecider, [open, ...steps[outcome]]).state;
}

const inputs = (overrides: Partial<PayoutInputs>): PayoutInputs => ({ assignment: accepted(), escrow: null, attempts: { bonus: [], compensation: [] }, ...overrides });

describe('payoutLines', () => {
  it('shows a held escrow in flight and a settled one paid, with its fee, beside the bonus', () => {
    const lines = payoutLines(inputs({ escrow: escrowAfter([held]) }));
    expect(lines.map((l) => [l.kind, l.state])).toEqual([['escrow', 'in-flight'], ['bonus', 'invoice-needed']]);
    const paid = payoutLines(inputs({ escrow: settledEscrow, attempts: { bonus: [payoutInvoice('bonus', 0, 250_000n, 'sent')], compensation: [] } }));
    expect(paid).toEqual([
      expect.objectContaining({ kind: 'escrow', state: 'paid', feeMsat: 1_200n }),
      expect.objectContaining({ kind: 'bonus', state: 'paid', feeMsat: 700n, attempts: 1 }),
    ]);
  });

  it('asks for a compensation invoice when accepted work has no live escrow: none, canceled or expired', () => {
    for (const escrow of [null, canceledEscrow]) {
      const [base] = payoutLines(inputs({ escrow, assignment: accepted(0n) }));
      expect(base).toMatchObject({ kind: 'compensation', state: 'invoice-needed', amountMsat: 1_000_000n, attempts: 0 });
    }
  });

  it('asks again after an invoice is abandoned, and reports the last reason', () => {
    const attempts = { bonus: [payoutInvoice('bonus', 0, 250_000n, 'abandoned')], compensation: [] };
    const bonus = payoutLines(inputs({ escrow: settledEscrow, attempts }))[1];
    expect(bonus).toMatchObject({ kind: 'bonus', state: 'invoice-needed', attempts: 1, reason: expect.stringContaining('INVOICE_EXPIRED') });
    const failing = payoutLines(inputs({ escrow: settledEscrow, attempts: { bonus: [payoutInvoice('bonus', 0, 250_000n, 'failed')], compensation: [] } }))[1];
    expect(failing).toMatchObject({ state: 'in-flight', reason: 'NO_ROUTE' });
  });

  it('shows an abandoned payout with its reason, and owes nothing to forfeited work', () => {
    const abandoned = given(assignmentDecider, [c.assign(), c.submit(), c.accept(T0 + 2000, 250_000n), command('AbandonPayout', { assignmentId: 'asg-1', kind: 'bonus', code: 'PAYOUT_UNCLAIMED', message: 'no invoice' }, T0 + 3000)]).state;
    expect(payoutLines(inputs({ assignment: abandoned, escrow: settledEscrow }))[1]).toMatchObject({ state: 'abandoned', reason: 'PAYOUT_UNCLAIMED: no invoice' });
    const rejected = assignment([c.assign(), c.submit(), c.reject()]);
    expect(payoutLines(inputs({ assignment: rejected }), T0 + 2000 + DISPUTE_WINDOW_MS + 1)).toEqual([]);
  });

  it('refuses a history that sent one payout twice', () => {
    const attempts = { bonus: [payoutInvoice('bonus', 0, 250_000n, 'sent'), payoutInvoice('bonus', 1, 250_000n, 'sent')], compensation: [] };
    expect(() => payoutLines(inputs({ escrow: settledEscrow, attempts }))).toThrow(/sent 2 times/);
  });
});

describe('payoutActions', () => {
  it('opens the next attempt with the reserved fee ceiling, and abandons a payout out of attempts', () => {
    const { open, exhausted } = payoutActions(inputs({ escrow: canceledEscrow }), ctx);
    expect(open).toEqual([
      expect.objectContaining({ type: 'OpenInvoice', data: expect.objectContaining({ kind: 'compensation', paymentHash: hex64('asg-1:compensation:0'), maxFeeMsat: 10_000n }) }),
      expect.objectContaining({ type: 'OpenInvoice', data: expect.objectContaining({ kind: 'bonus', paymentHash: hex64('asg-1:bonus:0'), amountMsat: 250_000n }) }),
    ]);
    expect(exhausted).toEqual([]);
    const spent = Array.from({ length: MAX_PAYOUT_INVOICES }, (_, i) => payoutInvoice('bonus', i, 250_000n, 'abandoned'));
    const out = payoutActions(inputs({ escrow: settledEscrow, attempts: { bonus: spent, compensation: [] } }), ctx);
    expect(out).toEqual({ open: [], exhausted: ['bonus'] });
  });
});

describe('budgetRelease', () => {
  it('waits while anything can still move money, then releases what left: amounts and fees', () => {
    expect(budgetRelease(inputs({ escrow: escrowAfter([held]) }), NOW)).toBeNull();
    expect(budgetRelease(inputs({ escrow: settledEscrow }), NOW)).toBeNull();
    expect(budgetRelease(inputs({ escrow: settledEscrow, attempts: { bonus: [payoutInvoice('bonus', 0, 250_000n, 'open')], compensation: [] } }), NOW)).toBeNull();
    const done = inputs({ escrow: settledEscrow, attempts: { bonus: [payoutInvoice('bonus', 0, 250_000n, 'abandoned'), payoutInvoice('bonus', 1, 250_000n, 'sent')], compensation: [] } });
    expect(budgetRelease(done, NOW)).toEqual({ spentMsat: 1_000_000n + 1_200n + 250_000n + 700n });
  });

  it('releases forfeited work at once when no escrow is live, and a rejection only once its window\'s close is in the log', () => {
    expect(budgetRelease(inputs({ assignment: assignment([c.assign(), c.expire()]) }), NOW)).toEqual({ spentMsat: 0n });
    const rejected = assignment([c.assign(), c.submit(), c.reject()]);
    // The clock alone never finalizes it: a dispute decided at the last moment by another process must win or lose in the log.
    expect(budgetRelease(inputs({ assignment: rejected, escrow: canceledEscrow }), T0 + 2000 + DISPUTE_WINDOW_MS + 1)).toBeNull();
    const finalized = assignment([c.assign(), c.submit(), c.reject(), c.finalize()]);
    expect(budgetRelease(inputs({ assignment: finalized, escrow: canceledEscrow }), NOW)).toEqual({ spentMsat: 0n });
  });

  it('never releases more as spent than the worst case the assignment reserved', () => {
    const terms = accepted().terms!;
    const done = inputs({ escrow: settledEscrow, attempts: { bonus: [payoutInvoice('bonus', 0, 250_000n, 'sent')], compensation: [] } });
    expect(budgetRelease(done, NOW)!.spentMsat).toBeLessThanOrEqual(worstCaseCostMsat(terms));
  });
});

describe('the bonus bound', () => {
  it('refuses a bonus above the assignment\'s reserved maximum, and reserves base + bonus + one fee ceiling per payment', () => {
    const submitted = given(assignmentDecider, [c.assign(), c.submit()]).state;
    expect(() => assignmentDecider.decide(c.accept(T0 + 2000, 500_001n), submitted)).toThrow(expect.objectContaining({ code: 'BONUS_EXCEEDS_MAX' }));
    expect(assignmentDecider.decide(c.accept(T0 + 2000, 500_000n), submitted)).toHaveLength(1);
    expect(worstCaseCostMsat({ baseRewardMsat: 1_000n, maxBonusMsat: 500n, maxFeeMsat: 10n })).toBe(1_520n);
    expect(worstCaseCostMsat({ baseRewardMsat: 1_000n, maxBonusMsat: 0n, maxFeeMsat: 10n })).toBe(1_010n);
  });
});
