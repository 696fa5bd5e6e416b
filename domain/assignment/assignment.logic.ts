// Assignment aggregate commands: assign, submit, judge, dispute, replay, resolve, expire; each refusal names the stage that blocks it.

import type { Command } from '../decider.js';
import { DomainError, invariant, require_ } from '../errors.js';
import { requireId, requireSha256Hex } from '../ids.js';
import {
  MAX_ASSIGNMENT_TIMEOUT_MS,
  MAX_BATCH_INDEX,
  MAX_COMPUTE_TIME_MS,
  MAX_DISPUTE_WINDOW_MS,
  MAX_EVIDENCE_JSON_CHARS,
  MAX_GRADIENT_SIZE_BYTES,
  MAX_LABEL_CHARS,
  MAX_METRIC_ENTRIES,
  MAX_REASON_CHARS,
  MAX_REPLAY_DURATION_MS,
  MAX_SEED,
  MAX_TIMESTAMP_MS,
  MAX_TRAINING_STEP,
} from '../limits.js';
import { formatMsat, MAX_MONEY_MSAT, requireNonNegativeMsat, requirePositiveMsat } from '../money.js';
import {
  requireCode,
  requireFinite,
  requireInt,
  requireNowMs,
  requireNumberRecord,
  requireOneOf,
  requireText,
  requireWireSafeObject,
  sameContent,
} from '../validate.js';
import {
  type AssignmentEvent,
  type AssignmentState,
  type AssignmentStatus,
  type ContributorInvoiceKind,
  DISPUTE_RESOLUTIONS,
  type DisputeResolution,
  GRADIENT_ENCODINGS,
  REPLAY_OUTCOMES,
  type ReplayVerdict,
  resolutionImpliedBy,
  type Submission,
  type ValidatorAcceptance,
  type ValidatorRejection,
  type WorkTerms,
  worstCaseCostMsat,
} from './assignment.state.js';

type Ref = { assignmentId: string };

export type AssignWork = Command<'AssignWork', WorkTerms>;
export type SubmitGradient = Command<'SubmitGradient', Ref & { contributorId: string } & Submission>;
export type AcceptSubmission = Command<'AcceptSubmission', Ref & ValidatorAcceptance>;
export type RejectSubmission = Command<'RejectSubmission', Ref & ValidatorRejection>;
export type DisputeRejection = Command<'DisputeRejection', Ref & { contributorId: string; disputeId: string; reason: string }>;
export type RequestReplay = Command<'RequestReplay', Ref & { replayJobId: string }>;
export type RecordReplayVerdict = Command<'RecordReplayVerdict', Ref & ReplayVerdict>;
export type ResolveDispute = Command<'ResolveDispute', Ref & { resolution: DisputeResolution }>;
export type ExpireAssignment = Command<'ExpireAssignment', Ref>;
/** Closes an undisputed rejection's window: after it the rejection is final and no dispute is taken. */
export type FinalizeRejection = Command<'FinalizeRejection', Ref>;
export type RecordInvoiceRefused = Command<'RecordInvoiceRefused', Ref & { kind: ContributorInvoiceKind; code: string; message: string }>;
export type AbandonPayout = Command<'AbandonPayout', Ref & { kind: 'bonus' | 'compensation'; code: string; message: string }>;

export type AssignmentCommand =
  | AssignWork
  | SubmitGradient
  | AcceptSubmission
  | RejectSubmission
  | DisputeRejection
  | RequestReplay
  | RecordReplayVerdict
  | ResolveDispute
  | ExpireAssignment
  | FinalizeRejection
  | RecordInvoiceRefused
  | AbandonPayout;

