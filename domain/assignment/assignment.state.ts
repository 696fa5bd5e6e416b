// Assignment aggregate state: one unit of work from assignment through verdict, dispute and replay, and evolve guarding each transition.

import type { Event } from '../decider.js';
import { invariant, InvariantViolation } from '../errors.js';
import { routingFeeLimitMsat } from '../money.js';

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
  /** Rejected, and the dispute window closed undisputed: final, ordered against any dispute by the log. */
  'forfeited',
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
  /** Largest quality bonus this assignment may pay; reserved with the base at assignment. */
  maxBonusMsat: bigint;
  /** Routing-fee ceiling for each payment the assignment makes (escrow or compensation, and bonus). */
  maxFeeMsat: bigint;
  deadlineMs: number;
  disputeWindowMs: number;
}>;

/**
 * What an assignment can cost the run at most: the base and the largest bonus, plus one
 * routing-fee ceiling per payment. The base goes out once (escrow settled or one compensation:
 * a failed payment pays no fee), the bonus once. This is what is reserved at assignment.
 */
export function worstCaseCostMsat(terms: Pick<WorkTerms, 'baseRewardMsat' | 'maxBonusMsat' | 'maxFeeMsat'>): bigint {
  const payments = terms.maxBonusMsat > 0n ? 2n : 1n;
  return terms.baseRewardMsat + terms.maxBonusMsat + payments * terms.maxFeeMsat;
}

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
/** The dispute window of a rejection closed with no dispute: the rejection is final, and a later dispute is refused. */
export type RejectionFinalized = Event<'RejectionFinalized', AssignmentRef & { disputeDeadlineMs: number }>;
/** Whom a contributor's invoice is for: the escrow hold invoice, or a bonus or compensation payout. */
export type ContributorInvoiceKind = 'escrow' | 'bonus' | 'compensation';
/** A contributor's invoice failed the coordinator's check (wrong terms, expiring): it was set aside and they may post a fresh one. */
export type ContributorInvoiceRefused = Event<'ContributorInvoiceRefused', AssignmentRef & { kind: ContributorInvoiceKind; code: string; message: string }>;
/** A payout the verdicts owed was given up for good (unclaimed, or every invoice failed); its budget is released. */
export type PayoutAbandoned = Event<'PayoutAbandoned', AssignmentRef & { kind: 'bonus' | 'compensation'; code: string; message: string }>;

export type AssignmentEvent =
  | WorkAssigned
  | GradientSubmitted
  | SubmissionAccepted
  | SubmissionRejected
  | RejectionDisputed
  | ReplayRequested
  | ReplayVerdictRecorded
  | DisputeResolved
  | AssignmentExpired
  | RejectionFinalized
  | ContributorInvoiceRefused
  | PayoutAbandoned;

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
  /** Contributor invoices refused so far per kind, with the last reason, shown to the contributor. */
  invoiceRefusals: Readonly<Partial<Record<ContributorInvoiceKind, Readonly<{ count: number; code: string; message: string; atMs: number }>>>>;
  abandonedPayouts: Readonly<Partial<Record<'bonus' | 'compensation', Readonly<{ code: string; message: string; atMs: number }>>>>;
  /** Assigned before WorkAssigned carried a bonus bound: its terms' bound is 0 from now on. */
  legacyTerms: boolean;
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
  invoiceRefusals: {},
  abandonedPayouts: {},
  legacyTerms: false,
});

/** Money-side events: they record what happened to an assignment's payments and leave its status alone. */
type MoneyEvent = ContributorInvoiceRefused | PayoutAbandoned;
const MONEY_EVENTS: ReadonlySet<string> = new Set<MoneyEvent['type']>(['ContributorInvoiceRefused', 'PayoutAbandoned']);

/** The status each event requires before it, and the status it leaves. */
const TRANSITIONS: Readonly<Record<Exclude<AssignmentEvent, MoneyEvent>['type'], readonly [AssignmentStatus, AssignmentStatus]>> = {
  WorkAssigned: ['none', 'assigned'],
  GradientSubmitted: ['assigned', 'submitted'],
  SubmissionAccepted: ['submitted', 'accepted'],
  SubmissionRejected: ['submitted', 'rejected'],
  RejectionDisputed: ['rejected', 'disputed'],
  ReplayRequested: ['disputed', 'replaying'],
  ReplayVerdictRecorded: ['replaying', 'replayed'],
  DisputeResolved: ['replayed', 'resolved'],
  AssignmentExpired: ['assigned', 'expired'],
  RejectionFinalized: ['rejected', 'forfeited'],
};

