// Invoice aggregate state: one payment hash, either an escrow hold invoice (open, held, settled or voided) or a plain payout (sent or failed).

import type { Event } from '../decider.js';
import { invariant, InvariantViolation } from '../errors.js';

export const INVOICE_KINDS = ['escrow', 'bonus', 'compensation'] as const;
export type InvoiceKind = (typeof INVOICE_KINDS)[number];
export type PayoutKind = Exclude<InvoiceKind, 'escrow'>;

/**
 * 'releasing' and 'canceling' are the outbox intents of the escrow flow: the decision is
 * logged first, the Lightning side effect follows, and its outcome is a later event.
 */
export const INVOICE_STATUSES = ['none', 'open', 'held', 'releasing', 'canceling', 'settled', 'canceled', 'expired', 'sent', 'failed', 'abandoned'] as const;
export type InvoiceStatus = (typeof INVOICE_STATUSES)[number];

export type InvoiceTerms = Readonly<{
  paymentHash: string;
  kind: InvoiceKind;
  assignmentId: string;
  runId: string;
  contributorId: string;
  amountMsat: bigint;
  bolt11: string;
  expiresAtMs: number;
  /** Block height at which a held escrow HTLC times out; null for plain payouts. */
  cltvExpiryHeight: number | null;
  /**
   * Routing-fee ceiling the coordinator pays this invoice with: the one reserved with the
   * assignment. Absent on invoices logged before ceilings were recorded (the dispatcher's default applies).
   */
  maxFeeMsat?: bigint;
}>;

/** What every invoice event repeats from the terms, so each event can be audited alone. */
export type InvoiceRef = {
  paymentHash: string;
  kind: InvoiceKind;
  assignmentId: string;
  runId: string;
  contributorId: string;
  amountMsat: bigint;
  atMs: number;
};

export type InvoiceOpened = Event<'InvoiceOpened', InvoiceTerms & { atMs: number }>;
export type InvoiceHeld = Event<'InvoiceHeld', InvoiceRef>;
/** Intent: release the preimage so the contributor can settle. A released preimage may be logged. */
export type EscrowReleaseRequested = Event<'EscrowReleaseRequested', InvoiceRef & { preimageHex: string }>;
/** Intent: ask the contributor's node to cancel the hold invoice (only it can). */
export type EscrowCancelRequested = Event<'EscrowCancelRequested', InvoiceRef & { reason: string }>;
/** feeMsat: the routing fee the coordinator's node paid to lock the HTLC, known once it settled. */
export type InvoiceSettled = Event<'InvoiceSettled', InvoiceRef & { preimageHex: string; feeMsat: bigint }>;
export type InvoiceCanceled = Event<'InvoiceCanceled', InvoiceRef & { reason: string; wasHeld: boolean }>;
export type InvoiceExpired = Event<'InvoiceExpired', InvoiceRef & { expiresAtMs: number; wasHeld: boolean }>;
export type PaymentSent = Event<'PaymentSent', InvoiceRef & { feeMsat: bigint; preimageHex: string }>;
export type PaymentFailed = Event<'PaymentFailed', InvoiceRef & { failureCode: string }>;
/** Terminal for this payment hash: it will never be paid, so the payout may ask for a fresh invoice. */
export type PaymentAbandoned = Event<'PaymentAbandoned', InvoiceRef & { code: string; message: string }>;

export type InvoiceEvent =
  | InvoiceOpened
  | InvoiceHeld
  | EscrowReleaseRequested
  | EscrowCancelRequested
  | InvoiceSettled
  | InvoiceCanceled
  | InvoiceExpired
  | PaymentSent
  | PaymentFailed
  | PaymentAbandoned;

export type InvoiceState = Readonly<{
  status: InvoiceStatus;
  terms: InvoiceTerms | null;
  openedAtMs: number | null;
  heldAtMs: number | null;
  /** When the invoice reached settled, canceled, expired or sent. */
  finishedAtMs: number | null;
  preimageHex: string | null;
  feeMsat: bigint | null;
  cancelReason: string | null;
  lastFailureCode: string | null;
}>;

export const initialState = (): InvoiceState => ({
  status: 'none',
  terms: null,
  openedAtMs: null,
  heldAtMs: null,
  finishedAtMs: null,
  preimageHex: null,
  feeMsat: null,
  cancelReason: null,
  lastFailureCode: null,
});

export function isPayoutKind(kind: InvoiceKind): kind is PayoutKind {
  return kind !== 'escrow';
}

type Rule = Readonly<{ from: readonly InvoiceStatus[]; to: InvoiceStatus; escrow: boolean }>;