export function decide(command: AssignmentCommand, state: AssignmentState): AssignmentEvent[] {
  const nowMs = requireNowMs(command.metadata);
  switch (command.type) {
    case 'AssignWork':
      return assignWork(command, state, nowMs);
    case 'SubmitGradient':
      return submitGradient(command, state, nowMs);
    case 'AcceptSubmission':
      return acceptSubmission(command, state, nowMs);
    case 'RejectSubmission':
      return rejectSubmission(command, state, nowMs);
    case 'DisputeRejection':
      return disputeRejection(command, state, nowMs);
    case 'RequestReplay':
      return requestReplay(command, state, nowMs);
    case 'RecordReplayVerdict':
      return recordReplayVerdict(command, state, nowMs);
    case 'ResolveDispute':
      return resolveDispute(command, state, nowMs);
    case 'ExpireAssignment':
      return expireAssignment(command, state, nowMs);
    case 'FinalizeRejection':
      return finalizeRejection(command, state, nowMs);
    case 'RecordInvoiceRefused':
      return recordInvoiceRefused(command, state, nowMs);
    case 'AbandonPayout':
      return abandonPayout(command, state, nowMs);
    default: {
      const unknown: never = command;
      throw new DomainError('UNKNOWN_COMMAND', `the assignment aggregate has no command ${JSON.stringify((unknown as AssignmentCommand).type)}`);
    }
  }
}

/** What each stage-bound command needs; null marks the one status it runs in, a code says why any other refuses. */
type StageRule = Readonly<Record<AssignmentStatus, string | null>>;
const COMMON = { none: 'ASSIGNMENT_NOT_FOUND', expired: 'ASSIGNMENT_EXPIRED' } as const;
const AFTER_REJECTION = { disputed: 'ALREADY_REJECTED', replaying: 'ALREADY_REJECTED', replayed: 'ALREADY_REJECTED', resolved: 'ALREADY_REJECTED', forfeited: 'ALREADY_REJECTED' } as const;

const STAGE_RULES = {
  SubmitGradient: { ...COMMON, ...AFTER_REJECTION, assigned: null, submitted: 'ALREADY_SUBMITTED', accepted: 'ALREADY_SUBMITTED', rejected: 'ALREADY_SUBMITTED' },
  AcceptSubmission: { ...COMMON, ...AFTER_REJECTION, assigned: 'NOT_SUBMITTED', submitted: null, accepted: 'ALREADY_ACCEPTED', rejected: 'ALREADY_REJECTED' },
  RejectSubmission: { ...COMMON, ...AFTER_REJECTION, assigned: 'NOT_SUBMITTED', submitted: null, accepted: 'ALREADY_ACCEPTED', rejected: 'ALREADY_REJECTED' },
  DisputeRejection: {
    ...COMMON,
    assigned: 'NOT_REJECTED',
    submitted: 'NOT_REJECTED',
    accepted: 'NOT_REJECTED',
    rejected: null,
    disputed: 'ALREADY_DISPUTED',
    replaying: 'ALREADY_DISPUTED',
    replayed: 'ALREADY_DISPUTED',
    resolved: 'ALREADY_DISPUTED',
    forfeited: 'DISPUTE_WINDOW_CLOSED',
  },
  RequestReplay: {
    ...COMMON,
    assigned: 'NOT_DISPUTED',
    submitted: 'NOT_DISPUTED',
    accepted: 'NOT_DISPUTED',
    rejected: 'NOT_DISPUTED',
    disputed: null,
    replaying: 'REPLAY_ALREADY_REQUESTED',
    replayed: 'REPLAY_ALREADY_REQUESTED',
    resolved: 'REPLAY_ALREADY_REQUESTED',
    forfeited: 'NOT_DISPUTED',
  },
  RecordReplayVerdict: {
    ...COMMON,
    assigned: 'NOT_DISPUTED',
    submitted: 'NOT_DISPUTED',
    accepted: 'NOT_DISPUTED',
    rejected: 'NOT_DISPUTED',
    disputed: 'REPLAY_NOT_REQUESTED',
    replaying: null,
    replayed: 'VERDICT_ALREADY_RECORDED',
    resolved: 'VERDICT_ALREADY_RECORDED',
    forfeited: 'NOT_DISPUTED',
  },
  ResolveDispute: {
    ...COMMON,
    assigned: 'NOT_DISPUTED',
    submitted: 'NOT_DISPUTED',
    accepted: 'NOT_DISPUTED',
    rejected: 'NOT_DISPUTED',
    disputed: 'REPLAY_VERDICT_MISSING',
    replaying: 'REPLAY_VERDICT_MISSING',
    replayed: null,
    resolved: 'DISPUTE_ALREADY_RESOLVED',
    forfeited: 'NOT_DISPUTED',
  },
  ExpireAssignment: {
    none: 'ASSIGNMENT_NOT_FOUND',
    assigned: null,
    submitted: 'NOT_EXPIRABLE',
    accepted: 'NOT_EXPIRABLE',
    rejected: 'NOT_EXPIRABLE',
    disputed: 'NOT_EXPIRABLE',
    replaying: 'NOT_EXPIRABLE',
    replayed: 'NOT_EXPIRABLE',
    resolved: 'NOT_EXPIRABLE',
    expired: 'ALREADY_EXPIRED',
    forfeited: 'NOT_EXPIRABLE',
  },
} as const satisfies Record<Exclude<AssignmentCommand['type'], 'AssignWork' | 'FinalizeRejection' | 'RecordInvoiceRefused' | 'AbandonPayout'>, StageRule>;