export function evolve(state: AssignmentState, event: AssignmentEvent): AssignmentState {
  if (MONEY_EVENTS.has(event.type)) return applyMoneyEvent(state, event as MoneyEvent);
  // hasOwn, not a plain lookup: an unknown type such as "toString" must not find Object.prototype.
  const transition = Object.hasOwn(TRANSITIONS, event.type) ? TRANSITIONS[event.type as keyof typeof TRANSITIONS] : undefined;
  if (transition === undefined) throw new InvariantViolation(`assignment evolve: unknown event type ${(event as { type: string }).type}`);
  const [from, to] = transition;
  invariant(state.status === from, `${event.type} cannot follow a ${state.status} assignment (needs ${from})`);
  if (event.type === 'WorkAssigned') {
    const { atMs, ...terms } = event.data;
    // Events written before the bonus bound existed carry neither field. They reserved the base alone, so from
    // now on they may pay no bonus (bound 0) and the default fee ceiling; bonuses they were already granted still fold.
    const legacyTerms = terms.maxBonusMsat === undefined;
    const maxBonusMsat = terms.maxBonusMsat ?? 0n;
    const maxFeeMsat = terms.maxFeeMsat ?? routingFeeLimitMsat(terms.baseRewardMsat);
    return { ...state, status: to, terms: { ...terms, maxBonusMsat, maxFeeMsat }, legacyTerms, assignedAtMs: atMs };
  }
  const terms = termsFor(state, event as Exclude<AssignmentEvent, WorkAssigned>);
  return { ...applyStage(state, terms, event as Exclude<AssignmentEvent, WorkAssigned | MoneyEvent>), status: to };
}

function termsFor(state: AssignmentState, event: Exclude<AssignmentEvent, WorkAssigned>): WorkTerms {
  const terms = state.terms;
  invariant(terms !== null, `${event.type} on an assignment without terms`);
  const { assignmentId, runId, contributorId } = event.data;
  invariant(
    assignmentId === terms.assignmentId && runId === terms.runId && contributorId === terms.contributorId,
    `${event.type} for assignment ${assignmentId} folded into ${terms.assignmentId}`,
  );
  return terms;
}

function applyMoneyEvent(state: AssignmentState, event: MoneyEvent): AssignmentState {
  termsFor(state, event);
  if (event.type === 'ContributorInvoiceRefused') {
    const { kind, code, message, atMs } = event.data;
    const count = (state.invoiceRefusals[kind]?.count ?? 0) + 1;
    return { ...state, invoiceRefusals: { ...state.invoiceRefusals, [kind]: { count, code, message, atMs } } };
  }
  const { kind, code, message, atMs } = event.data;
  invariant(state.abandonedPayouts[kind] === undefined, `PayoutAbandoned: the ${kind} payout was already abandoned`);
  invariant(kind === 'compensation' || (state.acceptance?.bonusMsat ?? 0n) > 0n, 'PayoutAbandoned: no bonus was owed');
  return { ...state, abandonedPayouts: { ...state.abandonedPayouts, [kind]: { code, message, atMs } } };
}

function applyStage(state: AssignmentState, terms: WorkTerms, event: Exclude<AssignmentEvent, WorkAssigned | MoneyEvent>): AssignmentState {
  switch (event.type) {
    case 'GradientSubmitted': {
      const { gradientDigest, sizeBytes, encoding, claimedLoss, computeTimeMs, atMs } = event.data;
      invariant(atMs <= terms.deadlineMs, `GradientSubmitted at ${atMs} after the deadline ${terms.deadlineMs}`);
      return { ...state, submission: { gradientDigest, sizeBytes, encoding, claimedLoss, computeTimeMs, submittedAtMs: atMs } };
    }
    case 'SubmissionAccepted': {
      const { validatorId, qualityScore, bonusMsat, evidence, atMs } = event.data;
      invariant(bonusMsat >= 0n, 'SubmissionAccepted with a negative bonus');
      invariant(bonusMsat <= terms.maxBonusMsat || state.legacyTerms, `SubmissionAccepted bonus ${bonusMsat} exceeds the reserved ${terms.maxBonusMsat}`);
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
    case 'RejectionFinalized':
      invariant(state.rejection !== null && event.data.atMs > state.rejection.disputeDeadlineMs, 'RejectionFinalized inside the dispute window');
      return state;
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