/** Legal transitions per event, and whether the event belongs to the escrow flow or the payout flow. */
const TRANSITIONS: Readonly<Record<Exclude<InvoiceEvent['type'], 'InvoiceOpened'>, Rule>> = {
  InvoiceHeld: { from: ['open'], to: 'held', escrow: true },
  // A cancel request on a held HTLC can still turn into a release (an overturned rejection).
  EscrowReleaseRequested: { from: ['held', 'canceling'], to: 'releasing', escrow: true },
  EscrowCancelRequested: { from: ['open', 'held'], to: 'canceling', escrow: true },
  InvoiceSettled: { from: ['held', 'releasing'], to: 'settled', escrow: true },
  InvoiceCanceled: { from: ['open', 'held', 'releasing', 'canceling'], to: 'canceled', escrow: true },
  InvoiceExpired: { from: ['open', 'held', 'releasing', 'canceling'], to: 'expired', escrow: true },
  PaymentSent: { from: ['open', 'failed'], to: 'sent', escrow: false },
  PaymentFailed: { from: ['open', 'failed'], to: 'failed', escrow: false },
  PaymentAbandoned: { from: ['open', 'failed'], to: 'abandoned', escrow: false },
};

export function evolve(state: InvoiceState, event: InvoiceEvent): InvoiceState {
  if (event.type === 'InvoiceOpened') {
    invariant(state.status === 'none', `InvoiceOpened cannot follow a ${state.status} invoice: a payment hash is used once`);
    const { atMs, ...terms } = event.data;
    invariant((terms.kind === 'escrow') === (terms.cltvExpiryHeight !== null), 'InvoiceOpened: only escrow invoices carry a CLTV expiry');
    return { ...state, status: 'open', terms, openedAtMs: atMs };
  }
  const rule = Object.hasOwn(TRANSITIONS, event.type) ? TRANSITIONS[event.type] : undefined;
  if (rule === undefined) throw new InvariantViolation(`invoice evolve: unknown event type ${(event as { type: string }).type}`);
  const terms = state.terms;
  invariant(terms !== null && rule.from.includes(state.status), `${event.type} cannot follow a ${state.status} invoice`);
  invariant(rule.escrow === (terms.kind === 'escrow'), `${event.type} does not apply to a ${terms.kind} invoice`);
  invariant(sameRef(terms, event.data), `${event.type} for ${event.data.paymentHash} does not match the invoice's terms`);
  return { ...applyTransition(state, terms, event), status: rule.to };
}

function sameRef(terms: InvoiceTerms, ref: InvoiceRef): boolean {
  return (
    terms.paymentHash === ref.paymentHash &&
    terms.kind === ref.kind &&
    terms.assignmentId === ref.assignmentId &&
    terms.runId === ref.runId &&
    terms.contributorId === ref.contributorId &&
    terms.amountMsat === ref.amountMsat
  );
}

function applyTransition(state: InvoiceState, terms: InvoiceTerms, event: Exclude<InvoiceEvent, InvoiceOpened>): InvoiceState {
  const atMs = event.data.atMs;
  switch (event.type) {
    case 'InvoiceHeld':
      return { ...state, heldAtMs: atMs };
    case 'EscrowReleaseRequested':
      invariant(state.heldAtMs !== null, 'EscrowReleaseRequested for an HTLC that was never held');
      return { ...state, preimageHex: event.data.preimageHex };
    case 'EscrowCancelRequested':
      return { ...state, cancelReason: event.data.reason };
    case 'InvoiceSettled': {
      // Settlements logged before fees were recorded carry none.
      const feeMsat = event.data.feeMsat ?? 0n;
      invariant(feeMsat >= 0n, 'InvoiceSettled with a negative fee');
      return { ...state, preimageHex: event.data.preimageHex, feeMsat, finishedAtMs: atMs };
    }
    case 'InvoiceCanceled':
      invariant(event.data.wasHeld === (state.heldAtMs !== null), 'InvoiceCanceled misreports whether the HTLC was held');
      return { ...state, cancelReason: event.data.reason, finishedAtMs: atMs };
    case 'InvoiceExpired':
      invariant(atMs >= terms.expiresAtMs, `InvoiceExpired at ${atMs}, before its expiry ${terms.expiresAtMs}`);
      invariant(event.data.wasHeld === (state.heldAtMs !== null), 'InvoiceExpired misreports whether the HTLC was held');
      return { ...state, finishedAtMs: atMs };
    case 'PaymentSent':
      invariant(event.data.feeMsat >= 0n, 'PaymentSent with a negative fee');
      return { ...state, preimageHex: event.data.preimageHex, feeMsat: event.data.feeMsat, finishedAtMs: atMs };
    case 'PaymentFailed':
      return { ...state, lastFailureCode: event.data.failureCode };
    case 'PaymentAbandoned':
      return { ...state, lastFailureCode: event.data.code, finishedAtMs: atMs };
    default: {
      const unknown: never = event;
      throw new InvariantViolation(`invoice evolve: unknown event type ${(unknown as InvoiceEvent).type}`);
    }
  }
}
