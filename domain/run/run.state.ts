// Run aggregate state: the run's events, its budget ledger, and evolve, which stops on any event that would overdraw the budget.

import { PersistentMap } from '../persistent-map.js';
import type { Event } from '../decider.js';
import { invariant, InvariantViolation } from '../errors.js';

export const FUNDING_SOURCES = ['customer', 'subsidy'] as const;
export type FundingSource = (typeof FUNDING_SOURCES)[number];

export type Shard = Readonly<{ shardId: string; digest: string }>;
export type RewardPolicy = Readonly<{ baseRewardMsat: bigint; maxBonusMsat: bigint }>;
export type VerificationPolicy = Readonly<{ replayProbability: number; maxGradientNorm: number; minRelativeImprovement: number }>;
export type EscrowPolicy = Readonly<{ cltvDeltaBlocks: number; invoiceExpirySec: number; disputeWindowMs: number; assignmentTimeoutMs: number }>;

export type RunDefinition = Readonly<{
  runId: string;
  coordinatorId: string;
  stepGraphDigest: string;
  initialCheckpointDigest: string;
  shards: readonly Shard[];
  rewardPolicy: RewardPolicy;
  verificationPolicy: VerificationPolicy;
  escrowPolicy: EscrowPolicy;
}>;

export type RunOpened = Event<'RunOpened', RunDefinition & { atMs: number }>;
export type RunFunded = Event<'RunFunded', { runId: string; fundingId: string; source: FundingSource; amountMsat: bigint; atMs: number }>;
export type BudgetReserved = Event<'BudgetReserved', { runId: string; reservationId: string; assignmentId: string; amountMsat: bigint; atMs: number }>;
export type BudgetReleased = Event<
  'BudgetReleased',
  { runId: string; reservationId: string; assignmentId: string; reservedMsat: bigint; spentMsat: bigint; returnedMsat: bigint; atMs: number }
>;
export type CheckpointPublished = Event<'CheckpointPublished', { runId: string; checkpointId: string; step: number; digest: string; atMs: number }>;
export type RunClosed = Event<'RunClosed', { runId: string; reason: string; atMs: number }>;

export type RunEvent = RunOpened | RunFunded | BudgetReserved | BudgetReleased | CheckpointPublished | RunClosed;

export type Reservation = Readonly<{ reservationId: string; assignmentId: string; amountMsat: bigint; reservedAtMs: number }>;
export type Funding = Readonly<{ source: FundingSource; amountMsat: bigint }>;
export type Checkpoint = Readonly<{ checkpointId: string; step: number; digest: string }>;

export type RunState =
  | Readonly<{ status: 'none' }>
  | (RunDefinition &
      Readonly<{
        status: 'open' | 'closed';
        openedAtMs: number;
        funded: Readonly<{ customerMsat: bigint; subsidyMsat: bigint }>;
        /** Sum of the amounts of open reservations. */
        reservedMsat: bigint;
        /** Sum of what released reservations consumed (paid out). */
        spentMsat: bigint;
        // Persistent maps, not copies: a run's stream gains two events per assignment, and copying
        // these on every event made each new event O(history) (see domain/persistent-map.ts).
        openReservations: PersistentMap<Reservation>;
        /** Reservation ids are single-use: a released id is never reserved again. */
        releasedReservationIds: PersistentMap<true>;
        fundings: PersistentMap<Funding>;
        lastCheckpoint: Checkpoint | null;
        closedReason: string | null;
      }>);

export type ActiveRunState = Exclude<RunState, { status: 'none' }>;

export const initialState = (): RunState => ({ status: 'none' });

export function totalFundedMsat(state: ActiveRunState): bigint {
  return state.funded.customerMsat + state.funded.subsidyMsat;
}

/** Budget not yet committed: funded minus open reservations minus what was spent. */
export function availableMsat(state: ActiveRunState): bigint {
  return totalFundedMsat(state) - state.reservedMsat - state.spentMsat;
}

export function evolve(state: RunState, event: RunEvent): RunState {
  const next = apply(state, event);
  if (next.status !== 'none') assertBudgetBalances(next);
  return next;
}

/** The TigerBeetle-style postcondition: no event may leave the budget overdrawn or negative. */
function assertBudgetBalances(state: ActiveRunState): void {
  invariant(state.funded.customerMsat >= 0n && state.funded.subsidyMsat >= 0n, `run ${state.runId}: negative funding`);
  invariant(state.reservedMsat >= 0n && state.spentMsat >= 0n, `run ${state.runId}: negative reserved or spent`);
  invariant(state.reservedMsat + state.spentMsat <= totalFundedMsat(state), `run ${state.runId}: reserved + spent exceeds funded`);
}

