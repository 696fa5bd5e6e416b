// One state machine per payout: what the verdicts owe an assignment, where each payment stands, and when its budget may be released.

import type { AssignmentState } from '../assignment/assignment.state.js';
import { invariant } from '../errors.js';
import type { InvoiceState, PayoutKind } from '../invoice/invoice.state.js';
import type { InvoiceCommand } from '../invoice/invoice.logic.js';
import { type EscrowReactionContext, impliedSettlement, payoutInvoiceCommand } from './escrow.js';

/**
 * - due: owed, and an invoice for it is on its way to the log (the API view knows one was posted);
 * - invoice-needed: owed, but no invoice can be paid: the contributor must post one;
 * - in-flight: an invoice is logged and being paid (or the escrow is locked and being released);
 * - paid: the money reached the contributor;
 * - abandoned: given up for good, with the reason; its budget is released.
 */
export const PAYOUT_STATES = ['due', 'invoice-needed', 'in-flight', 'paid', 'abandoned'] as const;
export type PayoutState = (typeof PAYOUT_STATES)[number];
/** The base reward goes out as 'escrow' (settling the hold invoice) or, when none can settle, as 'compensation'. */
export type PayoutLineKind = 'escrow' | PayoutKind;

export type PayoutLine = Readonly<{
  kind: PayoutLineKind;
  amountMsat: bigint;
  state: PayoutState;
  /** Why the payout is where it is, for its owner: a failure code or an abandonment reason. */
  reason: string | null;
  paymentHash: string | null;
  feeMsat: bigint | null;
  /** Invoices tried so far for a bonus or compensation (each a fresh payment hash). */
  attempts: number;
}>;

/** The run reservation behind an assignment: one per assignment, named so the API and the process manager agree. */
export function assignmentReservationId(assignmentId: string): string {
  return `rsv-${assignmentId}`;
}

/** Most invoices a payout may go through before it is abandoned: each failed one was given up for good first. */
export const MAX_PAYOUT_INVOICES = 5;

export type PayoutInputs = Readonly<{
  assignment: AssignmentState;
  /** The escrow hold invoice, or null when none was logged. */
  escrow: InvoiceState | null;
  /** Each payout kind's invoices in the order they were tried; only the last may be unfinished. */
  attempts: Readonly<Record<PayoutKind, readonly InvoiceState[]>>;
}>;

const ESCROW_IN_FLIGHT: readonly string[] = ['open', 'held', 'releasing', 'canceling'];
const ESCROW_FINAL: readonly string[] = ['settled', 'canceled', 'expired'];

/** The payout lines the verdicts imply now; `nowMs` lets a rejection past its dispute window count as forfeit. */
export function payoutLines(inputs: PayoutInputs, nowMs?: number): PayoutLine[] {
  const { assignment, escrow } = inputs;
  const terms = assignment.terms;
  if (terms === null) return [];
  const lines: PayoutLine[] = [];
  if (impliedSettlement(assignment, nowMs) === 'pay') lines.push(baseLine(inputs, terms.baseRewardMsat, escrow));
  const bonusMsat = assignment.acceptance?.bonusMsat ?? 0n;
  if (bonusMsat > 0n) lines.push(attemptLine(inputs, 'bonus', bonusMsat));
  return lines;
}

function baseLine(inputs: PayoutInputs, baseRewardMsat: bigint, escrow: InvoiceState | null): PayoutLine {
  if (escrow !== null && escrow.status === 'settled') {
    return { kind: 'escrow', amountMsat: baseRewardMsat, state: 'paid', reason: null, paymentHash: escrow.terms?.paymentHash ?? null, feeMsat: escrow.feeMsat ?? 0n, attempts: 0 };
  }
  // An escrow still open or locked is on its way: it settles, or it is voided and compensation follows.
  if (escrow !== null && ESCROW_IN_FLIGHT.includes(escrow.status) && inputs.attempts.compensation.length === 0) {
    return { kind: 'escrow', amountMsat: baseRewardMsat, state: 'in-flight', reason: escrow.cancelReason, paymentHash: escrow.terms?.paymentHash ?? null, feeMsat: null, attempts: 0 };
  }
  return attemptLine(inputs, 'compensation', baseRewardMsat);
}

