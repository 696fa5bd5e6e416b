// Shared test fixtures for the domain: deterministic hex values, valid command builders and a DomainError assertion.

import { createHash } from 'node:crypto';
import { expect } from 'vitest';
import { type Command, type Decider, DomainError, type Event, InvariantViolation } from '../../domain/index.js';
import type { AssignmentCommand, AssignWork } from '../../domain/assignment/index.js';
import type { OpenInvoice } from '../../domain/invoice/index.js';
import type { OpenRun } from '../../domain/run/index.js';

/** A deterministic 64-hex value per label (digests, keys, payment hashes, preimages). */
export function hex64(label: string): string {
  return createHash('sha256').update(label).digest('hex');
}

/** The real relation between a preimage and its payment hash, which the Lightning adapter checks. */
export function paymentHashOf(preimageHex: string): string {
  return createHash('sha256').update(Buffer.from(preimageHex, 'hex')).digest('hex');
}

export function nodePubkey(label: string): string {
  return `02${hex64(label)}`;
}

export const T0 = 1_700_000_000_000;

export function command<C extends Command>(type: C['type'], data: C['data'], nowMs = T0): C {
  return { type, data, metadata: { nowMs } } as C;
}

/** Runs `fn` and returns the DomainError it throws; fails the test on anything else. */
export function domainError(fn: () => unknown): DomainError {
  try {
    fn();
  } catch (error) {
    if (error instanceof DomainError) return error;
    throw error;
  }
  throw new Error('expected a DomainError, but nothing was thrown');
}

export function expectCode(fn: () => unknown, code: string): DomainError {
  const error = domainError(fn);
  expect(error.code).toBe(code);
  expect(error.message.length).toBeGreaterThan(10);
  return error;
}

export function expectInvariant(fn: () => unknown): void {
  expect(fn).toThrow(InvariantViolation);
}

/** Applies commands in order, folding their events; returns the final state and every event emitted. */
export function given<C extends Command, E extends Event, S>(decider: Decider<C, E, S>, commands: readonly C[]): { state: S; events: E[] } {
  let state = decider.initialState();
  const events: E[] = [];
  for (const cmd of commands) {
    for (const event of decider.decide(cmd, state)) {
      state = decider.evolve(state, event);
      events.push(event);
    }
  }
  return { state, events };
}

export const RUN_ID = 'run-1';

export function openRunData(overrides: Partial<OpenRun['data']> = {}): OpenRun['data'] {
  return {
    runId: RUN_ID,
    coordinatorId: 'coord-1',
    stepGraphDigest: hex64('graph'),
    initialCheckpointDigest: hex64('ckpt-0'),
    shards: [
      { shardId: 'shard-0', digest: hex64('shard-0') },
      { shardId: 'shard-1', digest: hex64('shard-1') },
    ],
    rewardPolicy: { baseRewardMsat: 1_000_000n, maxBonusMsat: 500_000n },
    verificationPolicy: { replayProbability: 0.1, maxGradientNorm: 10, minRelativeImprovement: 0.001 },
    escrowPolicy: { cltvDeltaBlocks: 144, invoiceExpirySec: 3600, disputeWindowMs: 86_400_000, assignmentTimeoutMs: 3_600_000 },
    ...overrides,
  };
}

export const ASSIGNMENT_ID = 'asg-1';
export const CONTRIBUTOR_ID = 'alice';
export const DEADLINE_MS = T0 + 3_600_000;
export const DISPUTE_WINDOW_MS = 86_400_000;
/** The bonus bound fixtures assign with: the accept fixture's default bonus fits under it. */
export const MAX_BONUS_MSAT = 500_000n;

export function assignWorkData(overrides: Partial<AssignWork['data']> = {}): AssignWork['data'] {
  return {
    assignmentId: ASSIGNMENT_ID,
    runId: RUN_ID,
    contributorId: CONTRIBUTOR_ID,
    step: 7,
    shardId: 'shard-0',
    batchIndex: 3,
    baseCheckpointDigest: hex64('ckpt-6'),
    seed: '18446744073709551615',
    baseRewardMsat: 1_000_000n,
    maxBonusMsat: MAX_BONUS_MSAT,
    maxFeeMsat: 10_000n,
    deadlineMs: DEADLINE_MS,
    disputeWindowMs: DISPUTE_WINDOW_MS,
    ...overrides,
  };
}