/** A person-facing sentence per refusal code: what is wrong and what to do instead. */
const STAGE_ADVICE: Readonly<Record<string, string>> = {
  ASSIGNMENT_NOT_FOUND: 'does not exist; assign the work first',
  ASSIGNMENT_EXPIRED: 'expired at its deadline; nothing more can happen to it',
  ALREADY_SUBMITTED: 'already has a gradient; each assignment takes exactly one submission',
  NOT_SUBMITTED: 'has no gradient yet; wait for the contributor to submit one',
  ALREADY_ACCEPTED: 'was already accepted; a verdict is final',
  ALREADY_REJECTED: 'was already rejected; a verdict is final, and the contributor may dispute it',
  NOT_REJECTED: 'is not rejected; only a rejection can be disputed',
  ALREADY_DISPUTED: 'is already disputed; follow the existing dispute',
  NOT_DISPUTED: 'has no open dispute; replays and resolutions need one',
  REPLAY_ALREADY_REQUESTED: 'already has a replay requested; wait for its verdict',
  REPLAY_NOT_REQUESTED: 'has no replay running; request a replay first',
  VERDICT_ALREADY_RECORDED: 'already has a replay verdict; resolve the dispute',
  REPLAY_VERDICT_MISSING: 'has no replay verdict yet; record the verdict before resolving',
  DISPUTE_ALREADY_RESOLVED: 'already has its dispute resolved; a resolution is final',
  NOT_EXPIRABLE: 'cannot expire: only work still waiting for a submission expires (a submitted gradient is owed a verdict)',
  ALREADY_EXPIRED: 'has already expired',
};

/** Returns the terms when `command` may run in the current stage; otherwise throws the stage's code. */
function requireStage(state: AssignmentState, assignmentId: string, command: keyof typeof STAGE_RULES): WorkTerms {
  const code = STAGE_RULES[command][state.status];
  if (code !== null) {
    throw new DomainError(code, `assignment ${assignmentId} (${state.status}) ${STAGE_ADVICE[code] ?? 'cannot take this command'}`, {
      assignmentId,
      status: state.status,
    });
  }
  return termsOf(state, assignmentId);
}

function termsOf(state: AssignmentState, assignmentId: string): WorkTerms {
  const terms = state.terms;
  require_(terms !== null, 'ASSIGNMENT_NOT_FOUND', `assignment ${assignmentId} ${STAGE_ADVICE.ASSIGNMENT_NOT_FOUND}`, { assignmentId });
  invariant(terms.assignmentId === assignmentId, `command for assignment ${assignmentId} decided against ${terms.assignmentId}`);
  return terms;
}

