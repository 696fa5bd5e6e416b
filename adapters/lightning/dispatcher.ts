// The Lightning dispatcher: performs each logged intent idempotently, keyed by payment hash, and logs what the node reports.

import type { Kysely } from 'kysely';
import { invoiceDecider, invoiceStreamId, type InvoiceCommand } from '../../domain/invoice/index.js';
import { invariant } from '../../domain/errors.js';
import type { ContributorChannel, CoordinatorNode, PaymentState } from '../../domain/ports/lightning.js';
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
}>;

/** Statuses that still owe a Lightning side effect or an outcome. */
const UNFINISHED = ['open', 'held', 'releasing', 'canceling', 'failed'] as const;

export class LightningDispatcher {
  private readonly limits: DispatcherLimits;

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
    for (const row of await this.unfinished()) recorded += await this.handle(row);
    return recorded;
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
    const rows = await db
      .selectFrom('invoices')
      .selectAll()
      .where('status', 'in', [...UNFINISHED])
      .orderBy('payment_hash')
      .limit(this.limits.batchSize)
      .execute();
    return rows
      .map((r) => ({
        paymentHash: r.payment_hash,
        kind: r.kind,
        status: r.status,
        contributorId: r.contributor_id,
        amountMsat: BigInt(r.amount_msat),
        bolt11: r.bolt11,
        expiresAtMs: Number(r.expires_at_ms),
        releasedPreimageHex: r.released_preimage_hex,
        failedAttempts: r.failed_attempts,
      }))
      .filter((row) => row.status !== 'failed' || row.failedAttempts < this.limits.maxPayoutAttempts);
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

  private async cancel(row: OutboxRow): Promise<number> {
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
        return this.record(row, { type: 'SettleInvoice', data: { paymentHash: row.paymentHash, preimageHex: state.preimageHex } });
      case 'failed': {
        const expired = state.failureCode === 'TIMEOUT' || state.failureCode === 'INVOICE_EXPIRED';
        if (expired && this.deps.nowMs() >= row.expiresAtMs) return this.record(row, { type: 'ExpireInvoice', data: { paymentHash: row.paymentHash } });
        return this.record(row, { type: 'CancelInvoice', data: { paymentHash: row.paymentHash, reason: `${failedReason}: ${state.failureCode}` } });
      }
      default:
        return 0;
    }
  }

  /** Bonus and compensation payouts: pay (again after a failure), then log sent or failed. */
  private async payout(row: OutboxRow): Promise<number> {
    const known = await this.deps.node.paymentState(row.paymentHash);
    const retry = known.status === 'unknown' || (known.status === 'failed' && row.status === 'failed');
    const state = retry ? await this.deps.node.pay(await this.payRequest(row)) : known;
    await this.deps.afterEffect?.('pay-payout', row.paymentHash);
    if (state.status === 'succeeded') {
      return this.record(row, { type: 'RecordPaymentSent', data: { paymentHash: row.paymentHash, feeMsat: state.feeMsat, preimageHex: state.preimageHex } });
    }
    if (state.status === 'failed') return this.record(row, { type: 'RecordPaymentFailed', data: { paymentHash: row.paymentHash, failureCode: state.failureCode } });
    return 0;
  }

  private async payRequest(row: OutboxRow) {
    const heightNow = await this.deps.node.blockHeight();
    return {
      bolt11: row.bolt11,
      paymentHash: row.paymentHash,
      amountMsat: row.amountMsat,
      maxFeeMsat: maxFeeMsat(this.limits, row.amountMsat),
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
