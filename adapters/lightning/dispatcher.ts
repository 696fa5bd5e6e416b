// The Lightning dispatcher: performs each logged intent idempotently, keyed by payment hash, and logs what the node reports.

import type { Kysely } from 'kysely';
import { invoiceDecider, invoiceStreamId, type InvoiceCommand } from '../../domain/invoice/index.js';
import { DomainError, invariant, InvariantViolation } from '../../domain/errors.js';
import { LightningError, type ContributorChannel, type CoordinatorNode, type PaymentState } from '../../domain/ports/lightning.js';
import type { OutboxTables } from '../../projections/outbox/schema.js';
import type { PostgresEventStore } from '../postgres/postgres-event-store.js';
import { handleCommand } from '../commands/command-handler.js';
import { PreimageDeriver } from './preimages.js';
import { DEFAULT_DISPATCHER_LIMITS, maxFeeMsat, type DispatcherLimits } from './dispatcher-limits.js';

export type DispatchStep = 'pay-escrow' | 'release' | 'cancel' | 'pay-payout';

export type DispatcherDeps = Readonly<{
  store: PostgresEventStore;
  node: CoordinatorNode;
  contributors: ContributorChannel;
  nowMs: () => number;
  newEventId: () => string;
  limits?: DispatcherLimits;
  /** Fault injection: runs right after a side effect, before its outcome is logged (a crash there). */
  afterEffect?: (step: DispatchStep, paymentHash: string) => void | Promise<void>;
  /** Where a row set aside for one pass is reported. */
  log?: (line: string) => void;
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

export class LightningDispatcher {
  private readonly limits: DispatcherLimits;
  /**
   * Where the last pass stopped, by payment hash. Each pass takes the next batch after it and
   * wraps around, so every unfinished intent is visited within ceil(unfinished / batch) passes:
   * rows that cannot move yet (a held HTLC, a cancel the contributor ignores) never crowd out the rest.
   */
  private cursor = '';

  constructor(private readonly deps: DispatcherDeps) {
    this.limits = deps.limits ?? DEFAULT_DISPATCHER_LIMITS;
  }

  /**
   * One pass over every unfinished intent: act, observe, log the outcome. Every step is
   * idempotent per payment hash, so a pass after a crash (the start-up reconciliation)
   * finishes what the crashed one began without doing anything twice.
   */
  async dispatchOnce(): Promise<number> {
    let recorded = 0;
    for (const row of await this.unfinished()) recorded += await this.isolated(row);
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
      return 0;
    }
  }

  /** Start-up reconciliation: passes until nothing more can be brought to a final state now. */
  async reconcile(maxPasses = 10): Promise<number> {
    let total = 0;
    for (let pass = 0; pass < maxPasses; pass += 1) {
      const recorded = await this.dispatchOnce();
      total += recorded;
      if (recorded === 0) return total;
    }
    return total;
  }

  async unfinished(): Promise<OutboxRow[]> {
    const db = this.deps.store.db.withSchema('outbox') as unknown as Kysely<OutboxTables>;
    const page = (after: string) =>
      db.selectFrom('invoices').selectAll().where('status', 'in', [...UNFINISHED]).where('payment_hash', '>', after).orderBy('payment_hash').limit(this.limits.batchSize).execute();
    let rows = await page(this.cursor);
    if (rows.length < this.limits.batchSize && this.cursor !== '') {
      const seen = new Set(rows.map((r) => r.payment_hash));
      rows = [...rows, ...(await page('')).filter((r) => !seen.has(r.payment_hash))].slice(0, this.limits.batchSize);
    }
    this.cursor = rows.length === 0 ? '' : rows[rows.length - 1]!.payment_hash;
    return rows.map((r) => ({
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
      }));
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
    await this.deps.contributors.releasePreimage({ contributorId: row.contributorId, paymentHash: row.paymentHash, preimageHex: row.releasedPreimageHex });
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
    await this.deps.contributors.requestCancel({ contributorId: row.contributorId, paymentHash: row.paymentHash });
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
