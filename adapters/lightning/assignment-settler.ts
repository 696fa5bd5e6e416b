// Settles one assignment's money from its latest state: deadlines, the escrow's opening, payout invoices and the budget release.

import { sql, type Kysely } from 'kysely';
import { assignmentDecider, assignmentStreamId, MAX_INVOICE_REFUSALS, type AssignmentCommand, type AssignmentState } from '../../domain/assignment/index.js';
import { contributorDecider, contributorStreamId } from '../../domain/contributor/index.js';
import type { Command, Decider, Event } from '../../domain/decider.js';
import { DomainError, invariant, InvariantViolation } from '../../domain/errors.js';
import { invoiceDecider, invoiceStreamId, type InvoiceCommand, type PayoutKind } from '../../domain/invoice/index.js';
import { PAYOUT_CLAIM_WINDOW_MS } from '../../domain/limits.js';
import { IdempotencyKeyReusedError } from '../../domain/ports/event-store-errors.js';
import { LightningError, type CoordinatorNode } from '../../domain/ports/lightning.js';
import type { EscrowReactionContext, PayoutInvoiceTerms, PayoutRequest } from '../../domain/reactions/escrow.js';
import { assignmentReservationId, budgetRelease, payoutActions, payoutLines, type PayoutInputs } from '../../domain/reactions/payouts.js';
import { runDecider, runStreamId, type EscrowPolicy, type RunCommand } from '../../domain/run/index.js';
import { handleCommand, loadAggregate } from '../commands/command-handler.js';
import type { LedgerStore } from '../event-store/ledger-store.js';
import { ContributorInvoiceCache, invoiceDigest, type ContributorInvoiceSource, type InvoiceRefusal } from './contributor-invoice-cache.js';
import type { PreimageDeriver } from './preimages.js';
import { loadPayoutInputs } from './payout-inputs.js';
import { MIN_INVOICE_REMAINING_MS, verifyEscrowInvoice } from './verify-escrow-invoice.js';
import { onContributorSide } from './contributor-side.js';

export type SettlerDeps = Readonly<{
  store: LedgerStore;
  node: CoordinatorNode;
  invoices: ContributorInvoiceSource;
  preimages: PreimageDeriver;
  nowMs: () => number;
  newEventId: () => string;
  network: string;
  /** A command the deciders refused: a race the log already settled, or a refusal worth an operator's look. */
  onRefused?: (command: Command, error: DomainError) => void;
  /** Pending assignments settled per sweep (MAX_SETTLED_PER_SWEEP unless a test wants rotation visible). */
  sweepBatchSize?: number;
  /** Where an assignment set aside for one pass is reported. */
  log?: (line: string) => void;
}>;

/** How soon an assignment waiting for a contributor's invoice is looked at again. */
export const INVOICE_RECHECK_MS = 5_000;
/** How soon an assignment whose money moves by events alone is looked at again, in case an event's reaction was lost to a crash. */
export const IDLE_RECHECK_MS = 60_000;
/** How soon a release the run refused (an operator's problem) is tried again. */
export const REFUSED_RELEASE_RECHECK_MS = 3_600_000;
/** How long a reservation may stand without its assignment before it is released. */
export const ORPHAN_RESERVATION_MS = 10 * 60_000;
/** Pending assignments settled per sweep: bounds one pass, and rescheduling rotates the rest to the front. */
export const MAX_SETTLED_PER_SWEEP = 200;

type MoneyView = PayoutInputs & Readonly<{ assignmentId: string }>;
type Progress = { appended: number; waiting: boolean };
const AWAITED = Object.freeze({ paymentHash: '0'.repeat(64), bolt11: 'awaited', expiresAtMs: 0 });

export class AssignmentSettler {
  private readonly cache: ContributorInvoiceCache;
  /** Escrow policies are fixed when a run opens, so they are read once per run. */
  private readonly policies = new Map<string, EscrowPolicy>();

  constructor(private readonly deps: SettlerDeps) {
    this.cache = new ContributorInvoiceCache(deps.store.db as Kysely<any>, deps.store, deps.invoices, deps.node, deps.network, (id) => deps.preimages.escrow(id).paymentHash);
  }

  private get db(): Kysely<any> {
    return this.deps.store.db as Kysely<any>;
  }

