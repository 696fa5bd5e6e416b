// fast-check generators of valid-ish and invalid command sequences per aggregate, and a runner that folds them while checking evolve.

import fc from 'fast-check';
import type { AssignmentCommand } from '../../domain/assignment/index.js';
import type { ContributorCommand } from '../../domain/contributor/index.js';
import { type Command, type Decider, DomainError, type Event, MAX_GRADIENT_SIZE_BYTES, MAX_MONEY_MSAT } from '../../domain/index.js';
import type { InvoiceCommand } from '../../domain/invoice/index.js';
import type { RunCommand } from '../../domain/run/index.js';
import { assignmentCommands as c, assignWorkData, ESCROW_HASH, ESCROW_PREIMAGE, hex64, nodePubkey, openInvoiceData, openRunData, RUN_ID, T0 } from './fixtures.js';

/** One generated step: how far the clock moves, then a command without its metadata. */
export type Step<C extends Command> = Readonly<{ dtMs: number; type: C['type']; data: C['data'] }>;

function step<C extends Command>(type: C['type'], data: fc.Arbitrary<C['data']>): fc.Arbitrary<Omit<Step<C>, 'dtMs'>> {
  return data.map((d) => ({ type, data: d }));
}

const dtArb = fc.oneof({ weight: 9, arbitrary: fc.integer({ min: 0, max: 1500 }) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 60_000 }) });

export function withTime<C extends Command>(commands: fc.Arbitrary<Omit<Step<C>, 'dtMs'>>): fc.Arbitrary<Step<C>> {
  return fc.tuple(dtArb, commands).map(([dtMs, cmd]) => ({ dtMs, ...cmd }));
}

/** Mostly small positive amounts, sometimes the edges that must be refused or capped. */
export const amountArb = fc.oneof(
  { weight: 12, arbitrary: fc.bigInt({ min: 1n, max: 1500n }) },
  { weight: 1, arbitrary: fc.constantFrom(0n, -1n, MAX_MONEY_MSAT, MAX_MONEY_MSAT + 1n) },
);

// ---- run ----------------------------------------------------------------------------------

const reservationIdArb = fc.constantFrom('r1', 'r2', 'r3', 'r4', 'r5', 'r6', 'r7', 'r8');
/** Smaller than fundings on average, so a run holds several reservations before it runs dry. */
const reserveAmountArb = fc.oneof({ weight: 12, arbitrary: fc.bigInt({ min: 1n, max: 600n }) }, { weight: 1, arbitrary: fc.constantFrom(0n, -1n, MAX_MONEY_MSAT) });

const runCommandArb: fc.Arbitrary<Omit<Step<RunCommand>, 'dtMs'>> = fc.oneof(
  { weight: 1, arbitrary: step<RunCommand>('OpenRun', fc.constantFrom(openRunData(), openRunData({ coordinatorId: 'other' }), openRunData({ shards: [] }))) },
  {
    weight: 6,
    arbitrary: step<RunCommand>(
      'FundRun',
      fc.record({ runId: fc.constant(RUN_ID), fundingId: fc.constantFrom('f1', 'f2', 'f3', 'f4'), source: fc.constantFrom('customer' as const, 'subsidy' as const), amountMsat: amountArb }),
    ),
  },
  {
    weight: 10,
    arbitrary: step<RunCommand>(
      'ReserveBudget',
      fc.record({ runId: fc.constant(RUN_ID), reservationId: reservationIdArb, assignmentId: fc.constantFrom('a1', 'a2'), amountMsat: reserveAmountArb }),
    ),
  },
  {
    weight: 8,
    arbitrary: step<RunCommand>(
      'ReleaseBudget',
      fc.record({ runId: fc.constant(RUN_ID), reservationId: reservationIdArb, spentMsat: fc.bigInt({ min: -1n, max: 700n }) }),
    ),
  },
  {
    weight: 2,
    arbitrary: step<RunCommand>(
      'PublishCheckpoint',
      fc.record({ runId: fc.constant(RUN_ID), checkpointId: fc.constantFrom('c1', 'c2', 'c3'), step: fc.integer({ min: -1, max: 6 }), digest: fc.constantFrom(hex64('a'), hex64('b'), 'nope') }),
    ),
  },
  { weight: 1, arbitrary: step<RunCommand>('CloseRun', fc.record({ runId: fc.constant(RUN_ID), reason: fc.constantFrom('done', ' ') })) },
);