/** Contributor-side commands may only come from the assignee. */
function requireAssignee(terms: WorkTerms, contributorId: string): void {
  require_(
    terms.contributorId === contributorId,
    'NOT_YOUR_ASSIGNMENT',
    `assignment ${terms.assignmentId} belongs to another contributor; act only on your own assignments`,
    {
      assignmentId: terms.assignmentId,
    },
  );
}

function refOf(terms: WorkTerms, atMs: number) {
  return { assignmentId: terms.assignmentId, runId: terms.runId, contributorId: terms.contributorId, atMs };
}

const SEED_PATTERN = /^(0|[1-9][0-9]{0,19})$/;

function validSeed(seed: unknown): string {
  if (typeof seed === 'string' && SEED_PATTERN.test(seed) && BigInt(seed) <= MAX_SEED) return seed;
  throw new DomainError('INVALID_SEED', `seed must be an unsigned 64-bit integer written as decimal digits; got ${JSON.stringify(seed)}`, { field: 'seed' });
}

function validTerms(data: WorkTerms): WorkTerms {
  requirePositiveMsat(data.baseRewardMsat, 'baseRewardMsat');
  requireNonNegativeMsat(data.maxBonusMsat, 'maxBonusMsat');
  requireNonNegativeMsat(data.maxFeeMsat, 'maxFeeMsat');
  require_(
    worstCaseCostMsat(data) <= MAX_MONEY_MSAT,
    'INVALID_AMOUNT',
    'baseRewardMsat + maxBonusMsat + fee ceilings exceed the 21M BTC cap',
    { field: 'maxBonusMsat' },
  );
  return {
    assignmentId: requireId(data.assignmentId, 'assignmentId'),
    runId: requireId(data.runId, 'runId'),
    contributorId: requireId(data.contributorId, 'contributorId'),
    step: requireInt(data.step, 'step', 0, MAX_TRAINING_STEP),
    shardId: requireId(data.shardId, 'shardId'),
    batchIndex: requireInt(data.batchIndex, 'batchIndex', 0, MAX_BATCH_INDEX),
    baseCheckpointDigest: requireSha256Hex(data.baseCheckpointDigest, 'baseCheckpointDigest'),
    seed: validSeed(data.seed),
    baseRewardMsat: data.baseRewardMsat,
    maxBonusMsat: data.maxBonusMsat,
    maxFeeMsat: data.maxFeeMsat,
    deadlineMs: requireInt(data.deadlineMs, 'deadlineMs', 0, MAX_TIMESTAMP_MS + MAX_ASSIGNMENT_TIMEOUT_MS),
    disputeWindowMs: requireInt(data.disputeWindowMs, 'disputeWindowMs', 1, MAX_DISPUTE_WINDOW_MS),
  };
}

function assignWork(command: AssignWork, state: AssignmentState, nowMs: number): AssignmentEvent[] {
  const terms = validTerms(command.data);
  if (state.terms !== null) {
    // A retried AssignWork is harmless; the same id with other terms would rewrite a contract.
    if (sameContent(state.terms, terms)) return [];
    throw new DomainError('ASSIGNMENT_EXISTS', `assignment ${terms.assignmentId} already exists with other terms; use a new assignmentId`, {
      assignmentId: terms.assignmentId,
    });
  }
  require_(
    terms.deadlineMs > nowMs && terms.deadlineMs - nowMs <= MAX_ASSIGNMENT_TIMEOUT_MS,
    'INVALID_DEADLINE',
    `deadlineMs must be after now and at most ${MAX_ASSIGNMENT_TIMEOUT_MS} ms ahead; got ${terms.deadlineMs - nowMs} ms ahead`,
    { assignmentId: terms.assignmentId },
  );
  return [{ type: 'WorkAssigned', data: { ...terms, atMs: nowMs } }];
}