/** Builders for each assignment command with valid defaults, so a test states only what matters to it. */
export const assignmentCommands = {
  assign: (nowMs = T0, overrides: Partial<AssignWork['data']> = {}): AssignmentCommand => command('AssignWork', assignWorkData(overrides), nowMs),
  submit: (nowMs = T0 + 1000, contributorId = CONTRIBUTOR_ID): AssignmentCommand =>
    command(
      'SubmitGradient',
      { assignmentId: ASSIGNMENT_ID, contributorId, gradientDigest: hex64('grad'), sizeBytes: 4096, encoding: 'dense-f32', claimedLoss: 2.3, computeTimeMs: 900 },
      nowMs,
    ),
  accept: (nowMs = T0 + 2000, bonusMsat = 250_000n): AssignmentCommand =>
    command('AcceptSubmission', { assignmentId: ASSIGNMENT_ID, validatorId: 'val-1', qualityScore: 0.8, bonusMsat, evidence: { lossBefore: 2.3, lossAfter: 2.2 } }, nowMs),
  reject: (nowMs = T0 + 2000): AssignmentCommand =>
    command('RejectSubmission', { assignmentId: ASSIGNMENT_ID, validatorId: 'val-1', reasonCode: 'NORM_TOO_LARGE', evidence: { norm: 1e9 } }, nowMs),
  dispute: (nowMs = T0 + 3000, contributorId = CONTRIBUTOR_ID): AssignmentCommand =>
    command('DisputeRejection', { assignmentId: ASSIGNMENT_ID, contributorId, disputeId: 'dsp-1', reason: 'my gradient is honest' }, nowMs),
  requestReplay: (nowMs = T0 + 4000, replayJobId = 'job-1'): AssignmentCommand => command('RequestReplay', { assignmentId: ASSIGNMENT_ID, replayJobId }, nowMs),
  verdict: (outcome: 'match' | 'mismatch', nowMs = T0 + 5000, replayJobId = 'job-1'): AssignmentCommand =>
    command(
      'RecordReplayVerdict',
      {
        assignmentId: ASSIGNMENT_ID,
        replayJobId,
        outcome,
        recipe: { stepGraphDigest: hex64('graph'), checkpointDigest: hex64('ckpt-6'), shardId: 'shard-0', batchIndex: 3, seed: '7', graphOptimizationLevel: 'disabled' },
        metric: { relativeL2: outcome === 'match' ? 1e-7 : 0.4 },
        tolerance: { relativeL2: 1e-5 },
        executionProvider: 'cpu',
        device: 'x86_64',
        durationMs: 1234,
      },
      nowMs,
    ),
  resolve: (resolution: 'upheld' | 'overturned', nowMs = T0 + 6000): AssignmentCommand => command('ResolveDispute', { assignmentId: ASSIGNMENT_ID, resolution }, nowMs),
  expire: (nowMs = DEADLINE_MS + 1): AssignmentCommand => command('ExpireAssignment', { assignmentId: ASSIGNMENT_ID }, nowMs),
  /** Defaults to just after the window of a rejection made by `reject()` at its default time. */
  finalize: (nowMs = T0 + 2000 + DISPUTE_WINDOW_MS + 1): AssignmentCommand => command('FinalizeRejection', { assignmentId: ASSIGNMENT_ID }, nowMs),
};

export const ESCROW_PREIMAGE = hex64('escrow-preimage');
export const ESCROW_HASH = paymentHashOf(ESCROW_PREIMAGE);
export const INVOICE_EXPIRES_AT_MS = T0 + 3_600_000;

export function openInvoiceData(overrides: Partial<OpenInvoice['data']> = {}): OpenInvoice['data'] {
  return {
    paymentHash: ESCROW_HASH,
    kind: 'escrow',
    assignmentId: ASSIGNMENT_ID,
    runId: RUN_ID,
    contributorId: CONTRIBUTOR_ID,
    amountMsat: 1_000_000n,
    bolt11: 'lnbcrt10u1pjtestinvoice',
    expiresAtMs: INVOICE_EXPIRES_AT_MS,
    cltvExpiryHeight: 800_144,
    ...overrides,
  };
}
