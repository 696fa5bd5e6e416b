// Unit tests for the assignment decider: each command's happy path, every stage refusal, time windows, validation and evolve's guards.

import { describe, expect, it } from 'vitest';
import {
  type AssignmentCommand,
  assignmentDecider,
  type AssignmentEvent,
  type AssignmentState,
  type AssignmentStatus,
  streamId,
} from '../../domain/assignment/index.js';
import { MAX_GRADIENT_SIZE_BYTES } from '../../domain/index.js';
import {
  ASSIGNMENT_ID,
  assignmentCommands as c,
  assignWorkData,
  CONTRIBUTOR_ID,
  DEADLINE_MS,
  DISPUTE_WINDOW_MS,
  expectCode,
  expectInvariant,
  given,
  hex64,
  RUN_ID,
  T0,
} from './fixtures.js';

const PATHS: Record<AssignmentStatus, AssignmentCommand[]> = {
  none: [],
  assigned: [c.assign()],
  submitted: [c.assign(), c.submit()],
  accepted: [c.assign(), c.submit(), c.accept()],
  rejected: [c.assign(), c.submit(), c.reject()],
  disputed: [c.assign(), c.submit(), c.reject(), c.dispute()],
  replaying: [c.assign(), c.submit(), c.reject(), c.dispute(), c.requestReplay()],
  replayed: [c.assign(), c.submit(), c.reject(), c.dispute(), c.requestReplay(), c.verdict('match')],
  resolved: [c.assign(), c.submit(), c.reject(), c.dispute(), c.requestReplay(), c.verdict('match'), c.resolve('overturned')],
  expired: [c.assign(), c.expire()],
  forfeited: [c.assign(), c.submit(), c.reject(), c.finalize()],
};

const stateAt = (status: AssignmentStatus): AssignmentState => given(assignmentDecider, PATHS[status]).state;
const decideAt = (status: AssignmentStatus, cmd: AssignmentCommand): AssignmentEvent[] => assignmentDecider.decide(cmd, stateAt(status));
const ref = { assignmentId: ASSIGNMENT_ID, runId: RUN_ID, contributorId: CONTRIBUTOR_ID };

/** The same command with some data fields replaced, including by values of the wrong type. */
function withData(cmd: AssignmentCommand, overrides: object): AssignmentCommand {
  return { ...cmd, data: { ...cmd.data, ...overrides } } as unknown as AssignmentCommand;
}

describe('assignment: the path to each status', () => {
  it.each(Object.keys(PATHS) as AssignmentStatus[])('reaches %s', (status) => {
    expect(stateAt(status).status).toBe(status);
  });
});

describe('assignment: AssignWork', () => {
  it('assigns work with every term in the event', () => {
    expect(decideAt('none', c.assign())).toEqual([{ type: 'WorkAssigned', data: { ...assignWorkData(), atMs: T0 } }]);
  });

  it('treats an identical repeat as a no-op (even later) and refuses other terms', () => {
    expect(decideAt('accepted', c.assign(T0 + 10))).toEqual([]);
    expectCode(() => decideAt('assigned', c.assign(T0, { step: 8 })), 'ASSIGNMENT_EXISTS');
  });

  it('validates deadline, seed, numbers, digests and reward', () => {
    expectCode(() => decideAt('none', c.assign(T0, { deadlineMs: T0 })), 'INVALID_DEADLINE');
    expectCode(() => decideAt('none', c.assign(T0, { deadlineMs: T0 + 8 * 86_400_000 })), 'INVALID_DEADLINE');
    expectCode(() => decideAt('none', c.assign(T0, { seed: '18446744073709551616' })), 'INVALID_SEED');
    expectCode(() => decideAt('none', c.assign(T0, { seed: '007' })), 'INVALID_SEED');
    expectCode(() => decideAt('none', c.assign(T0, { seed: '-1' })), 'INVALID_SEED');
    expectCode(() => decideAt('none', c.assign(T0, { step: 1.5 })), 'INVALID_NUMBER');
    expectCode(() => decideAt('none', c.assign(T0, { batchIndex: -1 })), 'INVALID_NUMBER');
    expectCode(() => decideAt('none', c.assign(T0, { disputeWindowMs: 0 })), 'INVALID_NUMBER');
    expectCode(() => decideAt('none', c.assign(T0, { baseCheckpointDigest: 'x' })), 'INVALID_DIGEST');
    expectCode(() => decideAt('none', c.assign(T0, { baseRewardMsat: 0n })), 'INVALID_AMOUNT');
    expectCode(() => decideAt('none', c.assign(T0, { shardId: '' })), 'INVALID_ID');
  });
});