  /** Settles the pending assignments whose next check is due, oldest first; returns how many commands were appended. */
  async sweep(): Promise<number> {
    const rows = await sql<{ assignment_id: string }>`SELECT assignment_id FROM lightning_pending_assignments
      WHERE next_check_at_ms <= ${String(this.deps.nowMs())} ORDER BY next_check_at_ms, assignment_id LIMIT ${this.deps.sweepBatchSize ?? MAX_SETTLED_PER_SWEEP}`.execute(this.db);
    let appended = 0;
    for (const row of rows.rows) appended += await this.settleIsolated(row.assignment_id);
    return appended;
  }

  /**
   * Settles one assignment; its trouble stays its own. The node or the database being down is
   * everyone's and ends the pass; anything else is reported and the assignment is looked at
   * again after INVOICE_RECHECK_MS, behind every other due one.
   */
  async settleIsolated(assignmentId: string): Promise<number> {
    try {
      return await this.settle(assignmentId);
    } catch (error) {
      if (error instanceof InvariantViolation || !(error instanceof LightningError || error instanceof DomainError)) throw error;
      if (error instanceof LightningError && error.code === 'NODE_UNAVAILABLE') throw error;
      this.deps.log?.(`escrow: assignment ${assignmentId} set aside for this pass: ${error.code}: ${error.message}`);
      await sql`INSERT INTO lightning_pending_assignments (assignment_id, next_check_at_ms) VALUES (${assignmentId}, ${String(this.deps.nowMs() + INVOICE_RECHECK_MS)})
        ON CONFLICT (assignment_id) DO UPDATE SET next_check_at_ms = excluded.next_check_at_ms`.execute(this.db);
      return 0;
    }
  }

  /**
   * Brings one assignment's money as far as it can go now, from its latest state. Level-
   * triggered: every step is keyed by what it does, so settling twice issues nothing new.
   */
  async settle(assignmentId: string): Promise<number> {
    const nowMs = this.deps.nowMs();
    let view = await this.view(assignmentId);
    const terms = view.assignment.terms;
    if (terms === null) return this.settleOrphanReservation(assignmentId, nowMs);
    const progress: Progress = { appended: 0, waiting: false };
    if (view.assignment.status === 'assigned' && nowMs > terms.deadlineMs) {
      progress.appended += await this.assignmentCommand('ExpireAssignment', { assignmentId }, `expire:${assignmentId}`);
    }
    // The window's close is an event on the assignment's own stream, so a last-moment dispute and it are ordered by the log.
    if (view.assignment.status === 'rejected' && view.assignment.rejection !== null && nowMs > view.assignment.rejection.disputeDeadlineMs) {
      progress.appended += await this.assignmentCommand('FinalizeRejection', { assignmentId }, `finalize:${assignmentId}`);
    }
    if (progress.appended > 0) view = await this.view(assignmentId);
    await this.openEscrow(view, progress);
    await this.payouts(await this.view(assignmentId), progress);
    view = await this.view(assignmentId);
    const release = budgetRelease(view, nowMs);
    if (release !== null) return progress.appended + (await this.release(assignmentId, terms.runId, release.spentMsat));
    await this.reschedule(view, progress.waiting, nowMs);
    return progress.appended;
  }

  /**
   * Releases a final assignment's reservation. No reservation (work assigned outside the API, in
   * tests) is nothing to release. Any other refusal (spent above what was reserved: assignments
   * from before the bound existed) is an operator's problem: it is reported and the assignment
   * stays pending, checked again hourly, instead of vanishing from the schedule.
   */
  private async release(assignmentId: string, runId: string, spentMsat: bigint): Promise<number> {
    const data = { runId, reservationId: assignmentReservationId(assignmentId), spentMsat };
    const command = { type: 'ReleaseBudget', data, metadata: { nowMs: this.deps.nowMs() } } as RunCommand;
    try {
      const appended = await this.append(runDecider, runStreamId(runId), command, `release:${assignmentId}`);
      return appended + (await this.forget(assignmentId));
    } catch (error) {
      if (!(error instanceof DomainError)) throw error;
      if (error.code === 'RESERVATION_NOT_FOUND') return this.forget(assignmentId);
      this.deps.onRefused?.(command, error);
      await sql`UPDATE lightning_pending_assignments SET next_check_at_ms = ${String(this.deps.nowMs() + REFUSED_RELEASE_RECHECK_MS)} WHERE assignment_id = ${assignmentId}`.execute(this.db);
      return 0;
    }
  }

