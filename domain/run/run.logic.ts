// Run aggregate commands: open, fund, reserve/release budget, publish checkpoints, close; budget is refused at write time, never overdrawn.

import type { Command } from '../decider.js';
import { DomainError, invariant, require_ } from '../errors.js';
import { requireId, requireSha256Hex } from '../ids.js';
import {
  MAX_ASSIGNMENT_TIMEOUT_MS,
  MAX_CLTV_DELTA_BLOCKS,
  MAX_DISPUTE_WINDOW_MS,
  MAX_INVOICE_EXPIRY_SEC,
  MAX_OPEN_RESERVATIONS_PER_RUN,
  MAX_REASON_CHARS,
  MAX_SHARDS_PER_RUN,
  MAX_TRAINING_STEP,
  MIN_CLTV_DELTA_BLOCKS,
  MIN_INVOICE_EXPIRY_SEC,
} from '../limits.js';
import { formatMsat, MAX_MONEY_MSAT, requireNonNegativeMsat, requirePositiveMsat } from '../money.js';
import { requireFinite, requireInt, requireNowMs, requireOneOf, requireText, sameContent } from '../validate.js';
import {
  type ActiveRunState,
  availableMsat,
  type EscrowPolicy,
  FUNDING_SOURCES,
  type FundingSource,
  type RewardPolicy,
  type RunDefinition,
  type RunEvent,
  type RunState,
  type Shard,
  totalFundedMsat,
  type VerificationPolicy,
} from './run.state.js';

export type OpenRun = Command<'OpenRun', RunDefinition>;
export type FundRun = Command<'FundRun', { runId: string; fundingId: string; source: FundingSource; amountMsat: bigint }>;
export type ReserveBudget = Command<'ReserveBudget', { runId: string; reservationId: string; assignmentId: string; amountMsat: bigint }>;
/** Closes a reservation: `spentMsat` (at most the reserved amount) counts as paid out, the rest returns to the budget. */
export type ReleaseBudget = Command<'ReleaseBudget', { runId: string; reservationId: string; spentMsat: bigint }>;
export type PublishCheckpoint = Command<'PublishCheckpoint', { runId: string; checkpointId: string; step: number; digest: string }>;
export type CloseRun = Command<'CloseRun', { runId: string; reason: string }>;

export type RunCommand = OpenRun | FundRun | ReserveBudget | ReleaseBudget | PublishCheckpoint | CloseRun;

export function decide(command: RunCommand, state: RunState): RunEvent[] {
  const nowMs = requireNowMs(command.metadata);
  switch (command.type) {
    case 'OpenRun':
      return openRun(command, state, nowMs);
    case 'FundRun':
      return fundRun(command, state, nowMs);
    case 'ReserveBudget':
      return reserveBudget(command, state, nowMs);
    case 'ReleaseBudget':
      return releaseBudget(command, state, nowMs);
    case 'PublishCheckpoint':
      return publishCheckpoint(command, state, nowMs);
    case 'CloseRun':
      return closeRun(command, state, nowMs);
    default: {
      const unknown: never = command;
      throw new DomainError('UNKNOWN_COMMAND', `the run aggregate has no command ${JSON.stringify((unknown as RunCommand).type)}`);
    }
  }
}

/** The run must exist; a command naming another run means the caller loaded the wrong stream, a bug. */
function existingRun(state: RunState, runId: string): ActiveRunState {
  require_(state.status !== 'none', 'RUN_NOT_FOUND', `run ${runId} does not exist; open it with OpenRun first`, { runId });
  invariant(state.runId === runId, `command for run ${runId} decided against run ${state.runId}`);
  return state;
}

function openRunForWrites(state: RunState, runId: string): ActiveRunState {
  const run = existingRun(state, runId);
  require_(
    run.status === 'open',
    'RUN_CLOSED',
    `run ${runId} is closed (${run.closedReason ?? 'no reason'}); it takes no more funding, reservations or checkpoints`,
    { runId },
  );
  return run;
}

function openRun(command: OpenRun, state: RunState, nowMs: number): RunEvent[] {
  const definition = validDefinition(command.data);
  if (state.status !== 'none') {
    const { runId, coordinatorId, stepGraphDigest, initialCheckpointDigest, shards, rewardPolicy, verificationPolicy, escrowPolicy } = state;
    const existing: RunDefinition = { runId, coordinatorId, stepGraphDigest, initialCheckpointDigest, shards, rewardPolicy, verificationPolicy, escrowPolicy };
    // A retried OpenRun with the same definition is harmless; a different one would silently fork the run.
    if (sameContent(existing, definition)) return [];
    throw new DomainError('RUN_ALREADY_OPENED', `run ${definition.runId} is already open with a different definition; choose a new runId`, {
      runId: definition.runId,
    });
  }
  return [{ type: 'RunOpened', data: { ...definition, atMs: nowMs } }];
}