function submitGradient(command: SubmitGradient, state: AssignmentState, nowMs: number): AssignmentEvent[] {
  const { data } = command;
  const assignmentId = requireId(data.assignmentId, 'assignmentId');
  const contributorId = requireId(data.contributorId, 'contributorId');
  const submission: Submission = {
    gradientDigest: requireSha256Hex(data.gradientDigest, 'gradientDigest'),
    sizeBytes: requireInt(data.sizeBytes, 'sizeBytes', 1, MAX_GRADIENT_SIZE_BYTES, 'INVALID_GRADIENT_SIZE'),
    encoding: requireOneOf(data.encoding, 'encoding', GRADIENT_ENCODINGS),
    claimedLoss: requireFinite(data.claimedLoss, 'claimedLoss'),
    computeTimeMs: requireInt(data.computeTimeMs, 'computeTimeMs', 0, MAX_COMPUTE_TIME_MS),
  };
  requireAssignee(termsOf(state, assignmentId), contributorId);
  const terms = requireStage(state, assignmentId, 'SubmitGradient');
  require_(
    nowMs <= terms.deadlineMs,
    'DEADLINE_PASSED',
    `assignment ${assignmentId} was due at ${terms.deadlineMs} and it is now ${nowMs}; late work is not accepted`,
    {
      assignmentId,
      deadlineMs: terms.deadlineMs,
    },
  );
  return [{ type: 'GradientSubmitted', data: { ...refOf(terms, nowMs), ...submission } }];
}

function acceptSubmission(command: AcceptSubmission, state: AssignmentState, nowMs: number): AssignmentEvent[] {
  const { data } = command;
  const assignmentId = requireId(data.assignmentId, 'assignmentId');
  requireNonNegativeMsat(data.bonusMsat, 'bonusMsat');
  const acceptance: ValidatorAcceptance = {
    validatorId: requireId(data.validatorId, 'validatorId'),
    qualityScore: requireFinite(data.qualityScore, 'qualityScore', 0, 1),
    bonusMsat: data.bonusMsat,
    evidence: requireWireSafeObject(data.evidence, 'evidence', MAX_EVIDENCE_JSON_CHARS),
  };
  const terms = requireStage(state, assignmentId, 'AcceptSubmission');
  // The bonus was reserved at assignment up to this bound; anything above it has no budget behind it.
  require_(
    acceptance.bonusMsat <= terms.maxBonusMsat,
    'BONUS_EXCEEDS_MAX',
    `bonus ${formatMsat(acceptance.bonusMsat)} msat exceeds assignment ${assignmentId}'s reserved maximum of ${formatMsat(terms.maxBonusMsat)} msat; pay at most that`,
    { assignmentId, maxBonusMsat: formatMsat(terms.maxBonusMsat) },
  );
  return [{ type: 'SubmissionAccepted', data: { ...refOf(terms, nowMs), ...acceptance, baseRewardMsat: terms.baseRewardMsat } }];
}

function rejectSubmission(command: RejectSubmission, state: AssignmentState, nowMs: number): AssignmentEvent[] {
  const { data } = command;
  const assignmentId = requireId(data.assignmentId, 'assignmentId');
  const rejection: ValidatorRejection = {
    validatorId: requireId(data.validatorId, 'validatorId'),
    reasonCode: requireCode(data.reasonCode, 'reasonCode'),
    evidence: requireWireSafeObject(data.evidence, 'evidence', MAX_EVIDENCE_JSON_CHARS),
  };
  const terms = requireStage(state, assignmentId, 'RejectSubmission');
  return [{ type: 'SubmissionRejected', data: { ...refOf(terms, nowMs), ...rejection, disputeDeadlineMs: nowMs + terms.disputeWindowMs } }];
}

function disputeRejection(command: DisputeRejection, state: AssignmentState, nowMs: number): AssignmentEvent[] {
  const { data } = command;
  const assignmentId = requireId(data.assignmentId, 'assignmentId');
  const contributorId = requireId(data.contributorId, 'contributorId');
  const disputeId = requireId(data.disputeId, 'disputeId');
  const reason = requireText(data.reason, 'reason', MAX_REASON_CHARS);
  requireAssignee(termsOf(state, assignmentId), contributorId);
  const terms = requireStage(state, assignmentId, 'DisputeRejection');
  const deadlineMs = state.rejection?.disputeDeadlineMs ?? 0;
  require_(
    nowMs <= deadlineMs,
    'DISPUTE_WINDOW_CLOSED',
    `the dispute window for assignment ${assignmentId} closed at ${deadlineMs}; the rejection stands`,
    {
      assignmentId,
      disputeDeadlineMs: deadlineMs,
    },
  );
  return [{ type: 'RejectionDisputed', data: { ...refOf(terms, nowMs), disputeId, reason } }];
}