describe('assignment: SubmitGradient', () => {
  it('records the submission from the assignee before the deadline (inclusive)', () => {
    const [event] = decideAt('assigned', c.submit(DEADLINE_MS));
    expect(event).toEqual({
      type: 'GradientSubmitted',
      data: { ...ref, atMs: DEADLINE_MS, gradientDigest: hex64('grad'), sizeBytes: 4096, encoding: 'dense-f32', claimedLoss: 2.3, computeTimeMs: 900 },
    });
  });

  it('refuses another contributor, late work and repeats', () => {
    expectCode(() => decideAt('assigned', c.submit(T0 + 1, 'mallory')), 'NOT_YOUR_ASSIGNMENT');
    expectCode(() => decideAt('accepted', c.submit(T0 + 1, 'mallory')), 'NOT_YOUR_ASSIGNMENT');
    expectCode(() => decideAt('assigned', c.submit(DEADLINE_MS + 1)), 'DEADLINE_PASSED');
    expectCode(() => decideAt('submitted', c.submit()), 'ALREADY_SUBMITTED');
  });

  it('validates size, encoding, loss and compute time', () => {
    const submit = (overrides: object): AssignmentCommand => withData(c.submit(), overrides);
    expectCode(() => decideAt('assigned', submit({ sizeBytes: 0 })), 'INVALID_GRADIENT_SIZE');
    expectCode(() => decideAt('assigned', submit({ sizeBytes: MAX_GRADIENT_SIZE_BYTES + 1 })), 'INVALID_GRADIENT_SIZE');
    expect(decideAt('assigned', submit({ sizeBytes: MAX_GRADIENT_SIZE_BYTES, encoding: 'sparseloco' }))).toHaveLength(1);
    expectCode(() => decideAt('assigned', submit({ encoding: 'f16' })), 'INVALID_OPTION');
    expectCode(() => decideAt('assigned', submit({ claimedLoss: Number.POSITIVE_INFINITY })), 'INVALID_NUMBER');
    expectCode(() => decideAt('assigned', submit({ computeTimeMs: -1 })), 'INVALID_NUMBER');
    expectCode(() => decideAt('assigned', submit({ gradientDigest: hex64('g').toUpperCase() })), 'INVALID_DIGEST');
  });
});

