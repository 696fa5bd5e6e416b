// The ports the audit needs: a log reader in audit order (implemented on PostgreSQL/PGlite) and the Lightning node's paged payment list.

import type { RecordedEvent } from '../../domain/ports/event-store.js';
import type { PaymentState } from '../../domain/ports/lightning.js';
import type { AssignmentState } from '../../domain/assignment/assignment.state.js';

/** Where a keyset walk of the log in (stream id, revision) order stands. */
export type StreamCursor = Readonly<{ streamId: string; revision: number }>;
export type StreamHead = Readonly<{ streamId: string; revision: number; headHash: string }>;
/** A logged event as the settlement part folds it: no hashes, metadata or time (those are the integrity part's). */
export type SettlementEvent = Pick<RecordedEvent, 'streamId' | 'revision' | 'position' | 'type' | 'data'>;

/** Per-run money from the ledger projection: the budget account and the transfers that touch it. */
export type RunFunds = Readonly<{
  runId: string;
  /** From the run's budget account row. */
  accountCreditsPostedMsat: bigint;
  accountDebitsPostedMsat: bigint;
  accountDebitsPendingMsat: bigint;
  /** From the transfers table. */
  fundingMsat: bigint;
  paidMsat: bigint;
  heldMsat: bigint;
  feesMsat: bigint;
}>;

export type LedgerTotals = Readonly<{ debitsPendingMsat: bigint; creditsPendingMsat: bigint; debitsPostedMsat: bigint; creditsPostedMsat: bigint }>;

/**
 * The log as the audit reads it. Every method is one bounded page, so the audit's memory does
 * not grow with the log: callers walk with keyset cursors and keep one stream or one assignment.
 */
export interface AuditLog {
  /** Events after `after` in (stream id, revision) order, at most `limit`. */
  eventsInStreamOrder(after: StreamCursor | null, limit: number): Promise<RecordedEvent[]>;
  /** The head rows of these streams (those that have one). */
  streamHeads(streamIds: readonly string[]): Promise<StreamHead[]>;
  /** Whether the stream holds an event at `revision` now (a head ahead of a walk's events: appended since, or cut off). */
  hasEvent(streamId: string, revision: number): Promise<boolean>;
  /** Heads of streams that have no event at all, at most `limit`. */
  headsWithoutEvents(limit: number): Promise<StreamHead[]>;
  /** Assignment ids (not stream ids) after `afterAssignmentId` in order, at most `limit`. */
  assignmentIds(afterAssignmentId: string, limit: number): Promise<string[]>;
  /**
   * The events of these assignments' streams and of every invoice stream opened for them, in no
   * particular order (deriveSettlement orders each stream). The caller bounds how many assignments it asks for at once.
   */
  assignmentEvents(assignmentIds: readonly string[]): Promise<SettlementEvent[]>;
  /** Which of these payment hashes have an invoice stream in the log. */
  knownPaymentHashes(paymentHashes: readonly string[]): Promise<Set<string>>;
  /** Number of events, for progress. */
  countEvents(): Promise<number>;
  trialBalance(): Promise<LedgerTotals>;
  /** Per-run funds after `afterRunId`, at most `limit`, from SQL aggregates. */
  runFunds(afterRunId: string, limit: number): Promise<RunFunds[]>;
}

export type NodePayment = Readonly<{ paymentHash: string; status: 'in_flight' | 'succeeded' | 'failed'; amountMsat: bigint }>;
export type NodePaymentPage = Readonly<{ payments: readonly NodePayment[]; /** Opaque; null on the last page. */ next: string | null }>;

/** The coordinator node as the audit reads it: one payment's state, and every payment it made, page by page. */
export interface NodePaymentLedger {
  paymentState(paymentHash: string): Promise<PaymentState>;
  listPayments(page: Readonly<{ after: string | null; limit: number }>): Promise<NodePaymentPage>;
}

export function isNodePaymentLedger(node: unknown): node is NodePaymentLedger {
  return typeof node === 'object' && node !== null && typeof (node as NodePaymentLedger).listPayments === 'function' && typeof (node as NodePaymentLedger).paymentState === 'function';
}

/** Re-runs one replay verdict's recipe; 'unavailable' when it cannot be re-run, with why. */
export interface RecipeReplayer {
  replay(assignment: AssignmentState): Promise<Readonly<{ outcome: 'match' | 'mismatch' } | { outcome: 'unavailable'; reason: string }>>;
}