function requestReplay(command: RequestReplay, state: AssignmentState, nowMs: number): AssignmentEvent[] {
  const assignmentId = requireId(command.data.assignmentId, 'assignmentId');
  const replayJobId = requireId(command.data.replayJobId, 'replayJobId');
  const terms = requireStage(state, assignmentId, 'RequestReplay');
  invariant(state.dispute !== null, `disputed assignment ${assignmentId} without a dispute record`);
  return [{ type: 'ReplayRequested', data: { ...refOf(terms, nowMs), disputeId: state.dispute.disputeId, replayJobId } }];
}

function validVerdict(data: ReplayVerdict): ReplayVerdict {
  return {
    replayJobId: requireId(data.replayJobId, 'replayJobId'),
    outcome: requireOneOf(data.outcome, 'outcome', REPLAY_OUTCOMES),
    recipe: requireWireSafeObject(data.recipe, 'recipe', MAX_EVIDENCE_JSON_CHARS),
    metric: requireNumberRecord(data.metric, 'metric', MAX_METRIC_ENTRIES),
    tolerance: requireWireSafeObject(data.tolerance, 'tolerance', MAX_EVIDENCE_JSON_CHARS),
    executionProvider: requireText(data.executionProvider, 'executionProvider', MAX_LABEL_CHARS),
    device: requireText(data.device, 'device', MAX_LABEL_CHARS),
    durationMs: requireInt(data.durationMs, 'durationMs', 0, MAX_REPLAY_DURATION_MS),
  };
}

function recordReplayVerdict(command: RecordReplayVerdict, state: AssignmentState, nowMs: number): AssignmentEvent[] {
  const assignmentId = requireId(command.data.assignmentId, 'assignmentId');
  const verdict = validVerdict(command.data);
  const terms = requireStage(state, assignmentId, 'RecordReplayVerdict');
  require_(
    state.replayJobId === verdict.replayJobId,
    'REPLAY_JOB_MISMATCH',
    `replay job ${verdict.replayJobId} is not the one requested for assignment ${assignmentId} (${String(state.replayJobId)}); report the requested job's verdict`,
    {
      assignmentId,
      replayJobId: verdict.replayJobId,
    },
  );
  return [{ type: 'ReplayVerdictRecorded', data: { ...refOf(terms, nowMs), ...verdict } }];
}

function resolveDispute(command: ResolveDispute, state: AssignmentState, nowMs: number): AssignmentEvent[] {
  const assignmentId = requireId(command.data.assignmentId, 'assignmentId');
  const resolution = requireOneOf(command.data.resolution, 'resolution', DISPUTE_RESOLUTIONS);
  const terms = requireStage(state, assignmentId, 'ResolveDispute');
  const { dispute, verdict } = state;
  invariant(dispute !== null && verdict !== null, `replayed assignment ${assignmentId} without dispute or verdict`);
  const implied = resolutionImpliedBy(verdict.outcome);
  require_(
    resolution === implied,
    'RESOLUTION_CONTRADICTS_VERDICT',
    `the replay verdict was ${verdict.outcome}, which means the dispute is ${implied}; resolve it as ${implied}`,
    {
      assignmentId,
      outcome: verdict.outcome,
    },
  );
  const data = { disputeId: dispute.disputeId, replayJobId: verdict.replayJobId, outcome: verdict.outcome, resolution, baseRewardMsat: terms.baseRewardMsat };
  return [{ type: 'DisputeResolved', data: { ...refOf(terms, nowMs), ...data } }];
}