function validDefinition(data: RunDefinition): RunDefinition {
  return {
    runId: requireId(data.runId, 'runId'),
    coordinatorId: requireId(data.coordinatorId, 'coordinatorId'),
    stepGraphDigest: requireSha256Hex(data.stepGraphDigest, 'stepGraphDigest'),
    initialCheckpointDigest: requireSha256Hex(data.initialCheckpointDigest, 'initialCheckpointDigest'),
    shards: validShards(data.shards),
    rewardPolicy: validRewardPolicy(data.rewardPolicy),
    verificationPolicy: validVerificationPolicy(data.verificationPolicy),
    escrowPolicy: validEscrowPolicy(data.escrowPolicy),
  };
}

function validShards(shards: readonly Shard[]): Shard[] {
  require_(
    Array.isArray(shards) && shards.length >= 1 && shards.length <= MAX_SHARDS_PER_RUN,
    'INVALID_SHARDS',
    `shards must list 1 to ${MAX_SHARDS_PER_RUN} shards, each {shardId, digest}`,
    { maxShards: MAX_SHARDS_PER_RUN },
  );
  const seen = new Set<string>();
  return shards.map((shard, index) => {
    const shardId = requireId(shard?.shardId, `shards[${index}].shardId`);
    require_(!seen.has(shardId), 'DUPLICATE_SHARD_ID', `shard id ${shardId} appears twice; give every shard its own id`, { shardId });
    seen.add(shardId);
    return { shardId, digest: requireSha256Hex(shard.digest, `shards[${index}].digest`) };
  });
}

function validRewardPolicy(policy: RewardPolicy): RewardPolicy {
  requirePositiveMsat(policy?.baseRewardMsat, 'rewardPolicy.baseRewardMsat');
  requireNonNegativeMsat(policy.maxBonusMsat, 'rewardPolicy.maxBonusMsat');
  return { baseRewardMsat: policy.baseRewardMsat, maxBonusMsat: policy.maxBonusMsat };
}

function validVerificationPolicy(policy: VerificationPolicy): VerificationPolicy {
  const maxGradientNorm = requireFinite(policy?.maxGradientNorm, 'verificationPolicy.maxGradientNorm', 0);
  require_(maxGradientNorm > 0, 'INVALID_NUMBER', 'verificationPolicy.maxGradientNorm must be greater than 0', { field: 'verificationPolicy.maxGradientNorm' });
  return {
    replayProbability: requireFinite(policy.replayProbability, 'verificationPolicy.replayProbability', 0, 1),
    maxGradientNorm,
    minRelativeImprovement: requireFinite(policy.minRelativeImprovement, 'verificationPolicy.minRelativeImprovement'),
  };
}

function validEscrowPolicy(policy: EscrowPolicy): EscrowPolicy {
  return {
    cltvDeltaBlocks: requireInt(policy?.cltvDeltaBlocks, 'escrowPolicy.cltvDeltaBlocks', MIN_CLTV_DELTA_BLOCKS, MAX_CLTV_DELTA_BLOCKS),
    invoiceExpirySec: requireInt(policy.invoiceExpirySec, 'escrowPolicy.invoiceExpirySec', MIN_INVOICE_EXPIRY_SEC, MAX_INVOICE_EXPIRY_SEC),
    disputeWindowMs: requireInt(policy.disputeWindowMs, 'escrowPolicy.disputeWindowMs', 1, MAX_DISPUTE_WINDOW_MS),
    assignmentTimeoutMs: requireInt(policy.assignmentTimeoutMs, 'escrowPolicy.assignmentTimeoutMs', 1, MAX_ASSIGNMENT_TIMEOUT_MS),
  };
}

function fundRun(command: FundRun, state: RunState, nowMs: number): RunEvent[] {
  const runId = requireId(command.data.runId, 'runId');
  const fundingId = requireId(command.data.fundingId, 'fundingId');
  const source = requireOneOf(command.data.source, 'source', FUNDING_SOURCES);
  const { amountMsat } = command.data;
  requirePositiveMsat(amountMsat, 'amountMsat');
  const run = openRunForWrites(state, runId);
  const seen = run.fundings.get(fundingId);
  if (seen !== undefined) {
    if (seen.source === source && seen.amountMsat === amountMsat) return [];
    throw new DomainError('FUNDING_ID_REUSED', `funding ${fundingId} was already recorded with different terms; use a new fundingId for new money`, {
      runId,
      fundingId,
    });
  }
  // Totals must stay within the 21M BTC cap, or they could not travel through the wire codec.
  require_(totalFundedMsat(run) + amountMsat <= MAX_MONEY_MSAT, 'FUNDING_CAP_EXCEEDED', `run ${runId} would hold more than 21M BTC`, { runId });
  return [{ type: 'RunFunded', data: { runId, fundingId, source, amountMsat, atMs: nowMs } }];
}