describe('assignment: AcceptSubmission and RejectSubmission', () => {
  it('accepts with score, bonus, evidence and the base reward', () => {
    expect(decideAt('submitted', c.accept())).toEqual([
      {
        type: 'SubmissionAccepted',
        data: { ...ref, atMs: T0 + 2000, validatorId: 'val-1', qualityScore: 0.8, bonusMsat: 250_000n, evidence: { lossBefore: 2.3, lossAfter: 2.2 }, baseRewardMsat: 1_000_000n },
      },
    ]);
  });

  it('rejects with reason code, evidence and the dispute deadline', () => {
    expect(decideAt('submitted', c.reject())).toEqual([
      {
        type: 'SubmissionRejected',
        data: { ...ref, atMs: T0 + 2000, validatorId: 'val-1', reasonCode: 'NORM_TOO_LARGE', evidence: { norm: 1e9 }, disputeDeadlineMs: T0 + 2000 + DISPUTE_WINDOW_MS },
      },
    ]);
  });

  it('validates score, bonus, reason code and evidence', () => {
    const accept = (overrides: object): AssignmentCommand => withData(c.accept(), overrides);
    expectCode(() => decideAt('submitted', accept({ qualityScore: 1.01 })), 'INVALID_NUMBER');
    expectCode(() => decideAt('submitted', accept({ bonusMsat: -1n })), 'INVALID_AMOUNT');
    expectCode(() => decideAt('submitted', accept({ evidence: [1, 2] })), 'INVALID_OBJECT');
    expectCode(() => decideAt('submitted', accept({ evidence: { x: Number.NaN } })), 'INVALID_OBJECT');
    expectCode(() => decideAt('submitted', accept({ evidence: { feeMsat: 5 } })), 'INVALID_OBJECT');
    expectCode(() => decideAt('submitted', accept({ evidence: JSON.parse('{"__proto__": {"x": 1}}') })), 'INVALID_OBJECT');
    expectCode(() => decideAt('submitted', accept({ evidence: { blob: 'x'.repeat(70_000) } })), 'INVALID_OBJECT');
    let deep: object = { leaf: true };
    for (let i = 0; i < 10; i += 1) deep = { deeper: deep };
    expectCode(() => decideAt('submitted', accept({ evidence: deep })), 'INVALID_OBJECT');
    expect(decideAt('submitted', accept({ evidence: { feeMsat: 5n, nested: [{ ok: null }] } }))).toHaveLength(1);
    const reject = withData(c.reject(), { reasonCode: 'norm too large' });
    expectCode(() => decideAt('submitted', reject), 'INVALID_CODE');
  });

  it('normalises -0 in numbers so the wire round-trip is exact', () => {
    const [event] = decideAt('submitted', withData(c.accept(), { qualityScore: -0, evidence: { delta: -0 } }));
    const data = event?.data as unknown as { qualityScore: number; evidence: { delta: number } };
    expect(Object.is(data.qualityScore, 0)).toBe(true);
    expect(Object.is(data.evidence.delta, 0)).toBe(true);
  });
});

describe('assignment: dispute, replay and resolution', () => {
  it('lets the assignee dispute within the window (inclusive) and not after', () => {
    const rejectedAt = T0 + 2000;
    expect(decideAt('rejected', c.dispute(rejectedAt + DISPUTE_WINDOW_MS))).toEqual([
      { type: 'RejectionDisputed', data: { ...ref, atMs: rejectedAt + DISPUTE_WINDOW_MS, disputeId: 'dsp-1', reason: 'my gradient is honest' } },
    ]);
    expectCode(() => decideAt('rejected', c.dispute(rejectedAt + DISPUTE_WINDOW_MS + 1)), 'DISPUTE_WINDOW_CLOSED');
    expectCode(() => decideAt('rejected', c.dispute(T0 + 3000, 'mallory')), 'NOT_YOUR_ASSIGNMENT');
  });

  it('requests a replay for the open dispute', () => {
    expect(decideAt('disputed', c.requestReplay())).toEqual([{ type: 'ReplayRequested', data: { ...ref, atMs: T0 + 4000, disputeId: 'dsp-1', replayJobId: 'job-1' } }]);
  });

  it('records the verdict of the requested job only, with its full recipe', () => {
    const [event] = decideAt('replaying', c.verdict('mismatch'));
    expect(event?.type).toBe('ReplayVerdictRecorded');
    expect(event?.data).toMatchObject({ ...ref, replayJobId: 'job-1', outcome: 'mismatch', executionProvider: 'cpu', device: 'x86_64', durationMs: 1234 });
    expect((event?.data as { recipe: object }).recipe).toHaveProperty('graphOptimizationLevel', 'disabled');
    expectCode(() => decideAt('replaying', c.verdict('match', T0 + 5000, 'job-2')), 'REPLAY_JOB_MISMATCH');
    expectCode(() => decideAt('replaying', withData(c.verdict('match'), { metric: { relativeL2: 'small' } })), 'INVALID_OBJECT');
    expectCode(() => decideAt('replaying', withData(c.verdict('match'), { metric: {} })), 'INVALID_OBJECT');
    expectCode(() => decideAt('replaying', withData(c.verdict('match'), { durationMs: 86_400_001 })), 'INVALID_NUMBER');
    expectCode(() => decideAt('replaying', withData(c.verdict('match'), { device: '' })), 'INVALID_TEXT');
  });

  it('resolves as the verdict implies: match overturns, mismatch upholds', () => {
    const matched = stateAt('replayed');
    expect(assignmentDecider.decide(c.resolve('overturned'), matched)).toEqual([
      { type: 'DisputeResolved', data: { ...ref, atMs: T0 + 6000, disputeId: 'dsp-1', replayJobId: 'job-1', outcome: 'match', resolution: 'overturned', baseRewardMsat: 1_000_000n } },
    ]);
    expectCode(() => assignmentDecider.decide(c.resolve('upheld'), matched), 'RESOLUTION_CONTRADICTS_VERDICT');
    const mismatched = given(assignmentDecider, [...PATHS.replaying, c.verdict('mismatch')]).state;
    expect(assignmentDecider.decide(c.resolve('upheld'), mismatched)[0]?.data).toMatchObject({ resolution: 'upheld', outcome: 'mismatch' });
    expectCode(() => assignmentDecider.decide(c.resolve('overturned'), mismatched), 'RESOLUTION_CONTRADICTS_VERDICT');
  });
});

