// The Lightning dispatcher: performs each logged intent idempotently, keyed by payment hash, and logs what the node reports.

import type { Kysely } from 'kysely';
import { invoiceDecider, invoiceStreamId, type InvoiceCommand } from '../../domain/invoice/index.js';
import { DomainError, invariant, InvariantViolation } from '../../domain/errors.js';
import { LightningError, type ContributorChannel, type CoordinatorNode, type PaymentState } from '../../domain/ports/lightning.js';
import type { OutboxTables } from '../../projections/outbox/schema.js';
import type { LedgerStore } from '../event-store/ledger-store.js';
import { handleCommand } from '../commands/command-handler.js';
import { PreimageDeriver } from './preimages.js';
import { DEFAULT_DISPATCHER_LIMITS, maxFeeMsat, type DispatcherLimits } from './dispatcher-limits.js';
import { onContributorSide } from './contributor-side.js';

export type DispatchStep = 'pay-escrow' | 'release' | 'cancel' | 'pay-payout';

export type DispatcherDeps = Readonly<{
  store: LedgerStore;
  node: CoordinatorNode;
  contributors: ContributorChannel;
  nowMs: () => number;
  newEventId: () => string;
  limits?: DispatcherLimits;
  /** Fault injection: runs right after a side effect, before its outcome is logged (a crash there). */
  afterEffect?: (step: DispatchStep, paymentHash: string) => void | Promise<void>;
  /** Where a row set aside for one pass is reported. */
  log?: (line: string) => void;
  /** The reconciliation sweep's page and period. */
  sweep?: SweepOptions;
}>;

export type OutboxRow = Readonly<{
  paymentHash: string;
  kind: string;
  status: string;
  contributorId: string;
  amountMsat: bigint;
  bolt11: string;
  expiresAtMs: number;
  releasedPreimageHex: string | null;
  failedAttempts: number;
  wasHeld: boolean;
  /** The fee ceiling reserved for this payment; null on invoices logged before ceilings were recorded. */
  maxFeeMsat: bigint | null;
}>;

/** How long after a payout invoice's expiry the node's "unknown" is taken to mean it was never paid. */
export const ABANDON_GRACE_MS = 10 * 60_000;

/** Refusals about one invoice itself, which the node will give for it every time: only these give a row up. */
const INVOICE_REFUSALS: ReadonlySet<string> = new Set(['INVOICE_INVALID', 'INVOICE_MISMATCH', 'PAY_REQUEST_INVALID', 'INVOICE_EXPIRED']);

/** Statuses that still owe a Lightning side effect or an outcome. */
const UNFINISHED = ['open', 'held', 'releasing', 'canceling', 'failed'] as const;

/** Statuses whose next step is the coordinator's: a crash may have interrupted it, so start-up visits them all. */
const ACTIONABLE = ['open', 'releasing', 'canceling', 'failed'] as const;

/** How many hinted hashes wait at most; beyond it hints are dropped and the sweep runs at once, which finds whatever they named. */
export const MAX_PENDING_HINTS = 10_000;
/** Default minimum time between two reconciliation sweep ticks, by the injected clock. */
export const DEFAULT_SWEEP_INTERVAL_MS = 10_000;

export type SweepOptions = Readonly<{
  /** Unfinished intents one sweep tick visits (a page after a rotating cursor); default: the dispatcher's batch size. */
  pageSize?: number;
  /** Least time between two ticks by the injected clock; 0 ticks on every dispatch, null turns the sweep off (tests only). */
  intervalMs?: number | null;
}>;

/** What the dispatcher did since it was made: the bench and the tests read it. */
export type DispatcherCounters = { visits: number; hintsReceived: number; hintsDropped: number; sweepTicks: number; startupVisits: number };

