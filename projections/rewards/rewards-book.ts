// The rewards fold in memory: per-contributor and per-run money moved by each event, with the invariants asserted where they change.

import type { AssignmentEvent } from '../../domain/assignment/assignment.state.js';
import { invariant } from '../../domain/errors.js';
import type { DomainEvent } from '../../domain/events.js';
import type { InvoiceEvent, InvoiceKind, InvoiceStatus } from '../../domain/invoice/invoice.state.js';
import type { RunEvent } from '../../domain/run/run.state.js';

export type ContributorRewards = {
  contributorId: string;
  earnedMsat: bigint;
  pendingEscrowMsat: bigint;
  forfeitedMsat: bigint;
  disputedMsat: bigint;
  overturnedMsat: bigint;
  bonusMsat: bigint;
  assignedCount: number;
  acceptedCount: number;
  rejectedCount: number;
  expiredCount: number;
};

export type RunBudget = {
  runId: string;
  fundedCustomerMsat: bigint;
  fundedSubsidyMsat: bigint;
  reservedMsat: bigint;
  escrowedMsat: bigint;
  paidMsat: bigint;
  feesMsat: bigint;
  remainingMsat: bigint;
};

export type Verdict = 'accepted' | 'rejected' | 'overturned' | 'upheld' | 'expired';

export type AssignmentRecord = {
  assignmentId: string;
  runId: string;
  contributorId: string;
  baseRewardMsat: bigint;
  verdict: Verdict | null;
  basePaid: boolean;
};

export type InvoiceRecord = {
  paymentHash: string;
  kind: InvoiceKind;
  assignmentId: string;
  runId: string;
  contributorId: string;
  amountMsat: bigint;
  status: InvoiceStatus;
};

/**
 * What is still the run's to spend: everything funded (customer + subsidy), less what was
 * paid out (escrows settled, bonuses and compensations sent), less routing fees, less what
 * is locked in held escrow HTLCs. Open reservations are earmarks, not movements of money,
 * so they are not subtracted (funded - reserved - spent is the run aggregate's own
 * "available" figure, a different question).
 */
export function remainingMsat(run: Omit<RunBudget, 'remainingMsat'>): bigint {
  return run.fundedCustomerMsat + run.fundedSubsidyMsat - run.paidMsat - run.feesMsat - run.escrowedMsat;
}

export function emptyContributor(contributorId: string): ContributorRewards {
  return {
    contributorId,
    earnedMsat: 0n,
    pendingEscrowMsat: 0n,
    forfeitedMsat: 0n,
    disputedMsat: 0n,
    overturnedMsat: 0n,
    bonusMsat: 0n,
    assignedCount: 0,
    acceptedCount: 0,
    rejectedCount: 0,
    expiredCount: 0,
  };
}

export function emptyRun(runId: string): RunBudget {
  return { runId, fundedCustomerMsat: 0n, fundedSubsidyMsat: 0n, reservedMsat: 0n, escrowedMsat: 0n, paidMsat: 0n, feesMsat: 0n, remainingMsat: 0n };
}

/** A batch's working set: the rows the batch can touch, loaded beforehand; `touched` says which to write back. */
export class RewardsBook {
  readonly touched = { contributors: new Set<string>(), runs: new Set<string>(), assignments: new Set<string>(), invoices: new Set<string>() };

  constructor(
    readonly contributors: Map<string, ContributorRewards>,
    readonly runs: Map<string, RunBudget>,
    readonly assignments: Map<string, AssignmentRecord>,
    readonly invoices: Map<string, InvoiceRecord>,
  ) {}

  /** Brings every touched run's derived remaining_msat up to date; call once after the batch. */
  finish(): void {
    for (const runId of this.touched.runs) {
      const run = this.run(runId);
      run.remainingMsat = remainingMsat(run);
    }
  }

  apply(event: DomainEvent): void {
    switch (event.type) {
      case 'ContributorRegistered':
        this.contributor(event.data.contributorId);
        return;
      case 'ContributorSuspended':
        return;
      case 'RunOpened':
      case 'RunFunded':
      case 'BudgetReserved':
      case 'BudgetReleased':
      case 'CheckpointPublished':
      case 'RunClosed':
        return this.applyRun(event);
      case 'InvoiceOpened':
      case 'InvoiceHeld':
      case 'EscrowReleaseRequested':
      case 'EscrowCancelRequested':
      case 'InvoiceSettled':
      case 'InvoiceCanceled':
      case 'InvoiceExpired':
      case 'PaymentSent':
      case 'PaymentFailed':
      case 'PaymentAbandoned':
        return this.applyInvoice(event);
      default:
        return this.applyAssignment(event);
    }
  }

  private applyRun(event: RunEvent): void {
    const run = this.run(event.data.runId);
    switch (event.type) {
      case 'RunFunded':
        if (event.data.source === 'customer') run.fundedCustomerMsat += event.data.amountMsat;
        else run.fundedSubsidyMsat += event.data.amountMsat;
        break;
      case 'BudgetReserved':
        run.reservedMsat += event.data.amountMsat;
        break;
      case 'BudgetReleased':
        run.reservedMsat -= event.data.reservedMsat;
        invariant(run.reservedMsat >= 0n, `rewards: run ${run.runId} released more than it reserved`);
        break;
      default:
        break;
    }
  }