/** A run sequence that usually starts with a valid OpenRun, so the later commands have something to act on. */
export const runStepsArb: fc.Arbitrary<Step<RunCommand>[]> = fc
  .tuple(fc.integer({ min: 0, max: 9 }), fc.array(withTime<RunCommand>(runCommandArb), { minLength: 1, maxLength: 60, size: 'max' }))
  .map(([coin, steps]) => (coin > 0 ? [{ dtMs: 0, type: 'OpenRun', data: openRunData() } as Step<RunCommand>, ...steps] : steps));

// ---- contributor --------------------------------------------------------------------------

const contributorCommandArb: fc.Arbitrary<Omit<Step<ContributorCommand>, 'dtMs'>> = fc.oneof(
  {
    weight: 3,
    arbitrary: step<ContributorCommand>(
      'RegisterContributor',
      fc.record({
        contributorId: fc.constantFrom('alice', 'alice', 'bad id'),
        signingPublicKeyHex: fc.constantFrom(hex64('k1'), hex64('k2'), 'short'),
        lightningNodePubkeyHex: fc.constantFrom(nodePubkey('n1'), nodePubkey('n2'), hex64('n3')),
      }),
    ),
  },
  { weight: 2, arbitrary: step<ContributorCommand>('SuspendContributor', fc.record({ contributorId: fc.constant('alice'), reason: fc.constantFrom('fraud', '') })) },
);

export const contributorStepsArb: fc.Arbitrary<Step<ContributorCommand>[]> = fc.array(withTime<ContributorCommand>(contributorCommandArb), { minLength: 1, maxLength: 20, size: 'max' });

// ---- assignment ---------------------------------------------------------------------------

const ASSIGNMENT = 'asg-1';
const evidenceArb = fc.dictionary(fc.string({ maxLength: 6 }), fc.oneof(fc.integer(), fc.string({ maxLength: 8 }), fc.boolean(), fc.constant(null)), { maxKeys: 3 });

const assignArb = step<AssignmentCommand>(
  'AssignWork',
  fc
    .record({
      deadlineOffsetMs: fc.integer({ min: -10, max: 40_000 }),
      disputeWindowMs: fc.integer({ min: 1, max: 20_000 }),
      baseRewardMsat: amountArb,
      step: fc.constantFrom(7, 7, 7, 8),
      seed: fc.constantFrom('42', '42', '042'),
    })
    .map(({ deadlineOffsetMs, ...rest }) => assignWorkData({ ...rest, deadlineMs: T0 + deadlineOffsetMs })),
);

const submitArb = step<AssignmentCommand>(
  'SubmitGradient',
  fc.record({
    assignmentId: fc.constant(ASSIGNMENT),
    contributorId: fc.constantFrom('alice', 'alice', 'alice', 'mallory'),
    gradientDigest: fc.constantFrom(hex64('g1'), hex64('g2')),
    sizeBytes: fc.oneof({ weight: 5, arbitrary: fc.integer({ min: 1, max: 1 << 20 }) }, { weight: 1, arbitrary: fc.constantFrom(0, MAX_GRADIENT_SIZE_BYTES + 1) }),
    encoding: fc.constantFrom('dense-f32' as const, 'sparseloco' as const),
    claimedLoss: fc.oneof({ weight: 5, arbitrary: fc.double({ min: -10, max: 10, noNaN: true }) }, { weight: 1, arbitrary: fc.constant(Number.NaN) }),
    computeTimeMs: fc.integer({ min: -1, max: 100_000 }),
  }),
);

const acceptArb = step<AssignmentCommand>(
  'AcceptSubmission',
  fc.record({
    assignmentId: fc.constant(ASSIGNMENT),
    validatorId: fc.constant('val-1'),
    qualityScore: fc.double({ min: -0.1, max: 1.1, noNaN: true }),
    bonusMsat: fc.oneof(fc.constant(0n), amountArb),
    evidence: evidenceArb,
  }),
);

const rejectArb = step<AssignmentCommand>(
  'RejectSubmission',
  fc.record({ assignmentId: fc.constant(ASSIGNMENT), validatorId: fc.constant('val-1'), reasonCode: fc.constantFrom('NORM_TOO_LARGE', 'LOSS_WORSE', 'bad code'), evidence: evidenceArb }),
);

const disputeArb = step<AssignmentCommand>(
  'DisputeRejection',
  fc.record({ assignmentId: fc.constant(ASSIGNMENT), contributorId: fc.constantFrom('alice', 'alice', 'mallory'), disputeId: fc.constantFrom('d1', 'd2'), reason: fc.constantFrom('honest work', '') }),
);