  /** Notes a reservation as soon as it is logged, so one that never gets its assignment can be found and released. */
  async trackReservation(assignmentId: string, runId: string): Promise<void> {
    await sql`INSERT INTO lightning_pending_assignments (assignment_id, next_check_at_ms, run_id, first_seen_at_ms)
      VALUES (${assignmentId}, 0, ${runId}, ${String(this.deps.nowMs())})
      ON CONFLICT (assignment_id) DO UPDATE SET run_id = excluded.run_id, first_seen_at_ms = COALESCE(lightning_pending_assignments.first_seen_at_ms, excluded.first_seen_at_ms)`.execute(this.db);
  }

  /**
   * A reservation whose assignment never came (a store without atomic appends, and a crash between
   * the two) is released once it has stood alone ORPHAN_RESERVATION_MS by this process's own clock.
   * The API refuses to assign work under a released reservation, so nothing is ever paid from it.
   */
  private async settleOrphanReservation(assignmentId: string, nowMs: number): Promise<number> {
    const rows = await sql<{ run_id: string | null; first_seen_at_ms: string | null }>`SELECT run_id, first_seen_at_ms FROM lightning_pending_assignments WHERE assignment_id = ${assignmentId}`.execute(this.db);
    const row = rows.rows[0];
    if (row?.run_id == null || row.first_seen_at_ms == null) return this.forget(assignmentId);
    const run = (await loadAggregate(this.deps.store, runDecider, runStreamId(row.run_id))).state;
    const reservationId = assignmentReservationId(assignmentId);
    if (run.status === 'none' || !run.openReservations.has(reservationId)) return this.forget(assignmentId);
    const dueAtMs = Number(row.first_seen_at_ms) + ORPHAN_RESERVATION_MS;
    if (nowMs < dueAtMs) {
      await sql`UPDATE lightning_pending_assignments SET next_check_at_ms = ${String(dueAtMs)} WHERE assignment_id = ${assignmentId}`.execute(this.db);
      return 0;
    }
    const data = { runId: row.run_id, reservationId, spentMsat: 0n };
    const appended = await this.command(runDecider, runStreamId(row.run_id), { type: 'ReleaseBudget', data, metadata: { nowMs } } as RunCommand, `orphan-release:${assignmentId}`);
    return appended + (await this.forget(assignmentId));
  }

  private async view(assignmentId: string): Promise<MoneyView> {
    const assignment = (await loadAggregate(this.deps.store, assignmentDecider, assignmentStreamId(assignmentId))).state;
    return { assignmentId, ...(await loadPayoutInputs(this.deps.store, this.db, assignment, this.deps.preimages.escrow(assignmentId).paymentHash)) };
  }