export class LightningDispatcher {
  private readonly limits: DispatcherLimits;
  private readonly sweepPageSize: number;
  private readonly sweepIntervalMs: number | null;
  /**
   * Hashes to visit at the next dispatch: named by a node update (any status) or by a new invoice
   * event in the log (a held row is skipped then: nothing is the coordinator's to do until the node
   * says something changed). Hints never decide: a visit reads the row from the outbox (the log)
   * and asks the node about that one hash, exactly as a sweep visit does.
   */
  private readonly hinted = new Set<string>();
  private readonly touched = new Set<string>();
  /** Rows set aside this pass (their trouble was their own): visited again next pass, not next round. */
  private readonly retry = new Set<string>();
  /** Start-up reconciliation: every actionable row once, from this cursor on, before anything else. */
  private startupCursor: string | null = '';
  /**
   * The sweep's rotating cursor by payment hash: each tick takes the next page after it and wraps
   * around, so every unfinished intent is visited within ceil(unfinished / page) ticks however
   * many ahead of it cannot move. It is the safety net for updates that never came (a dropped stream).
   */
  private sweepCursor = '';
  private lastSweepAtMs: number | null = null;
  readonly counters: DispatcherCounters = { visits: 0, hintsReceived: 0, hintsDropped: 0, sweepTicks: 0, startupVisits: 0 };

  constructor(private readonly deps: DispatcherDeps) {
    this.limits = deps.limits ?? DEFAULT_DISPATCHER_LIMITS;
    this.sweepPageSize = deps.sweep?.pageSize ?? this.limits.batchSize;
    this.sweepIntervalMs = deps.sweep?.intervalMs === undefined ? DEFAULT_SWEEP_INTERVAL_MS : deps.sweep.intervalMs;
    invariant(Number.isSafeInteger(this.sweepPageSize) && this.sweepPageSize > 0, `sweep page size must be a whole number > 0, got ${this.sweepPageSize}`);
  }

  /** A node said something about this hash. Garbage is ignored; past MAX_PENDING_HINTS the sweep is asked to run instead. */
  hint(paymentHash: string): void {
    this.counters.hintsReceived += 1;
    if (typeof paymentHash !== 'string' || !/^[0-9a-f]{64}$/.test(paymentHash)) return;
    if (this.hinted.size >= MAX_PENDING_HINTS && !this.hinted.has(paymentHash)) {
      this.counters.hintsDropped += 1;
      this.sweepNow();
      return;
    }
    this.hinted.add(paymentHash);
  }

  /** The log has a new event for this invoice: its row may have a step for the coordinator now. */
  touch(paymentHash: string): void {
    this.touched.add(paymentHash);
  }

  /** Makes the next dispatch run a sweep tick whatever the interval (after a dropped stream, say). */
  sweepNow(): void {
    this.lastSweepAtMs = null;
  }

  /** A new pass begins: rows set aside in the last one get their turn again. */
  startPass(): void {
    for (const hash of this.retry) this.hinted.add(hash);
    this.retry.clear();
  }

  /** Whether hinted or touched rows wait for the next dispatch. */
  get hasPending(): boolean {
    return this.hinted.size > 0 || this.touched.size > 0;
  }

  /**
   * One dispatch: the start-up reconciliation until it is done, then the rows hints and new log
   * events named (at most a batch), then a sweep tick if one is due. Work is proportional to what
   * changed, plus one bounded page per sweep interval; a held escrow nobody named costs nothing.
   * Every step is idempotent per payment hash, so a pass after a crash finishes what the crashed
   * one began without doing anything twice.
   */
  async dispatchOnce(): Promise<number> {
    let recorded = 0;
    if (this.startupCursor !== null) recorded += await this.startupLap();
    recorded += await this.visitPending();
    if (this.sweepDue()) recorded += await this.sweepTick();
    return recorded;
  }

  /**
   * One row's trouble stays that row's. The node being down is everyone's, so it ends the pass
   * (the loop retries). An invoice the node refuses to pay for good is given up in the log: a
   * payout is abandoned (a fresh invoice may follow), an escrow never paid is canceled (the
   * base then goes by compensation). Any other refusal about one row is reported and the row is
   * tried again next pass, after every other row had its turn.
   */
  private async isolated(row: OutboxRow): Promise<number> {
    this.counters.visits += 1;
    try {
      return await this.handle(row);
    } catch (error) {
      // Only what is about this row is this row's: the node down, a database fault or a crash is everyone's.
      if (!(error instanceof LightningError || error instanceof DomainError) || error instanceof InvariantViolation) throw error;
      // Only a refusal of this very invoice gives it up; a node-wide refusal (credentials, a rejected call) may hide
      // a payment still in flight, so it is everyone's and ends the pass.
      if (error instanceof LightningError && !INVOICE_REFUSALS.has(error.code)) {
        if (!error.retryable || error.code === 'NODE_UNAVAILABLE') throw error;
      }
      if (error instanceof LightningError && INVOICE_REFUSALS.has(error.code)) {
        if (row.kind !== 'escrow') return this.abandon(row, error.code.slice(0, 64), error.message.slice(0, 1024));
        if (row.status === 'open' && !row.wasHeld) return this.record(row, { type: 'CancelInvoice', data: { paymentHash: row.paymentHash, reason: `the node refused to pay it: ${error.code}` } });
      }
      this.deps.log?.(`escrow: ${row.kind} ${row.paymentHash} (${row.status}) set aside for this pass: ${error instanceof Error ? error.message : String(error)}`);
      this.retry.add(row.paymentHash);
      return 0;
    }
  }