describe('assignment: ExpireAssignment', () => {
  it('expires unsubmitted work after the deadline only', () => {
    expect(decideAt('assigned', c.expire())).toEqual([{ type: 'AssignmentExpired', data: { ...ref, atMs: DEADLINE_MS + 1, deadlineMs: DEADLINE_MS } }]);
    expectCode(() => decideAt('assigned', c.expire(DEADLINE_MS)), 'DEADLINE_NOT_PASSED');
  });
});

/** Every stage-bound command against every status: the code a client sees, or null where it runs. */
const MATRIX: Record<string, [AssignmentCommand, Record<AssignmentStatus, string | null>]> = {
  submit: [
    c.submit(),
    { none: 'ASSIGNMENT_NOT_FOUND', assigned: null, submitted: 'ALREADY_SUBMITTED', accepted: 'ALREADY_SUBMITTED', rejected: 'ALREADY_SUBMITTED', disputed: 'ALREADY_REJECTED', replaying: 'ALREADY_REJECTED', replayed: 'ALREADY_REJECTED', resolved: 'ALREADY_REJECTED', expired: 'ASSIGNMENT_EXPIRED', forfeited: 'ALREADY_REJECTED' },
  ],
  accept: [
    c.accept(),
    { none: 'ASSIGNMENT_NOT_FOUND', assigned: 'NOT_SUBMITTED', submitted: null, accepted: 'ALREADY_ACCEPTED', rejected: 'ALREADY_REJECTED', disputed: 'ALREADY_REJECTED', replaying: 'ALREADY_REJECTED', replayed: 'ALREADY_REJECTED', resolved: 'ALREADY_REJECTED', expired: 'ASSIGNMENT_EXPIRED', forfeited: 'ALREADY_REJECTED' },
  ],
  reject: [
    c.reject(),
    { none: 'ASSIGNMENT_NOT_FOUND', assigned: 'NOT_SUBMITTED', submitted: null, accepted: 'ALREADY_ACCEPTED', rejected: 'ALREADY_REJECTED', disputed: 'ALREADY_REJECTED', replaying: 'ALREADY_REJECTED', replayed: 'ALREADY_REJECTED', resolved: 'ALREADY_REJECTED', expired: 'ASSIGNMENT_EXPIRED', forfeited: 'ALREADY_REJECTED' },
  ],
  dispute: [
    c.dispute(),
    { none: 'ASSIGNMENT_NOT_FOUND', assigned: 'NOT_REJECTED', submitted: 'NOT_REJECTED', accepted: 'NOT_REJECTED', rejected: null, disputed: 'ALREADY_DISPUTED', replaying: 'ALREADY_DISPUTED', replayed: 'ALREADY_DISPUTED', resolved: 'ALREADY_DISPUTED', expired: 'ASSIGNMENT_EXPIRED', forfeited: 'DISPUTE_WINDOW_CLOSED' },
  ],
  requestReplay: [
    c.requestReplay(),
    { none: 'ASSIGNMENT_NOT_FOUND', assigned: 'NOT_DISPUTED', submitted: 'NOT_DISPUTED', accepted: 'NOT_DISPUTED', rejected: 'NOT_DISPUTED', disputed: null, replaying: 'REPLAY_ALREADY_REQUESTED', replayed: 'REPLAY_ALREADY_REQUESTED', resolved: 'REPLAY_ALREADY_REQUESTED', expired: 'ASSIGNMENT_EXPIRED', forfeited: 'NOT_DISPUTED' },
  ],
  verdict: [
    c.verdict('match'),
    { none: 'ASSIGNMENT_NOT_FOUND', assigned: 'NOT_DISPUTED', submitted: 'NOT_DISPUTED', accepted: 'NOT_DISPUTED', rejected: 'NOT_DISPUTED', disputed: 'REPLAY_NOT_REQUESTED', replaying: null, replayed: 'VERDICT_ALREADY_RECORDED', resolved: 'VERDICT_ALREADY_RECORDED', expired: 'ASSIGNMENT_EXPIRED', forfeited: 'NOT_DISPUTED' },
  ],
  resolve: [
    c.resolve('overturned'),
    { none: 'ASSIGNMENT_NOT_FOUND', assigned: 'NOT_DISPUTED', submitted: 'NOT_DISPUTED', accepted: 'NOT_DISPUTED', rejected: 'NOT_DISPUTED', disputed: 'REPLAY_VERDICT_MISSING', replaying: 'REPLAY_VERDICT_MISSING', replayed: null, resolved: 'DISPUTE_ALREADY_RESOLVED', expired: 'ASSIGNMENT_EXPIRED', forfeited: 'NOT_DISPUTED' },
  ],
  expire: [
    c.expire(),
    { none: 'ASSIGNMENT_NOT_FOUND', assigned: null, submitted: 'NOT_EXPIRABLE', accepted: 'NOT_EXPIRABLE', rejected: 'NOT_EXPIRABLE', disputed: 'NOT_EXPIRABLE', replaying: 'NOT_EXPIRABLE', replayed: 'NOT_EXPIRABLE', resolved: 'NOT_EXPIRABLE', expired: 'ALREADY_EXPIRED', forfeited: 'NOT_EXPIRABLE' },
  ],
};