  /** While work is under way and no escrow exists, asks for the contributor's hold invoice, checks it and logs it. */
  private async openEscrow(view: MoneyView, progress: Progress): Promise<void> {
    const { assignment } = view;
    const terms = assignment.terms!;
    if (view.escrow !== null || !['assigned', 'submitted'].includes(assignment.status)) return;
    if ((assignment.invoiceRefusals.escrow?.count ?? 0) >= MAX_INVOICE_REFUSALS) return;
    const policy = await this.policy(terms.runId);
    const nodeKey = await this.nodeKey(terms.contributorId);
    if (policy === null || nodeKey === null) return;
    const { paymentHash } = this.deps.preimages.escrow(terms.assignmentId);
    const request = { assignmentId: terms.assignmentId, contributorId: terms.contributorId, paymentHash, amountMsat: terms.baseRewardMsat, expirySec: policy.invoiceExpirySec, cltvDelta: policy.cltvDeltaBlocks };
    const bolt11 = await onContributorSide(terms.contributorId, () => this.deps.invoices.holdInvoice(request));
    if (bolt11 === null) {
      progress.waiting = true;
      return;
    }
    const nowMs = this.deps.nowMs();
    const checked = await this.checkHoldInvoice(bolt11, { paymentHash, amountMsat: terms.baseRewardMsat, destination: nodeKey, nowMs, minRemainingMs: MIN_INVOICE_REMAINING_MS, maxCltvDelta: policy.cltvDeltaBlocks, network: this.deps.network });
    if ('code' in checked) {
      progress.appended += await this.refuse(view, 'escrow', 0, checked);
      progress.waiting = true;
      return;
    }
    const height = await this.deps.node.blockHeight();
    const data = { paymentHash, kind: 'escrow' as const, assignmentId: terms.assignmentId, runId: terms.runId, contributorId: terms.contributorId, amountMsat: terms.baseRewardMsat, bolt11, expiresAtMs: checked.expiresAtMs, cltvExpiryHeight: height + checked.cltvDelta, maxFeeMsat: terms.maxFeeMsat };
    const outcome = await this.invoiceCommand({ type: 'OpenInvoice', data, metadata: { nowMs } }, `escrow-open:${terms.assignmentId}`);
    // Another process opened the same invoice first (its block height differed): that is this step done, not a bad invoice.
    if (outcome instanceof DomainError && (await this.escrowInvoice(paymentHash)) === bolt11) return;
    if (outcome instanceof DomainError) {
      progress.appended += await this.refuse(view, 'escrow', 0, { code: outcome.code, message: outcome.message, bolt11 });
      progress.waiting = true;
      return;
    }
    progress.appended += outcome;
  }

  private async escrowInvoice(paymentHash: string): Promise<string | null> {
    return (await loadAggregate(this.deps.store, invoiceDecider, invoiceStreamId(paymentHash))).state.terms?.bolt11 ?? null;
  }

  private async checkHoldInvoice(bolt11: string, expected: Parameters<typeof verifyEscrowInvoice>[1]): Promise<{ expiresAtMs: number; cltvDelta: number } | InvoiceRefusal> {
    try {
      const decoded = await this.deps.node.decodeInvoice(bolt11);
      verifyEscrowInvoice(decoded, expected);
      return decoded;
    } catch (error) {
      if (error instanceof LightningError && !error.retryable) return { code: error.code, message: error.message, bolt11 };
      throw error;
    }
  }

  /**
   * Opens an invoice for every payout that needs one and has it, abandons payouts whose attempts
   * ran out, and abandons payouts left unclaimed past the claim window. The pure rules want
   * invoices synchronously: run once to learn which attempts they need, fetch those, run again.
   */
  private async payouts(view: MoneyView, progress: Progress): Promise<void> {
    const terms = view.assignment.terms!;
    const wanted: PayoutRequest[] = [];
    payoutActions(view, this.context(() => AWAITED, wanted));
    const known = new Map<string, PayoutInvoiceTerms>();
    const nodeKey = wanted.length > 0 ? await this.nodeKey(terms.contributorId) : null;
    for (const request of wanted) {
      if (nodeKey === null) continue;
      const fetched = await this.cache.payout(request, nodeKey, this.deps.nowMs());
      if (fetched.status === 'ready') known.set(attemptKey(request), fetched.terms);
      if (fetched.status === 'refused') progress.appended += await this.refuse(view, request.kind, request.attempt, fetched.refusal);
    }
    // One payoutInvoice call per OpenInvoice, in order: each command is paired with the request it answers.
    const asked: PayoutRequest[] = [];
    const actions = payoutActions(view, this.context((r) => known.get(attemptKey(r)) ?? AWAITED, asked));
    for (const [index, command] of actions.open.entries()) {
      const request = asked[index]!;
      invariant(command.type === 'OpenInvoice' && command.data.kind === request.kind, `payout command ${index} does not answer its request`);
      if (command.data.paymentHash === AWAITED.paymentHash) {
        progress.waiting = true;
        continue;
      }
      const outcome = await this.invoiceCommand(command, `payout-open:${attemptKey(request)}`);
      if (outcome instanceof DomainError) {
        // The log refused it (a payment hash used elsewhere, say): set it aside like any bad invoice.
        await this.cache.forget(request, command.data.bolt11);
        progress.appended += await this.refuse(view, request.kind, request.attempt, { code: outcome.code, message: outcome.message, bolt11: command.data.bolt11 });
        progress.waiting = true;
      } else progress.appended += outcome;
    }
    for (const kind of actions.exhausted) progress.appended += await this.abandon(view, kind, 'PAYOUT_ATTEMPTS_EXHAUSTED', 'every invoice tried for this payout failed or expired unpaid');
    // Read again: what was just opened above is no longer waiting, and must not be abandoned as unclaimed.
    if (progress.waiting) progress.appended += await this.abandonUnclaimed(await this.view(view.assignmentId));
  }