  private applyAssignment(event: AssignmentEvent): void {
    if (event.type === 'WorkAssigned') return this.assigned(event.data);
    const assignment = this.assignment(event.data.assignmentId);
    const contributor = this.contributor(assignment.contributorId);
    const base = assignment.baseRewardMsat;
    switch (event.type) {
      case 'SubmissionAccepted':
        contributor.acceptedCount += 1;
        return this.judge(assignment, 'accepted');
      case 'SubmissionRejected':
        contributor.rejectedCount += 1;
        contributor.forfeitedMsat += base;
        return this.judge(assignment, 'rejected');
      case 'RejectionDisputed':
        invariant(assignment.verdict === 'rejected', `rewards: assignment ${assignment.assignmentId} disputed without a rejection`);
        contributor.disputedMsat += base;
        return;
      case 'DisputeResolved':
        return this.resolved(assignment, contributor, event.data.resolution);
      case 'AssignmentExpired':
        contributor.expiredCount += 1;
        return this.judge(assignment, 'expired');
      default:
        return;
    }
  }

  private assigned(data: Extract<AssignmentEvent, { type: 'WorkAssigned' }>['data']): void {
    invariant(!this.assignments.has(data.assignmentId), `rewards: assignment ${data.assignmentId} assigned twice`);
    const { assignmentId, runId, contributorId, baseRewardMsat } = data;
    this.assignments.set(assignmentId, { assignmentId, runId, contributorId, baseRewardMsat, verdict: null, basePaid: false });
    this.touched.assignments.add(assignmentId);
    this.contributor(contributorId).assignedCount += 1;
    this.run(runId);
  }

  private judge(assignment: AssignmentRecord, verdict: Verdict): void {
    const allowed = verdict === 'overturned' || verdict === 'upheld' ? assignment.verdict === 'rejected' : assignment.verdict === null;
    invariant(allowed, `rewards: assignment ${assignment.assignmentId} cannot go from ${String(assignment.verdict)} to ${verdict}`);
    assignment.verdict = verdict;
  }

  /** A resolution ends the dispute; an overturn moves the base reward from forfeited to overturned. */
  private resolved(assignment: AssignmentRecord, contributor: ContributorRewards, resolution: 'upheld' | 'overturned'): void {
    const base = assignment.baseRewardMsat;
    contributor.disputedMsat -= base;
    invariant(contributor.disputedMsat >= 0n, `rewards: contributor ${contributor.contributorId} has negative disputed msat`);
    if (resolution === 'overturned') {
      contributor.forfeitedMsat -= base;
      contributor.overturnedMsat += base;
      invariant(contributor.forfeitedMsat >= 0n, `rewards: contributor ${contributor.contributorId} has negative forfeited msat`);
    }
    this.judge(assignment, resolution);
  }

  private applyInvoice(event: InvoiceEvent): void {
    const data = event.data;
    if (event.type === 'InvoiceOpened') {
      invariant(!this.invoices.has(data.paymentHash), `rewards: payment hash ${data.paymentHash} used twice`);
      const { paymentHash, kind, assignmentId, runId, contributorId, amountMsat } = event.data;
      this.invoices.set(paymentHash, { paymentHash, kind, assignmentId, runId, contributorId, amountMsat, status: 'open' });
      this.touched.invoices.add(paymentHash);
      this.contributor(contributorId);
      this.run(runId);
      return;
    }
    const invoice = this.invoice(data.paymentHash);
    invariant(invoice.amountMsat === data.amountMsat && invoice.kind === data.kind, `rewards: ${event.type} disagrees with invoice ${invoice.paymentHash}`);
    switch (event.type) {
      case 'InvoiceHeld':
        return this.held(invoice);
      case 'InvoiceSettled':
        return this.settled(invoice, event.data.feeMsat ?? 0n);
      case 'InvoiceCanceled':
      case 'InvoiceExpired':
        invariant(event.data.wasHeld === (invoice.status === 'held'), `rewards: ${event.type} misreports the HTLC of ${invoice.paymentHash}`);
        return this.voided(invoice, event.type === 'InvoiceCanceled' ? 'canceled' : 'expired');
      case 'PaymentSent':
        return this.sent(invoice, event.data.feeMsat);
      case 'EscrowReleaseRequested':
      case 'EscrowCancelRequested':
        // Intents move no money: the held HTLC stays pending until its outcome is logged.
        return;
      case 'PaymentFailed':
        // Each failed attempt is logged; a retry may fail again.
        invariant(invoice.status === 'open' || invoice.status === 'failed', `rewards: payout ${invoice.paymentHash} failed after ${invoice.status}`);
        invoice.status = 'failed';
        return;
      case 'PaymentAbandoned':
        // Terminal for this hash: nothing was paid through it; the payout may ask for another invoice.
        invariant(invoice.status === 'open' || invoice.status === 'failed', `rewards: payout ${invoice.paymentHash} abandoned after ${invoice.status}`);
        invoice.status = 'abandoned';
        return;
      default: {
        const unknown: never = event;
        invariant(false, `rewards: unknown invoice event ${(unknown as InvoiceEvent).type}`);
      }
    }
  }