function apply(state: RunState, event: RunEvent): RunState {
  switch (event.type) {
    case 'RunOpened':
      return opened(state, event);
    case 'RunFunded':
      return funded(active(state, event, ['open']), event);
    case 'BudgetReserved':
      return reserved(active(state, event, ['open']), event);
    case 'BudgetReleased':
      return released(active(state, event, ['open', 'closed']), event);
    case 'CheckpointPublished':
      return checkpointed(active(state, event, ['open']), event);
    case 'RunClosed':
      return { ...active(state, event, ['open']), status: 'closed', closedReason: event.data.reason };
    default: {
      const unknown: never = event;
      throw new InvariantViolation(`run evolve: unknown event type ${(unknown as RunEvent).type}`);
    }
  }
}

function active(state: RunState, event: RunEvent, statuses: readonly ActiveRunState['status'][]): ActiveRunState {
  invariant(state.status !== 'none', `${event.type} cannot precede RunOpened`);
  invariant(statuses.includes(state.status), `${event.type} cannot follow a ${state.status} run`);
  invariant(event.data.runId === state.runId, `${event.type} for run ${event.data.runId} folded into run ${state.runId}`);
  return state;
}

function opened(state: RunState, event: RunOpened): RunState {
  invariant(state.status === 'none', `RunOpened cannot follow a ${state.status} run`);
  const { atMs, ...definition } = event.data;
  return {
    ...definition,
    status: 'open',
    openedAtMs: atMs,
    funded: { customerMsat: 0n, subsidyMsat: 0n },
    reservedMsat: 0n,
    spentMsat: 0n,
    openReservations: PersistentMap.empty(),
    releasedReservationIds: PersistentMap.empty(),
    fundings: PersistentMap.empty(),
    lastCheckpoint: null,
    closedReason: null,
  };
}

function funded(state: ActiveRunState, event: RunFunded): RunState {
  const { fundingId, source, amountMsat } = event.data;
  invariant(amountMsat > 0n, `RunFunded ${fundingId} with a non-positive amount`);
  invariant(!state.fundings.has(fundingId), `RunFunded reuses funding id ${fundingId}`);
  const fundings = state.fundings.set(fundingId, { source, amountMsat });
  const customerMsat = state.funded.customerMsat + (source === 'customer' ? amountMsat : 0n);
  const subsidyMsat = state.funded.subsidyMsat + (source === 'subsidy' ? amountMsat : 0n);
  return { ...state, fundings, funded: { customerMsat, subsidyMsat } };
}

function reserved(state: ActiveRunState, event: BudgetReserved): RunState {
  const { reservationId, assignmentId, amountMsat, atMs } = event.data;
  invariant(amountMsat > 0n, `BudgetReserved ${reservationId} with a non-positive amount`);
  invariant(!state.openReservations.has(reservationId), `BudgetReserved reopens reservation ${reservationId}`);
  invariant(!state.releasedReservationIds.has(reservationId), `BudgetReserved reuses released reservation ${reservationId}`);
  const openReservations = state.openReservations.set(reservationId, { reservationId, assignmentId, amountMsat, reservedAtMs: atMs });
  return { ...state, openReservations, reservedMsat: state.reservedMsat + amountMsat };
}

function released(state: ActiveRunState, event: BudgetReleased): RunState {
  const { reservationId, assignmentId, reservedMsat, spentMsat, returnedMsat } = event.data;
  const reservation = state.openReservations.get(reservationId);
  invariant(reservation !== undefined, `BudgetReleased for reservation ${reservationId}, which is not open`);
  invariant(reservation.assignmentId === assignmentId, `BudgetReleased ${reservationId} names a different assignment`);
  invariant(reservation.amountMsat === reservedMsat, `BudgetReleased ${reservationId} names a different reserved amount`);
  invariant(spentMsat >= 0n && returnedMsat >= 0n, `BudgetReleased ${reservationId} with a negative part`);
  invariant(spentMsat + returnedMsat === reservedMsat, `BudgetReleased ${reservationId}: spent + returned != reserved`);
  const openReservations = state.openReservations.delete(reservationId);
  const releasedReservationIds = state.releasedReservationIds.set(reservationId, true);
  return {
    ...state,
    openReservations,
    releasedReservationIds,
    reservedMsat: state.reservedMsat - reservedMsat,
    spentMsat: state.spentMsat + spentMsat,
  };
}

function checkpointed(state: ActiveRunState, event: CheckpointPublished): RunState {
  const { checkpointId, step, digest } = event.data;
  invariant(state.lastCheckpoint === null || step > state.lastCheckpoint.step, `CheckpointPublished step ${step} does not advance`);
  return { ...state, lastCheckpoint: { checkpointId, step, digest } };
}
