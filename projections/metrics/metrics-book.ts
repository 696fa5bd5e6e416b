// The metrics fold in memory: each event's additive facts per run and UTC hour, the run funding mix, and settlement times.

import { invariant } from '../../domain/errors.js';
import type { DomainEvent } from '../../domain/events.js';

export const HOUR_MS = 3_600_000;

export const FACT_NAMES = [
  'externalRevenueMsat',
  'subsidyFundingMsat',
  'rewardsPaidMsat',
  'rewardsPaidFromSubsidyMsat',
  'feesMsat',
  'acceptedCount',
  'rejectedCount',
  'disputedCount',
  'resolvedCount',
  'overturnedCount',
  'replayComputeMs',
  'claimedComputeMs',
  'escrowLockedMsat',
  'escrowReleasedMsat',
] as const;
export type FactName = (typeof FACT_NAMES)[number];
export type HourlyFacts = Record<FactName, bigint>;

export type RunFunding = { runId: string; customerMsat: bigint; subsidyMsat: bigint };
export type Settlement = { assignmentId: string; runId: string; assignedAtMs: number | null; settledAtMs: number | null };

export function hourStartMs(atMs: number): number {
  invariant(Number.isSafeInteger(atMs) && atMs >= 0, `metrics: event time ${atMs} is not whole ms since the epoch`);
  return atMs - (atMs % HOUR_MS);
}

export function zeroFacts(): HourlyFacts {
  return Object.fromEntries(FACT_NAMES.map((name) => [name, 0n])) as HourlyFacts;
}

/**
 * The part of a payment counted as paid out of subsidy: pro rata to the run's cumulative
 * funding mix at the moment of payment (every RunFunded before it in log order),
 * amount * subsidyFunded / totalFunded, rounded down per payment; 0 when nothing was funded.
 */
export function subsidyShareMsat(amountMsat: bigint, funding: RunFunding): bigint {
  const totalMsat = funding.customerMsat + funding.subsidyMsat;
  return totalMsat === 0n ? 0n : (amountMsat * funding.subsidyMsat) / totalMsat;
}

/** A batch's working set: hourly deltas (added to the stored rows), funding (loaded, then overwritten), settlements (first wins). */
export class MetricsBook {
  readonly hourly = new Map<string, { runId: string; hourStartMs: number; facts: HourlyFacts }>();
  readonly settlements = new Map<string, Settlement>();
  readonly touchedFunding = new Set<string>();

  constructor(readonly funding: Map<string, RunFunding>) {}

  apply(event: DomainEvent): void {
    const facts = this.factsOf(event);
    if (facts === null || !('runId' in event.data)) return;
    const runId = event.data.runId;
    const hour = hourStartMs(event.data.atMs);
    const key = `${runId}\u0000${hour}`;
    let row = this.hourly.get(key);
    if (row === undefined) this.hourly.set(key, (row = { runId, hourStartMs: hour, facts: zeroFacts() }));
    for (const [name, value] of Object.entries(facts) as [FactName, bigint][]) {
      invariant(value >= 0n, `metrics: ${event.type} would add a negative ${name}`);
      row.facts[name] += value;
    }
  }

  /** The facts one event adds, or null when it feeds no hourly figure (then it creates no row). */
  private factsOf(event: DomainEvent): Partial<HourlyFacts> | null {
    switch (event.type) {
      case 'RunFunded':
        this.fund(event.data.runId, event.data.source, event.data.amountMsat);
        return event.data.source === 'customer' ? { externalRevenueMsat: event.data.amountMsat } : { subsidyFundingMsat: event.data.amountMsat };
      case 'WorkAssigned':
        this.settlement(event.data.assignmentId, event.data.runId).assignedAtMs ??= event.data.atMs;
        return null;
      case 'GradientSubmitted':
        return { claimedComputeMs: BigInt(event.data.computeTimeMs) };
      case 'SubmissionAccepted':
        return { acceptedCount: 1n };
      case 'SubmissionRejected':
        return { rejectedCount: 1n };
      case 'RejectionDisputed':
        return { disputedCount: 1n };
      case 'ReplayVerdictRecorded':
        return { replayComputeMs: BigInt(event.data.durationMs) };
      case 'DisputeResolved':
        return { resolvedCount: 1n, overturnedCount: event.data.resolution === 'overturned' ? 1n : 0n };
      case 'InvoiceHeld':
        return event.data.kind === 'escrow' ? { escrowLockedMsat: event.data.amountMsat } : null;
      case 'InvoiceSettled':
        invariant(event.data.kind === 'escrow', `metrics: InvoiceSettled on a ${event.data.kind} invoice`);
        this.settle(event.data.assignmentId, event.data.runId, event.data.atMs);
        return { ...this.paid(event.data.runId, event.data.amountMsat, event.data.feeMsat ?? 0n), escrowReleasedMsat: event.data.amountMsat };
      case 'InvoiceCanceled':
      case 'InvoiceExpired':
        return event.data.wasHeld ? { escrowReleasedMsat: event.data.amountMsat } : null;
      case 'PaymentSent':
        if (event.data.kind === 'compensation') this.settle(event.data.assignmentId, event.data.runId, event.data.atMs);
        return this.paid(event.data.runId, event.data.amountMsat, event.data.feeMsat);
      default:
        return null;
    }
  }

  private paid(runId: string, amountMsat: bigint, feeMsat: bigint): Partial<HourlyFacts> {
    const share = subsidyShareMsat(amountMsat, this.fundingOf(runId));
    return { rewardsPaidMsat: amountMsat, rewardsPaidFromSubsidyMsat: share, feesMsat: feeMsat };
  }

  private fund(runId: string, source: 'customer' | 'subsidy', amountMsat: bigint): void {
    const funding = this.fundingOf(runId);
    if (source === 'customer') funding.customerMsat += amountMsat;
    else funding.subsidyMsat += amountMsat;
    this.touchedFunding.add(runId);
  }

  private fundingOf(runId: string): RunFunding {
    let funding = this.funding.get(runId);
    if (funding === undefined) this.funding.set(runId, (funding = { runId, customerMsat: 0n, subsidyMsat: 0n }));
    return funding;
  }

  /** Only the first payment of the base reward counts (there is only one, but a stored earlier one must win). */
  private settle(assignmentId: string, runId: string, atMs: number): void {
    this.settlement(assignmentId, runId).settledAtMs ??= atMs;
  }

  private settlement(assignmentId: string, runId: string): Settlement {
    let row = this.settlements.get(assignmentId);
    if (row === undefined) this.settlements.set(assignmentId, (row = { assignmentId, runId, assignedAtMs: null, settledAtMs: null }));
    invariant(row.runId === runId, `metrics: assignment ${assignmentId} seen in runs ${row.runId} and ${runId}`);
    return row;
  }
}
