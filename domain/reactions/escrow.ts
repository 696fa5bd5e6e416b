// Escrow reactions: pure rules turning assignment and escrow events into the invoice commands a process manager issues next.

import type { AssignmentEvent, AssignmentState, WorkTerms } from '../assignment/assignment.state.js';
import type { InvoiceCommand } from '../invoice/invoice.logic.js';
import type { InvoiceEvent, InvoiceState, PayoutKind } from '../invoice/invoice.state.js';

/**
 * How the rules stay "paid at most once" (property-tested in test/domain):
 * - the base reward goes out either by settling the escrow or by one compensation payout;
 * - a compensation is asked for (payouts.ts) only when the escrow is canceled, expired or absent,
 *   and a canceled or expired escrow can never settle afterwards;
 * - an escrow is settled only if it was opened strictly before the verdict that pays, in log
 *   order (global positions, never clocks), so an escrow that shows up after a compensation was
 *   asked for is canceled instead;
 * - payout invoices must be keyed by (assignmentId, kind, attempt) in `payoutInvoice`, so asking
 *   twice yields the same OpenInvoice, which the invoice decider treats as a no-op; attempt n+1
 *   is asked for only once attempt n was abandoned as never to be paid.
 * The process manager must call these with the states as of the event being handled (right
 * after it, in log order).
 */

export type PayoutRequest = Readonly<{
  assignmentId: string;
  runId: string;
  contributorId: string;
  kind: PayoutKind;
  amountMsat: bigint;
  /** 0 for the first invoice; one more after each invoice abandoned as never to be paid. */
  attempt: number;
}>;
export type PayoutInvoiceTerms = Readonly<{ paymentHash: string; bolt11: string; expiresAtMs: number }>;

export type EscrowReactionContext = Readonly<{
  nowMs: number;
  /** The coordinator's preimage for an assignment's escrow (HMAC of a secret in production), injected to keep the domain pure. */
  escrowPreimageHex: (assignmentId: string) => string;
  /** The contributor's invoice for a payout; must return the same terms for the same (assignmentId, kind). */
  payoutInvoice: (request: PayoutRequest) => PayoutInvoiceTerms;
}>;

export type ImpliedSettlement = 'pay' | 'forfeit' | 'pending';

/**
 * What the verdicts so far imply for the base reward. A rejection is 'pending' while it can
 * still be disputed; pass `nowMs` to let a rejection whose dispute window closed count as forfeit.
 */
export function impliedSettlement(assignment: AssignmentState, nowMs?: number): ImpliedSettlement {
  switch (assignment.status) {
    case 'accepted':
      return 'pay';
    case 'resolved':
      return assignment.resolution?.resolution === 'overturned' ? 'pay' : 'forfeit';
    case 'expired':
    case 'forfeited':
      return 'forfeit';
    case 'rejected': {
      const deadlineMs = assignment.rejection?.disputeDeadlineMs;
      return nowMs !== undefined && deadlineMs !== undefined && nowMs > deadlineMs ? 'forfeit' : 'pending';
    }
    default:
      return 'pending';
  }
}

export type ImpliedPayout = Readonly<{ settlement: ImpliedSettlement; baseRewardMsat: bigint; bonusMsat: bigint }>;

/** The amounts the verdicts owe: the base reward when the settlement is 'pay', plus any accepted bonus. */
export function impliedPayout(assignment: AssignmentState, nowMs?: number): ImpliedPayout {
  const settlement = impliedSettlement(assignment, nowMs);
  const baseRewardMsat = settlement === 'pay' ? (assignment.terms?.baseRewardMsat ?? 0n) : 0n;
  return { settlement, baseRewardMsat, bonusMsat: assignment.acceptance?.bonusMsat ?? 0n };
}

function isOpenOrHeld(escrow: InvoiceState | null): escrow is InvoiceState {
  return escrow !== null && (escrow.status === 'open' || escrow.status === 'held');
}

/** Whether the coordinator's HTLC is locked and can still be released to the contributor. */
function isReleasable(escrow: InvoiceState | null): boolean {
  return escrow !== null && (escrow.status === 'held' || (escrow.status === 'canceling' && escrow.heldAtMs !== null));
}

/** The release intent (outbox): the dispatcher hands the preimage over and logs the settlement it observes. */
function settle(escrow: InvoiceState, terms: WorkTerms, ctx: EscrowReactionContext): InvoiceCommand {
  const paymentHash = escrow.terms?.paymentHash ?? '';
  return { type: 'RequestEscrowRelease', data: { paymentHash, preimageHex: ctx.escrowPreimageHex(terms.assignmentId) }, metadata: { nowMs: ctx.nowMs } };
}