function reserveBudget(command: ReserveBudget, state: RunState, nowMs: number): RunEvent[] {
  const runId = requireId(command.data.runId, 'runId');
  const reservationId = requireId(command.data.reservationId, 'reservationId');
  const assignmentId = requireId(command.data.assignmentId, 'assignmentId');
  const { amountMsat } = command.data;
  requirePositiveMsat(amountMsat, 'amountMsat');
  const run = openRunForWrites(state, runId);
  const open = run.openReservations.get(reservationId);
  if (open !== undefined && open.assignmentId === assignmentId && open.amountMsat === amountMsat) return [];
  require_(
    open === undefined && !run.releasedReservationIds.has(reservationId),
    'RESERVATION_EXISTS',
    `reservation ${reservationId} already exists with other terms or was released; reservation ids are single-use`,
    {
      runId,
      reservationId,
    },
  );
  require_(
    run.openReservations.size < MAX_OPEN_RESERVATIONS_PER_RUN,
    'TOO_MANY_OPEN_RESERVATIONS',
    `run ${runId} already holds ${MAX_OPEN_RESERVATIONS_PER_RUN} open reservations; release some first`,
    { runId },
  );
  const available = availableMsat(run);
  require_(
    amountMsat <= available,
    'INSUFFICIENT_BUDGET',
    `run ${runId} has ${formatMsat(available)} msat uncommitted but ${formatMsat(amountMsat)} msat were asked for; fund the run or wait for reservations to close`,
    {
      runId,
      availableMsat: formatMsat(available),
      requestedMsat: formatMsat(amountMsat),
    },
  );
  return [{ type: 'BudgetReserved', data: { runId, reservationId, assignmentId, amountMsat, atMs: nowMs } }];
}

function releaseBudget(command: ReleaseBudget, state: RunState, nowMs: number): RunEvent[] {
  const runId = requireId(command.data.runId, 'runId');
  const reservationId = requireId(command.data.reservationId, 'reservationId');
  const { spentMsat } = command.data;
  requireNonNegativeMsat(spentMsat, 'spentMsat');
  // Releases stay allowed after close: in-flight assignments still settle.
  const run = existingRun(state, runId);
  const reservation = run.openReservations.get(reservationId);
  if (reservation === undefined) {
    const why = run.releasedReservationIds.has(reservationId) ? 'was already released' : 'does not exist';
    throw new DomainError('RESERVATION_NOT_FOUND', `reservation ${reservationId} ${why} in run ${runId}; nothing to release`, { runId, reservationId });
  }
  require_(
    spentMsat <= reservation.amountMsat,
    'SPENT_EXCEEDS_RESERVATION',
    `cannot spend ${formatMsat(spentMsat)} msat from reservation ${reservationId}, which holds ${formatMsat(reservation.amountMsat)} msat`,
    {
      runId,
      reservationId,
    },
  );
  const { assignmentId, amountMsat: reservedMsat } = reservation;
  return [{ type: 'BudgetReleased', data: { runId, reservationId, assignmentId, reservedMsat, spentMsat, returnedMsat: reservedMsat - spentMsat, atMs: nowMs } }];
}

function publishCheckpoint(command: PublishCheckpoint, state: RunState, nowMs: number): RunEvent[] {
  const runId = requireId(command.data.runId, 'runId');
  const checkpointId = requireId(command.data.checkpointId, 'checkpointId');
  const step = requireInt(command.data.step, 'step', 0, MAX_TRAINING_STEP);
  const digest = requireSha256Hex(command.data.digest, 'digest');
  const last = openRunForWrites(state, runId).lastCheckpoint;
  if (last !== null && last.checkpointId === checkpointId) {
    if (last.step === step && last.digest === digest) return [];
    throw new DomainError('CHECKPOINT_ID_REUSED', `checkpoint ${checkpointId} was already published with another step or digest; use a new checkpointId`, { runId, checkpointId });
  }
  require_(
    last === null || step > last.step,
    'CHECKPOINT_STEP_NOT_INCREASING',
    `checkpoint step ${step} must be greater than the last published step ${last?.step ?? -1}`,
    {
      runId,
      step,
    },
  );
  return [{ type: 'CheckpointPublished', data: { runId, checkpointId, step, digest, atMs: nowMs } }];
}

function closeRun(command: CloseRun, state: RunState, nowMs: number): RunEvent[] {
  const runId = requireId(command.data.runId, 'runId');
  const reason = requireText(command.data.reason, 'reason', MAX_REASON_CHARS);
  if (existingRun(state, runId).status === 'closed') return [];
  return [{ type: 'RunClosed', data: { runId, reason, atMs: nowMs } }];
}
