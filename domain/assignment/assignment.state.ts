// Assignment aggregate state: one unit of work from assignment through verdict, dispute and replay, and evolve guarding each transition.

import type { Event } from '../decider.js';
import { invariant, InvariantViolation } from '../errors.js';

export const ASSIGNMENT_STATUSES = [
  'none',
  'assigned',
  'submitted',
  'accepted',
  'rejected',
  'disputed',
  'replaying',
  'replayed',
  'resolved',
  'expired',
] as const;
export type AssignmentStatus = (typeof ASSIGNMENT_STATUSES)[number];

export const GRADIENT_ENCODINGS = ['dense-f32', 'sparseloco'] as const;
export type GradientEncoding = (typeof GRADIENT_ENCODINGS)[number];
export const REPLAY_OUTCOMES = ['match', 'mismatch'] as const;
export type ReplayOutcome = (typeof REPLAY_OUTCOMES)[number];
export const DISPUTE_RESOLUTIONS = ['upheld', 'overturned'] as const;
export type DisputeResolution = (typeof DISPUTE_RESOLUTIONS)[number];

/**
 * A replay that reproduces the contributor's step (match) overturns the rejection; one that
 * does not (mismatch) upholds it. Named once so decide and evolve cannot disagree.
 */
export function resolutionImpliedBy(outcome: ReplayOutcome): DisputeResolution {
  return outcome === 'match' ? 'overturned' : 'upheld';
}

export type WorkTerms = Readonly<{
  assignmentId: string;
  runId: string;
  contributorId: string;
  step: number;
  shardId: string;
  batchIndex: number;
  baseCheckpointDigest: string;
  /** Unsigned 64-bit seed as decimal digits: JSON numbers cannot carry 64 bits exactly. */
  seed: string;
  baseRewardMsat: bigint;
  deadlineMs: number;
  disputeWindowMs: number;
}>;

/** Ids every assignment event carries, so each event can be audited alone. */
type AssignmentRef = { assignmentId: string; runId: string; contributorId: string; atMs: number };
type JsonObject = Readonly<Record<string, unknown>>;

export type Submission = Readonly<{
  gradientDigest: string;
  sizeBytes: number;
  encoding: GradientEncoding;
  claimedLoss: number;
  computeTimeMs: number;
}>;
export type ValidatorAcceptance = Readonly<{ validatorId: string; qualityScore: number; bonusMsat: bigint; evidence: JsonObject }>;
export type ValidatorRejection = Readonly<{ validatorId: string; reasonCode: string; evidence: JsonObject }>;
export type ReplayVerdict = Readonly<{
  replayJobId: string;
  outcome: ReplayOutcome;
  recipe: JsonObject;
  metric: Readonly<Record<string, number>>;
  tolerance: JsonObject;
  executionProvider: string;
  device: string;
  durationMs: number;
}>;

export type WorkAssigned = Event<'WorkAssigned', WorkTerms & { atMs: number }>;
export type GradientSubmitted = Event<'GradientSubmitted', AssignmentRef & Submission>;
export type SubmissionAccepted = Event<'SubmissionAccepted', AssignmentRef & ValidatorAcceptance & { baseRewardMsat: bigint }>;
export type SubmissionRejected = Event<'SubmissionRejected', AssignmentRef & ValidatorRejection & { disputeDeadlineMs: number }>;
export type RejectionDisputed = Event<'RejectionDisputed', AssignmentRef & { disputeId: string; reason: string }>;
export type ReplayRequested = Event<'ReplayRequested', AssignmentRef & { disputeId: string; replayJobId: string }>;
export type ReplayVerdictRecorded = Event<'ReplayVerdictRecorded', AssignmentRef & ReplayVerdict>;
export type DisputeResolved = Event<
  'DisputeResolved',
  AssignmentRef & { disputeId: string; replayJobId: string; outcome: ReplayOutcome; resolution: DisputeResolution; baseRewardMsat: bigint }
>;
export type AssignmentExpired = Event<'AssignmentExpired', AssignmentRef & { deadlineMs: number }>;

export type AssignmentEvent =
  | WorkAssigned
  | GradientSubmitted
  | SubmissionAccepted
  | SubmissionRejected
  | RejectionDisputed
  | ReplayRequested
  | ReplayVerdictRecorded
  | DisputeResolved
  | AssignmentExpired;

/** Each stage's record stays null until its event arrives; status says which stage is current. */
export type AssignmentState = Readonly<{
  status: AssignmentStatus;
  terms: WorkTerms | null;
  assignedAtMs: number | null;
  submission: (Submission & { submittedAtMs: number }) | null;
  acceptance: (ValidatorAcceptance & { acceptedAtMs: number }) | null;
  rejection: (ValidatorRejection & { rejectedAtMs: number; disputeDeadlineMs: number }) | null;
  dispute: Readonly<{ disputeId: string; reason: string; disputedAtMs: number }> | null;
  replayJobId: string | null;
  verdict: (ReplayVerdict & { recordedAtMs: number }) | null;
  resolution: Readonly<{ resolution: DisputeResolution; resolvedAtMs: number }> | null;
  expiredAtMs: number | null;
}>;

export const initialState = (): AssignmentState => ({
  status: 'none',
  terms: null,
  assignedAtMs: null,
  submission: null,
  acceptance: null,
  rejection: null,
  dispute: null,
  replayJobId: null,
  verdict: null,
  resolution: null,
  expiredAtMs: null,
});