  /** A payout that has waited for the contributor's invoice longer than the claim window is given up, so its budget returns. */
  private async abandonUnclaimed(view: MoneyView): Promise<number> {
    const since = await this.invoiceNeededSince(view.assignmentId);
    const nowMs = this.deps.nowMs();
    let appended = 0;
    for (const line of payoutLines(view, nowMs)) {
      if (line.state !== 'invoice-needed' || line.kind === 'escrow') continue;
      const waitedSince = since[line.kind];
      if (waitedSince === null || nowMs - waitedSince <= PAYOUT_CLAIM_WINDOW_MS) continue;
      appended += await this.abandon(view, line.kind, 'PAYOUT_UNCLAIMED', `no usable ${line.kind} invoice was posted within ${PAYOUT_CLAIM_WINDOW_MS} ms`);
    }
    return appended;
  }

  private abandon(view: MoneyView, kind: PayoutKind, code: string, message: string): Promise<number> {
    return this.assignmentCommand('AbandonPayout', { assignmentId: view.assignmentId, kind, code, message }, `payout-abandon:${view.assignmentId}:${kind}`);
  }

  /** Records why a contributor's invoice was set aside, where the contributor sees it, and drops it so a fresh one can be posted. */
  private async refuse(view: MoneyView, kind: 'escrow' | PayoutKind, attempt: number, refusal: InvoiceRefusal): Promise<number> {
    await onContributorSide(view.assignment.terms?.contributorId ?? view.assignmentId, () => this.deps.invoices.discardInvoice({ assignmentId: view.assignmentId, kind, attempt, bolt11: refusal.bolt11 }));
    const data = { assignmentId: view.assignmentId, kind, code: refusal.code.slice(0, 64), message: refusal.message.slice(0, 1024) };
    const appended = await this.assignmentCommand('RecordInvoiceRefused', data, `invoice-refused:${view.assignmentId}:${kind}:${invoiceDigest(refusal.bolt11)}`);
    if (kind !== 'escrow' && (view.assignment.invoiceRefusals[kind]?.count ?? 0) + 1 >= MAX_INVOICE_REFUSALS) {
      return appended + (await this.abandon(view, kind, 'PAYOUT_INVOICES_REFUSED', `${MAX_INVOICE_REFUSALS} ${kind} invoices were refused`));
    }
    return appended;
  }

  private context(lookup: EscrowReactionContext['payoutInvoice'], wanted: PayoutRequest[]): EscrowReactionContext {
    return {
      nowMs: this.deps.nowMs(),
      escrowPreimageHex: (assignmentId) => this.deps.preimages.escrow(assignmentId).preimageHex,
      payoutInvoice: (request) => {
        wanted.push(request);
        return lookup(request);
      },
    };
  }

  /** The next time this assignment needs a look: its deadline, its dispute window's end, an awaited invoice, or an idle recheck. */
  private async reschedule(view: MoneyView, waiting: boolean, nowMs: number): Promise<void> {
    const { assignment } = view;
    const times = [nowMs + (waiting ? INVOICE_RECHECK_MS : IDLE_RECHECK_MS)];
    if (assignment.status === 'assigned' && assignment.terms) times.push(assignment.terms.deadlineMs + 1);
    if (assignment.status === 'rejected' && assignment.rejection) times.push(assignment.rejection.disputeDeadlineMs + 1);
    // Each payout kind's claim window runs from when that kind first needed an invoice, and restarts when it needs one again.
    const needing = new Set(payoutLines(view, nowMs).filter((line) => line.state === 'invoice-needed').map((line) => line.kind));
    const previous = await this.invoiceNeededSince(view.assignmentId);
    const since = {
      bonus: needing.has('bonus') ? (previous.bonus ?? nowMs) : null,
      compensation: needing.has('compensation') ? (previous.compensation ?? nowMs) : null,
    };
    for (const value of [since.bonus, since.compensation]) if (value !== null) times.push(value + PAYOUT_CLAIM_WINDOW_MS + 1);
    const next = Math.max(nowMs + 1, Math.min(...times));
    const text = (value: number | null) => (value === null ? null : String(value));
    await sql`INSERT INTO lightning_pending_assignments (assignment_id, next_check_at_ms, bonus_needed_since_ms, compensation_needed_since_ms)
      VALUES (${view.assignmentId}, ${String(next)}, ${text(since.bonus)}, ${text(since.compensation)})
      ON CONFLICT (assignment_id) DO UPDATE SET next_check_at_ms = excluded.next_check_at_ms,
        bonus_needed_since_ms = excluded.bonus_needed_since_ms, compensation_needed_since_ms = excluded.compensation_needed_since_ms`.execute(this.db);
  }