  /** A full lap over every unfinished intent, held ones included, in sweep pages: for an operator's explicit reconciliation. */
  async reconcile(maxPasses = 10): Promise<number> {
    let total = 0;
    for (let pass = 0; pass < maxPasses; pass += 1) {
      let recorded = 0;
      for (let after = ''; ; ) {
        const rows = await this.page(UNFINISHED, after, this.limits.batchSize);
        for (const row of rows) recorded += await this.isolated(row);
        if (rows.length < this.limits.batchSize) break;
        after = rows[rows.length - 1]!.paymentHash;
      }
      total += recorded;
      if (recorded === 0) return total;
    }
    return total;
  }

  /** Every actionable row once, a page at a time; the cursor survives a pass that a node outage ended. */
  private async startupLap(): Promise<number> {
    let recorded = 0;
    while (this.startupCursor !== null) {
      const rows = await this.page(ACTIONABLE, this.startupCursor, this.limits.batchSize);
      for (const row of rows) {
        this.counters.startupVisits += 1;
        recorded += await this.isolated(row);
      }
      this.startupCursor = rows.length < this.limits.batchSize ? null : rows[rows.length - 1]!.paymentHash;
    }
    return recorded;
  }

  /** The rows hints and log events named, at most a batch of them; a hash no unfinished row has is forgotten. */
  private async visitPending(): Promise<number> {
    if (!this.hasPending) return 0;
    const hashes = [...new Set([...this.hinted, ...this.touched])].slice(0, this.limits.batchSize);
    const rows = new Map((await this.rowsFor(hashes)).map((row) => [row.paymentHash, row]));
    let recorded = 0;
    for (const hash of hashes) {
      const row = rows.get(hash);
      const named = this.hinted.has(hash);
      // A held row has no step of the coordinator's until the node reports a change: a log event alone does not visit it.
      if (row !== undefined && (named || row.status !== 'held')) recorded += await this.isolated(row);
      this.hinted.delete(hash);
      this.touched.delete(hash);
    }
    return recorded;
  }

  private sweepDue(): boolean {
    if (this.sweepIntervalMs === null) return false;
    return this.lastSweepAtMs === null || this.deps.nowMs() - this.lastSweepAtMs >= this.sweepIntervalMs;
  }

  /** One page of unfinished rows after the rotating cursor, wrapping around at the end. */
  private async sweepTick(): Promise<number> {
    this.lastSweepAtMs = this.deps.nowMs();
    this.counters.sweepTicks += 1;
    let rows = await this.page(UNFINISHED, this.sweepCursor, this.sweepPageSize);
    if (rows.length < this.sweepPageSize && this.sweepCursor !== '') {
      const seen = new Set(rows.map((r) => r.paymentHash));
      rows = [...rows, ...(await this.page(UNFINISHED, '', this.sweepPageSize)).filter((r) => !seen.has(r.paymentHash))].slice(0, this.sweepPageSize);
    }
    this.sweepCursor = rows.length === 0 ? '' : rows[rows.length - 1]!.paymentHash;
    let recorded = 0;
    for (const row of rows) recorded += await this.isolated(row);
    return recorded;
  }

  private outbox(): Kysely<OutboxTables> {
    return this.deps.store.db.withSchema('outbox') as unknown as Kysely<OutboxTables>;
  }

  private async page(statuses: readonly string[], after: string, limit: number): Promise<OutboxRow[]> {
    const rows = await this.outbox().selectFrom('invoices').selectAll().where('status', 'in', [...statuses]).where('payment_hash', '>', after).orderBy('payment_hash').limit(limit).execute();
    return rows.map(toRow);
  }

  private async rowsFor(hashes: readonly string[]): Promise<OutboxRow[]> {
    if (hashes.length === 0) return [];
    const rows = await this.outbox().selectFrom('invoices').selectAll().where('payment_hash', 'in', [...hashes]).where('status', 'in', [...UNFINISHED]).execute();
    return rows.map(toRow);
  }