/** The cancel intent (outbox): the dispatcher asks the contributor's node and logs the cancellation it observes. */
function cancel(escrow: InvoiceState, reason: string, ctx: EscrowReactionContext): InvoiceCommand {
  return { type: 'RequestEscrowCancel', data: { paymentHash: escrow.terms?.paymentHash ?? '', reason }, metadata: { nowMs: ctx.nowMs } };
}

/** The OpenInvoice for a bonus or compensation payout, with the invoice the contributor provided for this attempt. */
export function payoutInvoiceCommand(terms: WorkTerms, kind: PayoutKind, amountMsat: bigint, attempt: number, ctx: EscrowReactionContext): InvoiceCommand {
  const { assignmentId, runId, contributorId, maxFeeMsat } = terms;
  const invoice = ctx.payoutInvoice({ assignmentId, runId, contributorId, kind, amountMsat, attempt });
  const data = { ...invoice, kind, assignmentId, runId, contributorId, amountMsat, cltvExpiryHeight: null, maxFeeMsat };
  return { type: 'OpenInvoice', data, metadata: { nowMs: ctx.nowMs } };
}

/**
 * Pays the base reward through the escrow when it is held. Open, releasing or settled: it is
 * under way. No escrow to settle: the payout lines (payouts.ts) ask for a compensation.
 */
function payBase(terms: WorkTerms, escrow: InvoiceState | null, ctx: EscrowReactionContext): InvoiceCommand[] {
  return escrow !== null && isReleasable(escrow) ? [settle(escrow, terms, ctx)] : [];
}

function voidEscrow(escrow: InvoiceState | null, reason: string, ctx: EscrowReactionContext): InvoiceCommand[] {
  return isOpenOrHeld(escrow) ? [cancel(escrow, reason, ctx)] : [];
}

/**
 * Commands owed after an assignment event. `assignment` is the state right after `event`;
 * `escrow` is the assignment's escrow invoice as of then, or null when none was opened.
 */
export function reactToAssignmentEvent(
  event: AssignmentEvent,
  assignment: AssignmentState,
  escrow: InvoiceState | null,
  ctx: EscrowReactionContext,
): InvoiceCommand[] {
  const terms = assignment.terms;
  if (terms === null) return [];
  switch (event.type) {
    case 'SubmissionAccepted':
      return payBase(terms, escrow, ctx);
    case 'SubmissionRejected':
      return voidEscrow(escrow, `submission rejected: ${event.data.reasonCode}`, ctx);
    case 'DisputeResolved':
      if (event.data.resolution === 'overturned') return payBase(terms, escrow, ctx);
      return voidEscrow(escrow, 'rejection upheld after replay', ctx);
    case 'AssignmentExpired':
      return voidEscrow(escrow, 'assignment expired without a submission', ctx);
    default:
      return [];
  }
}

/**
 * Commands owed after an event on an assignment's escrow invoice. `escrow` is the state right
 * after `event`; `assignment` is the assignment as of then. `openedBeforePayingVerdict` says,
 * from global log positions, whether the escrow's InvoiceOpened precedes the verdict that pays
 * (false when nothing pays). Payout invoices need no reaction here: payouts.ts owns them.
 */
export function reactToEscrowEvent(
  event: InvoiceEvent,
  escrow: InvoiceState,
  assignment: AssignmentState,
  openedBeforePayingVerdict: boolean,
  ctx: EscrowReactionContext,
): InvoiceCommand[] {
  const terms = assignment.terms;
  if (terms === null || escrow.terms?.kind !== 'escrow') return [];
  const judged = !['none', 'assigned', 'submitted'].includes(assignment.status);
  switch (event.type) {
    case 'InvoiceOpened':
      // An escrow opened after the verdict is never settled (see the header), so release the coordinator's funds.
      return judged ? voidEscrow(escrow, 'escrow opened after the verdict', ctx) : [];
    case 'InvoiceHeld': {
      if (!judged) return [];
      const pays = impliedSettlement(assignment) === 'pay';
      if (pays && openedBeforePayingVerdict) return [settle(escrow, terms, ctx)];
      return voidEscrow(escrow, pays ? 'escrow opened after the verdict' : 'assignment was not accepted', ctx);
    }
    default:
      return [];
  }
}