/** The status each event requires before it, and the status it leaves. */
const TRANSITIONS: Readonly<Record<AssignmentEvent['type'], readonly [AssignmentStatus, AssignmentStatus]>> = {
  WorkAssigned: ['none', 'assigned'],
  GradientSubmitted: ['assigned', 'submitted'],
  SubmissionAccepted: ['submitted', 'accepted'],
  SubmissionRejected: ['submitted', 'rejected'],
  RejectionDisputed: ['rejected', 'disputed'],
  ReplayRequested: ['disputed', 'replaying'],
  ReplayVerdictRecorded: ['replaying', 'replayed'],
  DisputeResolved: ['replayed', 'resolved'],
  AssignmentExpired: ['assigned', 'expired'],
};

export function evolve(state: AssignmentState, event: AssignmentEvent): AssignmentState {
  // hasOwn, not a plain lookup: an unknown type such as "toString" must not find Object.prototype.
  const transition = Object.hasOwn(TRANSITIONS, event.type) ? TRANSITIONS[event.type] : undefined;
  if (transition === undefined) throw new InvariantViolation(`assignment evolve: unknown event type ${(event as { type: string }).type}`);
  const [from, to] = transition;
  invariant(state.status === from, `${event.type} cannot follow a ${state.status} assignment (needs ${from})`);
  if (event.type === 'WorkAssigned') {
    const { atMs, ...terms } = event.data;
    return { ...state, status: to, terms, assignedAtMs: atMs };
  }
  const terms = state.terms;
  invariant(terms !== null, `${event.type} on an assignment without terms`);
  const { assignmentId, runId, contributorId } = event.data;
  invariant(
    assignmentId === terms.assignmentId && runId === terms.runId && contributorId === terms.contributorId,
    `${event.type} for assignment ${assignmentId} folded into ${terms.assignmentId}`,
  );
  return { ...applyStage(state, terms, event), status: to };
}

function applyStage(state: AssignmentState, terms: WorkTerms, event: Exclude<AssignmentEvent, WorkAssigned>): AssignmentState {
  switch (event.type) {
    case 'GradientSubmitted': {
      const { gradientDigest, sizeBytes, encoding, claimedLoss, computeTimeMs, atMs } = event.data;
      invariant(atMs <= terms.deadlineMs, `GradientSubmitted at ${atMs} after the deadline ${terms.deadlineMs}`);
      return { ...state, submission: { gradientDigest, sizeBytes, encoding, claimedLoss, computeTimeMs, submittedAtMs: atMs } };
    }
    case 'SubmissionAccepted': {
      const { validatorId, qualityScore, bonusMsat, evidence, atMs } = event.data;
      invariant(bonusMsat >= 0n, 'SubmissionAccepted with a negative bonus');
      return { ...state, acceptance: { validatorId, qualityScore, bonusMsat, evidence, acceptedAtMs: atMs } };
    }
    case 'SubmissionRejected': {
      const { validatorId, reasonCode, evidence, atMs, disputeDeadlineMs } = event.data;
      invariant(disputeDeadlineMs === atMs + terms.disputeWindowMs, 'SubmissionRejected with a dispute deadline off the policy');
      return { ...state, rejection: { validatorId, reasonCode, evidence, rejectedAtMs: atMs, disputeDeadlineMs } };
    }
    case 'RejectionDisputed':
      invariant(state.rejection !== null && event.data.atMs <= state.rejection.disputeDeadlineMs, 'RejectionDisputed after the dispute window');
      return { ...state, dispute: { disputeId: event.data.disputeId, reason: event.data.reason, disputedAtMs: event.data.atMs } };
    case 'ReplayRequested':
      invariant(state.dispute?.disputeId === event.data.disputeId, 'ReplayRequested names another dispute');
      return { ...state, replayJobId: event.data.replayJobId };
    case 'ReplayVerdictRecorded':
      return { ...state, verdict: verdictOf(state, event) };
    case 'DisputeResolved':
      invariant(state.verdict !== null && state.verdict.outcome === event.data.outcome, 'DisputeResolved names another replay outcome');
      invariant(event.data.resolution === resolutionImpliedBy(event.data.outcome), 'DisputeResolved contradicts the replay verdict');
      return { ...state, resolution: { resolution: event.data.resolution, resolvedAtMs: event.data.atMs } };
    case 'AssignmentExpired':
      invariant(event.data.atMs > terms.deadlineMs, `AssignmentExpired at ${event.data.atMs}, before the deadline ${terms.deadlineMs}`);
      return { ...state, expiredAtMs: event.data.atMs };
    default: {
      const unknown: never = event;
      throw new InvariantViolation(`assignment evolve: unknown event type ${(unknown as AssignmentEvent).type}`);
    }
  }
}

function verdictOf(state: AssignmentState, event: ReplayVerdictRecorded): AssignmentState['verdict'] {
  const { replayJobId, outcome, recipe, metric, tolerance, executionProvider, device, durationMs, atMs } = event.data;
  invariant(state.replayJobId === replayJobId, `ReplayVerdictRecorded for job ${replayJobId}, but ${String(state.replayJobId)} was requested`);
  return { replayJobId, outcome, recipe, metric, tolerance, executionProvider, device, durationMs, recordedAtMs: atMs };
}