  private async handle(row: OutboxRow): Promise<number> {
    if (row.kind !== 'escrow') return this.payout(row);
    switch (row.status) {
      case 'open':
        return this.lockEscrow(row);
      case 'held':
        return this.observeEscrow(row, await this.deps.node.paymentState(row.paymentHash), 'HTLC canceled by the contributor or timed out');
      case 'releasing':
        return this.release(row);
      case 'canceling':
        return this.cancel(row);
      default:
        return 0;
    }
  }

  /** Pays the contributor's hold invoice: the HTLC held at their node is the escrow. */
  private async lockEscrow(row: OutboxRow): Promise<number> {
    const known = await this.deps.node.paymentState(row.paymentHash);
    if (known.status === 'unknown' && this.deps.nowMs() >= row.expiresAtMs) return this.record(row, { type: 'ExpireInvoice', data: { paymentHash: row.paymentHash } });
    const state = known.status === 'unknown' || known.status === 'failed' ? await this.deps.node.pay(await this.payRequest(row)) : known;
    await this.deps.afterEffect?.('pay-escrow', row.paymentHash);
    if (state.status === 'in_flight') return this.record(row, { type: 'MarkInvoiceHeld', data: { paymentHash: row.paymentHash } });
    return this.observeEscrow(row, state, 'the escrow payment failed');
  }

  private async release(row: OutboxRow): Promise<number> {
    invariant(row.releasedPreimageHex !== null, `escrow ${row.paymentHash} is releasing without a released preimage`);
    invariant(PreimageDeriver.opens(row.releasedPreimageHex, row.paymentHash), `released preimage does not open escrow ${row.paymentHash}`);
    await onContributorSide(row.contributorId, () => this.deps.contributors.releasePreimage({ contributorId: row.contributorId, paymentHash: row.paymentHash, preimageHex: row.releasedPreimageHex! }));
    await this.deps.afterEffect?.('release', row.paymentHash);
    return this.observeEscrow(row, await this.deps.node.paymentState(row.paymentHash), 'the contributor did not settle before the HTLC was canceled');
  }

  /**
   * Asks the contributor to cancel a held HTLC. An escrow the coordinator never paid needs no one's
   * consent: the node knows no payment for it, so it is canceled (or expired) here and never paid.
   */
  private async cancel(row: OutboxRow): Promise<number> {
    const known = await this.deps.node.paymentState(row.paymentHash);
    if (known.status === 'unknown' && !row.wasHeld) {
      if (this.deps.nowMs() >= row.expiresAtMs) return this.record(row, { type: 'ExpireInvoice', data: { paymentHash: row.paymentHash } });
      return this.record(row, { type: 'CancelInvoice', data: { paymentHash: row.paymentHash, reason: 'canceled before the coordinator paid it' } });
    }
    await onContributorSide(row.contributorId, () => this.deps.contributors.requestCancel({ contributorId: row.contributorId, paymentHash: row.paymentHash }));
    await this.deps.afterEffect?.('cancel', row.paymentHash);
    return this.observeEscrow(row, await this.deps.node.paymentState(row.paymentHash), 'canceled on request');
  }

  /** Logs what the node says happened to the escrow HTLC; an HTLC still in flight needs nothing yet. */
  private async observeEscrow(row: OutboxRow, state: PaymentState, failedReason: string): Promise<number> {
    switch (state.status) {
      case 'succeeded':
        // Our payment succeeds only when the payee used the preimage: the node's word is the settlement.
        invariant(PreimageDeriver.opens(state.preimageHex, row.paymentHash), `node reports a preimage that does not open ${row.paymentHash}`);
        return this.record(row, { type: 'SettleInvoice', data: { paymentHash: row.paymentHash, preimageHex: state.preimageHex, feeMsat: state.feeMsat } });
      case 'failed': {
        const expired = state.failureCode === 'TIMEOUT' || state.failureCode === 'INVOICE_EXPIRED';
        if (expired && this.deps.nowMs() >= row.expiresAtMs) return this.record(row, { type: 'ExpireInvoice', data: { paymentHash: row.paymentHash } });
        return this.record(row, { type: 'CancelInvoice', data: { paymentHash: row.paymentHash, reason: `${failedReason}: ${state.failureCode}` } });
      }
      default:
        return 0;
    }
  }