  /** The pending transfer of the two-phase escrow: locked for the contributor, out of the run's free money. */
  private held(invoice: InvoiceRecord): void {
    invariant(invoice.kind === 'escrow' && invoice.status === 'open', `rewards: invoice ${invoice.paymentHash} held from ${invoice.status}`);
    invoice.status = 'held';
    this.contributor(invoice.contributorId).pendingEscrowMsat += invoice.amountMsat;
    this.run(invoice.runId).escrowedMsat += invoice.amountMsat;
  }

  /** Posting: pending becomes earned, escrowed becomes paid. */
  private settled(invoice: InvoiceRecord, feeMsat: bigint): void {
    invariant(invoice.kind === 'escrow' && invoice.status === 'held', `rewards: escrow ${invoice.paymentHash} settled from ${invoice.status}`);
    invariant(feeMsat >= 0n, `rewards: escrow ${invoice.paymentHash} settled with a negative fee`);
    this.release(invoice);
    invoice.status = 'settled';
    this.contributor(invoice.contributorId).earnedMsat += invoice.amountMsat;
    const run = this.run(invoice.runId);
    run.paidMsat += invoice.amountMsat;
    run.feesMsat += feeMsat;
    this.payBase(invoice);
  }

  /** Voiding: a held HTLC returns to the run; an escrow never held moved nothing. */
  private voided(invoice: InvoiceRecord, status: 'canceled' | 'expired'): void {
    invariant(invoice.kind === 'escrow' && (invoice.status === 'open' || invoice.status === 'held'), `rewards: escrow ${invoice.paymentHash} ${status} from ${invoice.status}`);
    if (invoice.status === 'held') this.release(invoice);
    invoice.status = status;
  }

  private release(invoice: InvoiceRecord): void {
    const contributor = this.contributor(invoice.contributorId);
    const run = this.run(invoice.runId);
    contributor.pendingEscrowMsat -= invoice.amountMsat;
    run.escrowedMsat -= invoice.amountMsat;
    invariant(contributor.pendingEscrowMsat >= 0n, `rewards: contributor ${contributor.contributorId} has negative pending escrow`);
    invariant(run.escrowedMsat >= 0n, `rewards: run ${run.runId} has negative escrowed msat`);
  }

  private sent(invoice: InvoiceRecord, feeMsat: bigint): void {
    invariant(invoice.kind !== 'escrow' && (invoice.status === 'open' || invoice.status === 'failed'), `rewards: payout ${invoice.paymentHash} sent from ${invoice.status}`);
    invariant(feeMsat >= 0n, `rewards: payout ${invoice.paymentHash} with a negative fee`);
    invoice.status = 'sent';
    const contributor = this.contributor(invoice.contributorId);
    const run = this.run(invoice.runId);
    run.paidMsat += invoice.amountMsat;
    run.feesMsat += feeMsat;
    if (invoice.kind === 'bonus') {
      contributor.bonusMsat += invoice.amountMsat;
      return;
    }
    contributor.earnedMsat += invoice.amountMsat;
    this.payBase(invoice);
  }

  /** The base reward goes out once, by escrow or compensation, and only after a verdict that pays. */
  private payBase(invoice: InvoiceRecord): void {
    const assignment = this.assignment(invoice.assignmentId);
    invariant(!assignment.basePaid, `rewards: assignment ${assignment.assignmentId} paid twice`);
    invariant(
      assignment.verdict === 'accepted' || assignment.verdict === 'overturned',
      `rewards: assignment ${assignment.assignmentId} paid with verdict ${String(assignment.verdict)}`,
    );
    assignment.basePaid = true;
  }

  private contributor(contributorId: string): ContributorRewards {
    this.touched.contributors.add(contributorId);
    let row = this.contributors.get(contributorId);
    if (row === undefined) this.contributors.set(contributorId, (row = emptyContributor(contributorId)));
    return row;
  }

  private run(runId: string): RunBudget {
    this.touched.runs.add(runId);
    let row = this.runs.get(runId);
    if (row === undefined) this.runs.set(runId, (row = emptyRun(runId)));
    return row;
  }

  private assignment(assignmentId: string): AssignmentRecord {
    const row = this.assignments.get(assignmentId);
    invariant(row !== undefined, `rewards: event for assignment ${assignmentId}, which was never assigned`);
    this.touched.assignments.add(assignmentId);
    return row;
  }

  private invoice(paymentHash: string): InvoiceRecord {
    const row = this.invoices.get(paymentHash);
    invariant(row !== undefined, `rewards: event for payment hash ${paymentHash}, which was never opened`);
    this.touched.invoices.add(paymentHash);
    return row;
  }
}