function attemptLine(inputs: PayoutInputs, kind: PayoutKind, amountMsat: bigint): PayoutLine {
  const tried = inputs.attempts[kind];
  const sent = tried.filter((invoice) => invoice.status === 'sent');
  // Attempt n+1 starts only once attempt n is abandoned, so two sent invoices would mean paying twice.
  invariant(sent.length <= 1, `${kind} payout of ${inputs.assignment.terms?.assignmentId} was sent ${sent.length} times`);
  const base = { kind, amountMsat, attempts: tried.length };
  if (sent[0] !== undefined) return { ...base, state: 'paid', reason: null, paymentHash: sent[0].terms?.paymentHash ?? null, feeMsat: sent[0].feeMsat ?? 0n };
  const abandoned = inputs.assignment.abandonedPayouts[kind];
  if (abandoned !== undefined) return { ...base, state: 'abandoned', reason: `${abandoned.code}: ${abandoned.message}`, paymentHash: null, feeMsat: null };
  const last = tried[tried.length - 1];
  if (last !== undefined && (last.status === 'open' || last.status === 'failed')) {
    return { ...base, state: 'in-flight', reason: last.lastFailureCode, paymentHash: last.terms?.paymentHash ?? null, feeMsat: null };
  }
  const reason = last === undefined ? `post a ${kind} invoice for ${amountMsat} msat` : `the last ${kind} invoice will never be paid (${last.lastFailureCode ?? 'abandoned'}); post a fresh one`;
  return { ...base, state: 'invoice-needed', reason, paymentHash: null, feeMsat: null };
}

/** True when a payout that needs an invoice has used up its attempts and must be abandoned rather than asked again. */
export function attemptsExhausted(line: PayoutLine): boolean {
  return line.state === 'invoice-needed' && line.kind !== 'escrow' && line.attempts >= MAX_PAYOUT_INVOICES;
}

export type PayoutActions = Readonly<{
  /** OpenInvoice for each payout that needs an invoice, with the one the contributor provided for its attempt. */
  open: InvoiceCommand[];
  /** Payouts whose invoices all failed: abandon them (AbandonPayout) so their budget returns. */
  exhausted: PayoutKind[];
}>;

/**
 * What the payout lines ask for now. Level-triggered: asking again with the same state gives the
 * same commands (the invoice per attempt is fixed by `ctx.payoutInvoice`), so a process manager
 * may call this after every event and on every sweep.
 */
export function payoutActions(inputs: PayoutInputs, ctx: EscrowReactionContext): PayoutActions {
  const terms = inputs.assignment.terms;
  const open: InvoiceCommand[] = [];
  const exhausted: PayoutKind[] = [];
  if (terms === null) return { open, exhausted };
  for (const line of payoutLines(inputs, ctx.nowMs)) {
    if (line.state !== 'invoice-needed' || line.kind === 'escrow') continue;
    if (attemptsExhausted(line)) exhausted.push(line.kind);
    else open.push(payoutInvoiceCommand(terms, line.kind, line.amountMsat, line.attempts, ctx));
  }
  return { open, exhausted };
}

export type BudgetRelease = Readonly<{ spentMsat: bigint }>;

/**
 * The release a final assignment owes its reservation, or null while money can still move:
 * a settlement not yet decided, an escrow not yet settled or voided, a payout not paid or
 * abandoned, or a payout invoice not finished. Spent is what actually left: amounts and fees.
 */
export function budgetRelease(inputs: PayoutInputs, nowMs: number): BudgetRelease | null {
  const { assignment, escrow, attempts } = inputs;
  // Without the clock: a rejection is final only once RejectionFinalized is in the log, ordered against any dispute.
  if (assignment.terms === null || impliedSettlement(assignment) === 'pending') return null;
  if (escrow !== null && !ESCROW_FINAL.includes(escrow.status)) return null;
  if (!payoutLines(inputs, nowMs).every((line) => line.state === 'paid' || line.state === 'abandoned')) return null;
  const payouts = [...attempts.bonus, ...attempts.compensation];
  if (!payouts.every((invoice) => invoice.status === 'sent' || invoice.status === 'abandoned')) return null;
  let spentMsat = 0n;
  if (escrow?.status === 'settled') spentMsat += (escrow.terms?.amountMsat ?? 0n) + (escrow.feeMsat ?? 0n);
  for (const invoice of payouts) if (invoice.status === 'sent') spentMsat += (invoice.terms?.amountMsat ?? 0n) + (invoice.feeMsat ?? 0n);
  return { spentMsat };
}