  /**
   * Bonus and compensation payouts: pay (again after a failure), then log sent or failed. An
   * invoice that can never be paid (expired unpaid, or out of attempts with the node's word that
   * the last one failed) is abandoned, so the payout can ask the contributor for a fresh one.
   */
  private async payout(row: OutboxRow): Promise<number> {
    const known = await this.deps.node.paymentState(row.paymentHash);
    const settledFailure = known.status === 'unknown' || known.status === 'failed';
    if (settledFailure && row.status === 'failed' && row.failedAttempts >= this.limits.maxPayoutAttempts) {
      return this.abandon(row, 'PAYMENT_ATTEMPTS_EXHAUSTED', `${row.failedAttempts} payment attempts failed, the last with ${known.status === 'failed' ? known.failureCode : 'no outcome at the node'}`);
    }
    // Expired: the node's word that it failed is final; its silence is trusted only well after expiry,
    // once no payment started just before it (a timed-out send, say) can still be in flight.
    const expiredFor = this.deps.nowMs() - row.expiresAtMs;
    if ((known.status === 'failed' && expiredFor >= 0) || (known.status === 'unknown' && expiredFor >= ABANDON_GRACE_MS)) {
      return this.abandon(row, 'INVOICE_EXPIRED', 'the invoice expired before it could be paid');
    }
    if (known.status === 'unknown' && expiredFor >= 0) return 0;
    const retry = known.status === 'unknown' || (known.status === 'failed' && row.status === 'failed');
    const state = retry ? await this.deps.node.pay(await this.payRequest(row)) : known;
    await this.deps.afterEffect?.('pay-payout', row.paymentHash);
    if (state.status === 'succeeded') {
      return this.record(row, { type: 'RecordPaymentSent', data: { paymentHash: row.paymentHash, feeMsat: state.feeMsat, preimageHex: state.preimageHex } });
    }
    if (state.status === 'failed' && state.failureCode === 'INVOICE_EXPIRED') return this.abandon(row, 'INVOICE_EXPIRED', 'the contributor\'s node reports the invoice expired');
    if (state.status === 'failed') return this.record(row, { type: 'RecordPaymentFailed', data: { paymentHash: row.paymentHash, failureCode: state.failureCode } });
    return 0;
  }

  private abandon(row: OutboxRow, code: string, message: string): Promise<number> {
    return this.record(row, { type: 'AbandonPayment', data: { paymentHash: row.paymentHash, code, message } });
  }

  private async payRequest(row: OutboxRow) {
    const heightNow = await this.deps.node.blockHeight();
    return {
      bolt11: row.bolt11,
      paymentHash: row.paymentHash,
      amountMsat: row.amountMsat,
      // The ceiling reserved with the assignment: a fee above it would spend budget nobody set aside.
      maxFeeMsat: row.maxFeeMsat ?? maxFeeMsat(this.limits, row.amountMsat),
      maxTimeoutHeight: heightNow + this.limits.maxTimeoutBlocks,
    };
  }

  /** Logs an outcome through the invoice decider; returns 1 when it appended, 0 for an idempotent repeat. */
  private async record(row: OutboxRow, command: Omit<InvoiceCommand, 'metadata'>): Promise<number> {
    const full = { ...command, metadata: { nowMs: this.deps.nowMs() } } as InvoiceCommand;
    const outcome = await handleCommand(this.deps.store, invoiceDecider, invoiceStreamId(row.paymentHash), full, { newEventId: this.deps.newEventId });
    return outcome.status === 'appended' ? 1 : 0;
  }
}

type OutboxInvoiceRow = { [K in keyof OutboxTables['invoices']]: OutboxTables['invoices'][K] extends import('kysely').ColumnType<infer S, any, any> ? S : OutboxTables['invoices'][K] };

function toRow(r: OutboxInvoiceRow): OutboxRow {
  return {
    paymentHash: r.payment_hash,
    kind: r.kind,
    status: r.status,
    contributorId: r.contributor_id,
    amountMsat: BigInt(r.amount_msat),
    bolt11: r.bolt11,
    expiresAtMs: Number(r.expires_at_ms),
    releasedPreimageHex: r.released_preimage_hex,
    failedAttempts: r.failed_attempts,
    wasHeld: r.was_held,
    maxFeeMsat: r.max_fee_msat === null ? null : BigInt(r.max_fee_msat),
  };
}