const verdictArb = step<AssignmentCommand>(
  'RecordReplayVerdict',
  fc.record({
    assignmentId: fc.constant(ASSIGNMENT),
    replayJobId: fc.constantFrom('job-1', 'job-1', 'job-2'),
    outcome: fc.constantFrom('match' as const, 'mismatch' as const),
    recipe: fc.constant({ stepGraphDigest: hex64('graph'), seed: '42', graphOptimizationLevel: 'disabled' }),
    metric: fc.double({ min: 0, max: 1, noNaN: true }).map((relativeL2) => ({ relativeL2 })),
    tolerance: fc.constant({ relativeL2: 1e-5 }),
    executionProvider: fc.constantFrom('cpu', 'cuda'),
    device: fc.constant('test-device'),
    durationMs: fc.integer({ min: 0, max: 10_000 }),
  }),
);

const assignmentCommandArb: fc.Arbitrary<Omit<Step<AssignmentCommand>, 'dtMs'>> = fc.oneof(
  { weight: 1, arbitrary: assignArb },
  { weight: 3, arbitrary: submitArb },
  { weight: 2, arbitrary: acceptArb },
  { weight: 3, arbitrary: rejectArb },
  { weight: 3, arbitrary: disputeArb },
  { weight: 3, arbitrary: step<AssignmentCommand>('RequestReplay', fc.record({ assignmentId: fc.constant(ASSIGNMENT), replayJobId: fc.constantFrom('job-1', 'job-1', 'job-2') })) },
  { weight: 3, arbitrary: verdictArb },
  { weight: 3, arbitrary: step<AssignmentCommand>('ResolveDispute', fc.record({ assignmentId: fc.constant(ASSIGNMENT), resolution: fc.constantFrom('upheld' as const, 'overturned' as const) })) },
  { weight: 1, arbitrary: step<AssignmentCommand>('ExpireAssignment', fc.record({ assignmentId: fc.constant(ASSIGNMENT) })) },
  { weight: 1, arbitrary: step<AssignmentCommand>('FinalizeRejection', fc.record({ assignmentId: fc.constant(ASSIGNMENT) })) },
  {
    weight: 1,
    arbitrary: step<AssignmentCommand>('RecordInvoiceRefused', fc.record({ assignmentId: fc.constant(ASSIGNMENT), kind: fc.constantFrom('escrow' as const, 'bonus' as const), code: fc.constantFrom('INVOICE_EXPIRES_TOO_SOON', 'bad'), message: fc.constantFrom('expired', '') })),
  },
  {
    weight: 1,
    arbitrary: step<AssignmentCommand>(
      'AbandonPayout',
      fc.record({ assignmentId: fc.constant(ASSIGNMENT), kind: fc.constantFrom('bonus' as const, 'compensation' as const), code: fc.constantFrom('PAYOUT_UNCLAIMED', 'bad'), message: fc.constantFrom('unclaimed', '') }),
    ),
  },
);

/** A valid dispute flow that ends in a resolution agreeing with the verdict; the generator interleaves it with noise. */
function disputeFlow(outcome: 'match' | 'mismatch'): Omit<Step<AssignmentCommand>, 'dtMs'>[] {
  const flow = [c.submit(), c.reject(), c.dispute(), c.requestReplay(), c.verdict(outcome), c.resolve(outcome === 'match' ? 'overturned' : 'upheld')];
  return flow.map(({ type, data }) => ({ type, data }));
}

/**
 * Noise (any command, valid or not) with markers where the planned flow's next command goes, so
 * that the deep stages (replay verdicts, resolutions) are reached often, not once in a blue moon.
 */
export const assignmentStepsArb: fc.Arbitrary<Step<AssignmentCommand>[]> = fc
  .tuple(
    assignArb,
    fc.constantFrom('match' as const, 'mismatch' as const, null),
    fc.array(fc.tuple(dtArb, fc.oneof({ weight: 1, arbitrary: fc.constant(null) }, { weight: 3, arbitrary: assignmentCommandArb })), { minLength: 1, maxLength: 60, size: 'max' }),
  )
  .map(([first, outcome, noise]) => {
    const planned = outcome === null ? [] : disputeFlow(outcome);
    const steps: Step<AssignmentCommand>[] = [{ dtMs: 0, ...first }];
    for (const [dtMs, cmd] of noise) {
      const next = cmd ?? planned.shift();
      if (next !== undefined) steps.push({ dtMs, ...next });
    }
    return steps;
  });

// ---- invoice ------------------------------------------------------------------------------