  private async invoiceNeededSince(assignmentId: string): Promise<Record<PayoutKind, number | null>> {
    const rows = await sql<{ bonus: string | null; compensation: string | null }>`SELECT bonus_needed_since_ms AS bonus, compensation_needed_since_ms AS compensation
      FROM lightning_pending_assignments WHERE assignment_id = ${assignmentId}`.execute(this.db);
    const row = rows.rows[0];
    const number = (value: string | null | undefined) => (value === null || value === undefined ? null : Number(value));
    return { bonus: number(row?.bonus), compensation: number(row?.compensation) };
  }

  private async forget(assignmentId: string): Promise<number> {
    await sql`DELETE FROM lightning_pending_assignments WHERE assignment_id = ${assignmentId}`.execute(this.db);
    return 0;
  }

  private async policy(runId: string): Promise<EscrowPolicy | null> {
    const known = this.policies.get(runId);
    if (known) return known;
    const run = (await loadAggregate(this.deps.store, runDecider, runStreamId(runId))).state;
    if (run.status === 'none') return null;
    this.policies.set(runId, run.escrowPolicy);
    return run.escrowPolicy;
  }

  private async nodeKey(contributorId: string): Promise<string | null> {
    const contributor = (await loadAggregate(this.deps.store, contributorDecider, contributorStreamId(contributorId))).state;
    return contributor.status === 'none' ? null : contributor.lightningNodePubkeyHex;
  }

  private assignmentCommand<T extends AssignmentCommand['type']>(type: T, data: Extract<AssignmentCommand, { type: T }>['data'], key: string): Promise<number> {
    const command = { type, data, metadata: { nowMs: this.deps.nowMs() } } as AssignmentCommand;
    return this.command(assignmentDecider, assignmentStreamId(data.assignmentId), command, key);
  }

  /** Returns the refusal instead of counting it: an invoice the log refuses must be set aside, not retried. */
  private async invoiceCommand(command: InvoiceCommand, key: string): Promise<number | DomainError> {
    try {
      return await this.append(invoiceDecider, invoiceStreamId(command.data.paymentHash), command, key);
    } catch (error) {
      if (error instanceof DomainError) return error;
      throw error;
    }
  }

  private async command<C extends Command, E extends Event, S>(decider: Decider<C, E, S>, streamId: string, command: C, key: string): Promise<number> {
    try {
      return await this.append(decider, streamId, command, key);
    } catch (error) {
      if (!(error instanceof DomainError)) throw error;
      this.deps.onRefused?.(command, error);
      return 0;
    }
  }

  /** Appends under an intent key; another process that already did the same thing (with its own clock or block height) counts as done. */
  private async append<C extends Command, E extends Event, S>(decider: Decider<C, E, S>, streamId: string, command: C, key: string): Promise<number> {
    try {
      const outcome = await handleCommand(this.deps.store, decider, streamId, command, { newEventId: this.deps.newEventId, idempotencyKey: key });
      return outcome.status === 'appended' ? 1 : 0;
    } catch (error) {
      if (error instanceof IdempotencyKeyReusedError) return 0;
      throw error;
    }
  }
}

function attemptKey(request: Pick<PayoutRequest, 'assignmentId' | 'kind' | 'attempt'>): string {
  return `${request.assignmentId}:${request.kind}:${request.attempt}`;
}

export type { AssignmentState };