describe('assignment: stage refusals', () => {
  const cases = Object.entries(MATRIX).flatMap(([name, [cmd, row]]) =>
    (Object.entries(row) as [AssignmentStatus, string | null][]).map(([status, code]) => ({ name, cmd, status, code })),
  );
  it.each(cases)('$name in $status -> $code', ({ cmd, status, code }) => {
    if (code === null) expect(decideAt(status, cmd)).toHaveLength(1);
    else expectCode(() => decideAt(status, cmd), code);
  });
});

describe('assignment: evolve refuses events that cannot follow', () => {
  const at = (status: AssignmentStatus) => stateAt(status);
  const submitted: AssignmentEvent = {
    type: 'GradientSubmitted',
    data: { ...ref, atMs: T0, gradientDigest: hex64('g'), sizeBytes: 1, encoding: 'dense-f32', claimedLoss: 1, computeTimeMs: 1 },
  };

  it('refuses out-of-order and foreign events', () => {
    expectInvariant(() => assignmentDecider.evolve(at('none'), submitted));
    expectInvariant(() => assignmentDecider.evolve(at('submitted'), submitted));
    expectInvariant(() => assignmentDecider.evolve(at('assigned'), { ...submitted, data: { ...submitted.data, assignmentId: 'other' } }));
    expectInvariant(() => assignmentDecider.evolve(at('assigned'), { ...submitted, data: { ...submitted.data, atMs: DEADLINE_MS + 1 } }));
    expectInvariant(() => assignmentDecider.evolve(at('assigned'), { type: 'toString', data: {} } as unknown as AssignmentEvent));
  });

  it('refuses a resolution contradicting the verdict and an early expiry', () => {
    const resolved = decideAt('replayed', c.resolve('overturned'))[0] as AssignmentEvent & { type: 'DisputeResolved' };
    expectInvariant(() => assignmentDecider.evolve(at('replayed'), { ...resolved, data: { ...resolved.data, resolution: 'upheld' } }));
    expectInvariant(() => assignmentDecider.evolve(at('assigned'), { type: 'AssignmentExpired', data: { ...ref, atMs: DEADLINE_MS, deadlineMs: DEADLINE_MS } }));
  });

  it('refuses a dispute after the window and a verdict for another job', () => {
    const late = { type: 'RejectionDisputed', data: { ...ref, atMs: T0 + 2000 + DISPUTE_WINDOW_MS + 1, disputeId: 'd', reason: 'r' } } as const;
    expectInvariant(() => assignmentDecider.evolve(at('rejected'), late));
    const verdict = decideAt('replaying', c.verdict('match'))[0] as AssignmentEvent & { type: 'ReplayVerdictRecorded' };
    expectInvariant(() => assignmentDecider.evolve(at('replaying'), { ...verdict, data: { ...verdict.data, replayJobId: 'job-9' } }));
  });
});