const openInvoiceArb = step<InvoiceCommand>(
  'OpenInvoice',
  fc
    .record({
      kind: fc.constantFrom('escrow' as const, 'bonus' as const, 'compensation' as const),
      amountMsat: fc.constantFrom(1_000n, 1_000n, 2_000n),
      expiresOffsetMs: fc.integer({ min: -10, max: 40_000 }),
      cltv: fc.constantFrom(800_144, 800_144, null),
    })
    .map(({ kind, amountMsat, expiresOffsetMs, cltv }) =>
      openInvoiceData({ kind, amountMsat, expiresAtMs: T0 + expiresOffsetMs, cltvExpiryHeight: kind === 'escrow' ? cltv : null }),
    ),
);

const preimageArb = fc.constantFrom(ESCROW_PREIMAGE, ESCROW_PREIMAGE, hex64('other'), 'zz');
const invoiceCommandArb: fc.Arbitrary<Omit<Step<InvoiceCommand>, 'dtMs'>> = fc.oneof(
  { weight: 1, arbitrary: openInvoiceArb },
  { weight: 3, arbitrary: step<InvoiceCommand>('MarkInvoiceHeld', fc.constant({ paymentHash: ESCROW_HASH })) },
  {
    weight: 3,
    arbitrary: step<InvoiceCommand>('SettleInvoice', fc.record({ paymentHash: fc.constant(ESCROW_HASH), preimageHex: preimageArb, feeMsat: fc.bigInt({ min: -1n, max: 50n }) })),
  },
  { weight: 2, arbitrary: step<InvoiceCommand>('RequestEscrowRelease', fc.record({ paymentHash: fc.constant(ESCROW_HASH), preimageHex: preimageArb })) },
  { weight: 2, arbitrary: step<InvoiceCommand>('RequestEscrowCancel', fc.record({ paymentHash: fc.constant(ESCROW_HASH), reason: fc.constantFrom('rejected', '') })) },
  { weight: 2, arbitrary: step<InvoiceCommand>('CancelInvoice', fc.record({ paymentHash: fc.constant(ESCROW_HASH), reason: fc.constantFrom('rejected', '') })) },
  { weight: 2, arbitrary: step<InvoiceCommand>('ExpireInvoice', fc.constant({ paymentHash: ESCROW_HASH })) },
  {
    weight: 3,
    arbitrary: step<InvoiceCommand>('RecordPaymentSent', fc.record({ paymentHash: fc.constant(ESCROW_HASH), feeMsat: fc.bigInt({ min: -1n, max: 50n }), preimageHex: preimageArb })),
  },
  { weight: 3, arbitrary: step<InvoiceCommand>('RecordPaymentFailed', fc.record({ paymentHash: fc.constant(ESCROW_HASH), failureCode: fc.constantFrom('NO_ROUTE', 'timeout') })) },
  {
    weight: 1,
    arbitrary: step<InvoiceCommand>('AbandonPayment', fc.record({ paymentHash: fc.constant(ESCROW_HASH), code: fc.constantFrom('INVOICE_EXPIRED', 'x'), message: fc.constantFrom('expired unpaid', '') })),
  },
);

export const invoiceStepsArb: fc.Arbitrary<Step<InvoiceCommand>[]> = fc
  .tuple(openInvoiceArb, fc.array(withTime<InvoiceCommand>(invoiceCommandArb), { minLength: 1, maxLength: 40, size: 'max' }))
  .map(([first, steps]) => [{ dtMs: 0, ...first }, ...steps]);

// ---- runner -------------------------------------------------------------------------------

export type Trace<E extends Event, S> = { state: S; events: E[]; refusals: Map<string, number> };

/**
 * Feeds the steps through decide and evolve. A DomainError is a legal refusal and is counted;
 * anything else (an InvariantViolation from evolve above all) propagates and fails the property.
 * `afterStep` sees the state after every step.
 */
export function runSteps<C extends Command, E extends Event, S>(
  decider: Decider<C, E, S>,
  steps: readonly Step<C>[],
  afterStep: (state: S, events: readonly E[]) => void = () => undefined,
): Trace<E, S> {
  let state = decider.initialState();
  let nowMs = T0;
  const events: E[] = [];
  const refusals = new Map<string, number>();
  for (const { dtMs, type, data } of steps) {
    nowMs += dtMs;
    const command = { type, data, metadata: { nowMs } } as C;
    let decided: E[];
    try {
      decided = decider.decide(command, state);
    } catch (error) {
      if (!(error instanceof DomainError)) throw error;
      refusals.set(error.code, (refusals.get(error.code) ?? 0) + 1);
      continue;
    }
    for (const event of decided) {
      state = decider.evolve(state, event);
      events.push(event);
    }
    afterStep(state, events);
  }
  return { state, events, refusals };
}