function expireAssignment(command: ExpireAssignment, state: AssignmentState, nowMs: number): AssignmentEvent[] {
  const assignmentId = requireId(command.data.assignmentId, 'assignmentId');
  const terms = requireStage(state, assignmentId, 'ExpireAssignment');
  require_(
    nowMs > terms.deadlineMs,
    'DEADLINE_NOT_PASSED',
    `assignment ${assignmentId} is due at ${terms.deadlineMs}; it can expire only after that`,
    {
      assignmentId,
      deadlineMs: terms.deadlineMs,
    },
  );
  return [{ type: 'AssignmentExpired', data: { ...refOf(terms, nowMs), deadlineMs: terms.deadlineMs } }];
}

const CONTRIBUTOR_INVOICE_KINDS = ['escrow', 'bonus', 'compensation'] as const satisfies readonly ContributorInvoiceKind[];

/**
 * How often a contributor's invoices of one kind may be refused. Past it the escrow is given up
 * (the base is then paid by compensation) or the payout is abandoned, so one contributor's bad
 * invoices cannot keep a reservation open for ever.
 */
export const MAX_INVOICE_REFUSALS = 5;

function recordInvoiceRefused(command: RecordInvoiceRefused, state: AssignmentState, nowMs: number): AssignmentEvent[] {
  const assignmentId = requireId(command.data.assignmentId, 'assignmentId');
  const kind = requireOneOf(command.data.kind, 'kind', CONTRIBUTOR_INVOICE_KINDS);
  const code = requireCode(command.data.code, 'code');
  const message = requireText(command.data.message, 'message', MAX_REASON_CHARS);
  const terms = termsOf(state, assignmentId);
  require_(
    (state.invoiceRefusals[kind]?.count ?? 0) < MAX_INVOICE_REFUSALS,
    'INVOICE_REFUSALS_EXHAUSTED',
    `assignment ${assignmentId} already had ${MAX_INVOICE_REFUSALS} ${kind} invoices refused; no more are taken`,
    { assignmentId, kind },
  );
  return [{ type: 'ContributorInvoiceRefused', data: { ...refOf(terms, nowMs), kind, code, message } }];
}

function abandonPayout(command: AbandonPayout, state: AssignmentState, nowMs: number): AssignmentEvent[] {
  const assignmentId = requireId(command.data.assignmentId, 'assignmentId');
  const kind = requireOneOf(command.data.kind, 'kind', ['bonus', 'compensation'] as const);
  const code = requireCode(command.data.code, 'code');
  const message = requireText(command.data.message, 'message', MAX_REASON_CHARS);
  const terms = termsOf(state, assignmentId);
  if (state.abandonedPayouts[kind] !== undefined) return [];
  require_(
    kind === 'compensation' || (state.acceptance?.bonusMsat ?? 0n) > 0n,
    'NO_PAYOUT_DUE',
    `assignment ${assignmentId} owes no bonus; nothing to abandon`,
    { assignmentId },
  );
  return [{ type: 'PayoutAbandoned', data: { ...refOf(terms, nowMs), kind, code, message } }];
}

function finalizeRejection(command: FinalizeRejection, state: AssignmentState, nowMs: number): AssignmentEvent[] {
  const assignmentId = requireId(command.data.assignmentId, 'assignmentId');
  const terms = termsOf(state, assignmentId);
  if (state.status === 'forfeited') return [];
  require_(state.status === 'rejected', 'NOT_REJECTED', `assignment ${assignmentId} (${state.status}) has no undisputed rejection to finalize`, { assignmentId, status: state.status });
  const deadlineMs = state.rejection?.disputeDeadlineMs ?? 0;
  require_(nowMs > deadlineMs, 'DISPUTE_WINDOW_OPEN', `assignment ${assignmentId}'s dispute window is open until ${deadlineMs}; a rejection is final only after it`, { assignmentId, disputeDeadlineMs: deadlineMs });
  return [{ type: 'RejectionFinalized', data: { ...refOf(terms, nowMs), disputeDeadlineMs: deadlineMs } }];
}
