// The ports the audit needs: a log reader in audit order (implemented on PostgreSQL/PGlite) and the Lightning node's paged payment list.

import type { LogPosition, RecordedEvent } from '../../domain/ports/event-store.js';
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
  /**
   * Present where the log's own database can check the chains' structure in one statement (the SQL log):
   * the integrity part then hashes events on the rebuild's read instead of walking the log again.
   */
  readonly chainScan?: ChainScan;
}

/** The first structural fault of one stream, as one pass over the log in (stream, revision) order finds it. */
export type ChainFault = Readonly<{
  code: 'EVENT_REVISION_GAP' | 'CHAIN_BROKEN_LINK' | 'GLOBAL_ORDER_VIOLATION';
  streamId: string;
  /** The event the fault shows at. */
  revision: number;
  type: string;
  globalPosition: bigint;
  /** The revision that should have come here (the previous one plus one; 0 for a stream's first event). */
  expectedRevision: number;
}>;

/** A stream whose last event and head row disagree (or whose head row is missing). */
export type HeadFault = Readonly<{ streamId: string; lastRevision: number; lastHash: string; type: string; globalPosition: bigint; head: StreamHead | null }>;

/** Per stream with anything wrong: its first structural fault and its head fault, either possibly null. */
export type StreamFaults = Readonly<{ streamId: string; fault: ChainFault | null; headFault: HeadFault | null }>;

/**
 * The chains' structure checked by the database: revisions gap-free from 0, each prev_hash the
 * predecessor's hash (the first the genesis hash), checkpoint order rising with revision, and every
 * stream's last event its head. Hashes of content are not recomputed here: that is JavaScript's
 * (the canonical JSON the hash covers is not PostgreSQL's jsonb text).
 */
export interface ChainScan {
  /**
   * Streams after `afterStreamId` (in the database's collation) that have a fault, at most `limit`,
   * in stream order; each page is one statement, so a stream's events and head are read in one snapshot.
   */
  streamFaults(genesisHash: string, afterStreamId: string | null, limit: number): Promise<StreamFaults[]>;
  /** How many streams hold events, and how many events they hold. */
  totals(): Promise<Readonly<{ streams: number; events: number }>>;
  /**
   * Committed events after `after` in checkpoint order, whole (every field the hash covers), at most `limit`.
   * `settledOnly` stops below the oldest in-progress writer, as a projection's read must (the rebuild's
   * pages); without it nothing committed is held back, not even an event whose transaction id was
   * pushed past every writer's, which a settled read would never reach and so never hash.
   */
  eventsInLogOrder(after: LogPosition, limit: number, settledOnly: boolean): Promise<RecordedEvent[]>;
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