describe('assignment: streamId', () => {
  it('names the stream assignment-<id>', () => {
    expect(streamId('asg-1')).toBe('assignment-asg-1');
    expectCode(() => streamId('x'.repeat(200)), 'INVALID_ID');
  });
});

describe('assignment: FinalizeRejection', () => {
  it('finalizes an undisputed rejection only after its window, once; a dispute then is refused', () => {
    const rejected = stateAt('rejected');
    const deadlineMs = rejected.rejection!.disputeDeadlineMs;
    expectCode(() => assignmentDecider.decide(c.finalize(deadlineMs), rejected), 'DISPUTE_WINDOW_OPEN');
    const [event] = assignmentDecider.decide(c.finalize(deadlineMs + 1), rejected);
    expect(event).toEqual({ type: 'RejectionFinalized', data: { ...ref, atMs: deadlineMs + 1, disputeDeadlineMs: deadlineMs } });
    const forfeited = assignmentDecider.evolve(rejected, event!);
    expect(forfeited.status).toBe('forfeited');
    expect(assignmentDecider.decide(c.finalize(deadlineMs + 2), forfeited)).toEqual([]);
    expectCode(() => assignmentDecider.decide(c.dispute(deadlineMs), forfeited), 'DISPUTE_WINDOW_CLOSED');
    expectCode(() => assignmentDecider.decide(c.finalize(), stateAt('disputed')), 'NOT_REJECTED');
  });
});

describe('assignment: terms logged before the bonus bound existed', () => {
  it('fold with no bonus bound from now on and the default fee ceiling, while bonuses already granted still fold', () => {
    const { maxBonusMsat: _bound, maxFeeMsat: _fee, ...legacyData } = c.assign().data as AssignmentCommand['data'] & { maxBonusMsat: bigint; maxFeeMsat: bigint };
    const legacy: AssignmentEvent = { type: 'WorkAssigned', data: { ...legacyData, atMs: T0 } } as AssignmentEvent;
    const assigned = assignmentDecider.evolve(assignmentDecider.initialState(), legacy);
    expect(assigned.terms).toMatchObject({ maxBonusMsat: 0n, maxFeeMsat: 5_000n + 1_000_000n * 5_000n / 1_000_000n });
    const submitted = assignmentDecider.evolve(assigned, assignmentDecider.decide(c.submit(), assigned)[0]!);
    // It reserved the base alone: no new bonus is paid from money nobody set aside.
    expectCode(() => assignmentDecider.decide(c.accept(T0 + 2000, 1n), submitted), 'BONUS_EXCEEDS_MAX');
    const granted = { type: 'SubmissionAccepted', data: { ...ref, atMs: T0 + 2000, validatorId: 'v', qualityScore: 1, bonusMsat: 250_000n, evidence: {}, baseRewardMsat: 1_000_000n } } as AssignmentEvent;
    expect(assignmentDecider.evolve(submitted, granted).acceptance?.bonusMsat).toBe(250_000n);
  });
});
