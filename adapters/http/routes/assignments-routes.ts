// Assignments: the coordinator assigns (reserving budget), the contributor posts a hold invoice, a gradient and disputes, and reads its escrow.

import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { loadAggregate } from '../../commands/command-handler.js';
import { assignmentDecider, assignmentStreamId, MAX_INVOICE_REFUSALS, worstCaseCostMsat, type AssignmentCommand, type AssignmentState, type WorkTerms } from '../../../domain/assignment/index.js';
import { contributorDecider, contributorStreamId } from '../../../domain/contributor/index.js';
import { invoiceDecider, invoiceStreamId } from '../../../domain/invoice/index.js';
import { LightningError } from '../../../domain/ports/lightning.js';
import { availableMsat, runDecider, runStreamId } from '../../../domain/run/index.js';
import { loadPayoutInputs } from '../../lightning/payout-inputs.js';
import { MIN_INVOICE_REMAINING_MS, verifyEscrowInvoice, verifyPayoutInvoice } from '../../lightning/verify-escrow-invoice.js';
import { DEFAULT_DISPATCHER_LIMITS, maxFeeMsat as maxFeeMsatFor } from '../../lightning/dispatcher-limits.js';
import { assignmentReservationId, attemptsExhausted, payoutLines, type PayoutLine } from '../../../domain/reactions/payouts.js';
import { authDeps, eventsView, runCommand, runCommandsAtomically, wire, type ApiDeps } from '../api-context.js';
import { asContributor, asStaff, asStaffOrContributor, callerOf, contributorCallerOf, staffCallerOf, type Caller } from '../auth/authenticate.js';
import { MAX_BOLT11_CHARS } from '../hold-invoice-box.js';
import { ApiError } from '../problem.js';
import { withArticle } from '../wording.js';
import { requireRun } from './runs-routes.js';
import { MNIST_SHARD_SIZE } from '../../../replay/data/mnist.js';
import { stepByGraphDigest } from '../../../replay/graphs/reference-steps.js';
import { AppendedEvents, Id, IdempotencyHeaders, Msat, Seed, Sha256Hex } from './schemas.js';

const AssignBody = Type.Object({
  assignmentId: Id,
  runId: Id,
  contributorId: Id,
  step: Type.Integer({ minimum: 0 }),
  shardId: Id,
  batchIndex: Type.Integer({ minimum: 0 }),
  seed: Seed,
  /** Defaults to the run's last published checkpoint (or its initial one). */
  baseCheckpointDigest: Type.Optional(Sha256Hex),
  /** Defaults to the run's reward policy. */
  baseRewardMsat: Type.Optional(Msat),
});
const AssignmentParams = Type.Object({ assignmentId: Id });

export async function assignmentsRoutes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  const api = app.withTypeProvider<TypeBoxTypeProvider>();
  const auth = authDeps(deps);

  const Assigned = Type.Object({ ...AppendedEvents.properties, paymentHash: Sha256Hex });
  api.post('/v1/assignments', { preHandler: asStaff(auth, 'assignments:write'), config: { idempotent: true }, schema: { body: AssignBody, headers: IdempotencyHeaders, response: { 201: Assigned } } }, async (request, reply) => {
    const body = request.body;
    const loadedRun = await loadAggregate(deps.store, runDecider, runStreamId(body.runId));
    const run = loadedRun.state;
    if (run.status === 'none') throw new ApiError(404, 'RUN_NOT_FOUND', `run ${body.runId} does not exist`);
    const contributor = (await loadAggregate(deps.store, contributorDecider, contributorStreamId(body.contributorId))).state;
    if (contributor.status !== 'active') throw new ApiError(422, 'CONTRIBUTOR_NOT_ACTIVE', `contributor ${body.contributorId} is not registered or is suspended`);
    if (!run.shards.some((s) => s.shardId === body.shardId)) throw new ApiError(422, 'UNKNOWN_SHARD', `run ${body.runId} has no shard ${body.shardId}`);
    const baseRewardMsat = body.baseRewardMsat !== undefined ? BigInt(body.baseRewardMsat) : run.rewardPolicy.baseRewardMsat;
    const { maxBonusMsat, maxFeeMsat } = affordableBonus(run, baseRewardMsat);
    const baseCheckpointDigest = body.baseCheckpointDigest ?? run.lastCheckpoint?.digest ?? run.initialCheckpointDigest;
    if (!(await deps.blobs.has(baseCheckpointDigest))) throw new ApiError(422, 'CHECKPOINT_NOT_UPLOADED', `checkpoint ${baseCheckpointDigest} is not stored; upload it (PUT /v1/checkpoints) before assigning work on it`);
    const step = stepByGraphDigest(run.stepGraphDigest);
    if (step && (body.batchIndex + 1) * step.batchSize > MNIST_SHARD_SIZE) {
      throw new ApiError(422, 'BATCH_OUT_OF_RANGE', `shard ${body.shardId} holds ${Math.floor(MNIST_SHARD_SIZE / step.batchSize)} batches of ${step.batchSize}; batchIndex must be below that`);
    }
    const nowMs = deps.nowMs();
    const terms = {
      assignmentId: body.assignmentId,
      runId: body.runId,
      contributorId: body.contributorId,
      step: body.step,
      shardId: body.shardId,
      batchIndex: body.batchIndex,
      baseCheckpointDigest,
      seed: body.seed,
      baseRewardMsat,
      maxBonusMsat,
      maxFeeMsat,
      deadlineMs: nowMs + run.escrowPolicy.assignmentTimeoutMs,
      disputeWindowMs: run.escrowPolicy.disputeWindowMs,
    };
    const loadedAssignment = await loadAggregate(deps.store, assignmentDecider, assignmentStreamId(body.assignmentId));
    const current = loadedAssignment.state;
    // A retry (after a crash lost the first response, say) is the same request: the terms the server derived
    // then (deadline, bonus bound, fee ceiling) stand, so it replays instead of clashing with itself.
    if (current.terms !== null && sameClientTerms(current.terms, body, terms)) Object.assign(terms, serverDerivedTerms(current.terms));
    // A reservation released because it stood without its assignment (a store without atomic appends, a crash) is never reused.
    if (current.terms === null && run.releasedReservationIds.has(assignmentReservationId(body.assignmentId))) {
      throw new ApiError(409, 'RESERVATION_RELEASED', `assignment ${body.assignmentId}'s reservation was released while it had no assignment; assign the work under a new assignmentId`);
    }
    // The terms are decided (without writing) before the budget moves: a refusal must reserve nothing.
    assignmentDecider.decide({ type: 'AssignWork', data: terms, metadata: { nowMs } } as AssignmentCommand, current);
    // Budget for the worst case (base, largest bonus, one fee ceiling per payment), in the same transaction as the
    // assignment where the store allows: what is not reserved is never paid, and no reservation stands alone.
    const reservation = { runId: body.runId, reservationId: assignmentReservationId(body.assignmentId), assignmentId: body.assignmentId, amountMsat: worstCaseCostMsat(terms) };
    const [, outcome] = await runCommandsAtomically(deps, request, [
      // The states just loaded decide the first attempt; a write in between costs a retry, never a wrong reservation.
      { decider: runDecider, streamId: runStreamId(body.runId), type: 'ReserveBudget', data: reservation, loaded: loadedRun },
      { decider: assignmentDecider, streamId: assignmentStreamId(body.assignmentId), type: 'AssignWork', data: terms, loaded: loadedAssignment },
    ]);
    reply.code(201);
    return { status: outcome!.status, events: eventsView(outcome!), paymentHash: deps.preimages.escrow(body.assignmentId).paymentHash };
  });

  api.get('/v1/assignments/:assignmentId', { preHandler: asStaffOrContributor(auth, ['assignments:read', 'assignments:write', 'events:read']), schema: { params: AssignmentParams } }, async (request) => {
    const caller = callerOf(request);
    const assignment = await ownedAssignment(deps, request.params.assignmentId, caller);
    return assignmentView(deps, assignment);
  });

  api.put(
    '/v1/assignments/:assignmentId/invoice',
    { preHandler: asContributor(auth), config: { idempotent: true }, schema: { params: AssignmentParams, headers: IdempotencyHeaders, body: Type.Object({ bolt11: Type.String({ minLength: 10, maxLength: MAX_BOLT11_CHARS }) }) } },
    async (request) => {
      const caller = contributorCallerOf(request);
      const assignment = await ownedAssignment(deps, request.params.assignmentId, caller);
      const terms = assignment.terms!;
      if (assignment.status !== 'assigned' && assignment.status !== 'submitted') throw new ApiError(409, 'ESCROW_NOT_OPEN', `assignment ${terms.assignmentId} is ${assignment.status}; its escrow takes no invoice now (a base reward owed is paid by compensation: see its payouts)`);
      if ((await escrowStatus(deps, terms.assignmentId)) !== 'none') throw new ApiError(409, 'ESCROW_ALREADY_OPEN', `assignment ${terms.assignmentId}'s escrow is already logged with an invoice; a payment hash is paid once`);
      if ((assignment.invoiceRefusals.escrow?.count ?? 0) >= MAX_INVOICE_REFUSALS) throw new ApiError(409, 'INVOICE_REFUSALS_EXHAUSTED', `assignment ${terms.assignmentId} had ${MAX_INVOICE_REFUSALS} hold invoices refused; its base reward is paid by compensation instead`);
      await checkHoldInvoice(deps, terms, request.body.bolt11);
      const posted = await deps.holdInvoices.post(terms.assignmentId, terms.contributorId, request.body.bolt11, deps.nowMs());
      if (!posted.stored) throw new ApiError(409, 'INVOICE_ALREADY_POSTED', `assignment ${terms.assignmentId} already has a hold invoice; a payment hash is paid once`);
      return { assignmentId: terms.assignmentId, paymentHash: deps.preimages.escrow(terms.assignmentId).paymentHash, bolt11: posted.bolt11 };
    },
  );

  api.put(
    '/v1/assignments/:assignmentId/payout-invoices/:kind',
    {
      preHandler: asContributor(auth),
      config: { idempotent: true },
      schema: { params: Type.Object({ assignmentId: Id, kind: Type.Union([Type.Literal('bonus'), Type.Literal('compensation')]) }), headers: IdempotencyHeaders, body: Type.Object({ bolt11: Type.String({ minLength: 10, maxLength: MAX_BOLT11_CHARS }) }) },
    },
    async (request) => {
      const caller = contributorCallerOf(request);
      const assignment = await ownedAssignment(deps, request.params.assignmentId, caller);
      const terms = assignment.terms!;
      const { kind } = request.params;
      const line = (await payoutsOf(deps, assignment)).find((p) => p.kind === kind);
      if (!line) throw new ApiError(409, 'NO_PAYOUT_DUE', `assignment ${terms.assignmentId} owes no ${kind} payout; GET the assignment to see its payouts`);
      if (attemptsExhausted(line)) throw new ApiError(409, 'PAYOUT_ATTEMPTS_EXHAUSTED', `the ${kind} payout of assignment ${terms.assignmentId} went through its ${line.attempts} invoices; it is being abandoned`);
      if (line.state !== 'invoice-needed') {
        throw new ApiError(409, `PAYOUT_${line.state.toUpperCase().replace('-', '_')}`, `the ${kind} payout of assignment ${terms.assignmentId} is ${line.state}; it takes an invoice only while its state is invoice-needed`);
      }
      await checkPayoutInvoice(deps, terms, request.body.bolt11, line.amountMsat);
      const posted = await deps.holdInvoices.postPayout(terms.assignmentId, kind, line.attempts, request.body.bolt11, deps.nowMs());
      if (!posted.stored) throw new ApiError(409, 'INVOICE_ALREADY_POSTED', `assignment ${terms.assignmentId} already has ${withArticle(kind)} invoice waiting to be paid; one invoice per attempt`);
      return wire({ assignmentId: terms.assignmentId, kind, amountMsat: line.amountMsat, attempt: line.attempts });
    },
  );

  api.post(
    '/v1/assignments/:assignmentId/disputes',
    { preHandler: asContributor(auth), config: { idempotent: true }, schema: { params: AssignmentParams, headers: IdempotencyHeaders, body: Type.Object({ disputeId: Id, reason: Type.String({ minLength: 1, maxLength: 2_000 }) }), response: { 201: AppendedEvents } } },
    async (request, reply) => {
      const caller = contributorCallerOf(request);
      const assignment = await ownedAssignment(deps, request.params.assignmentId, caller);
      const outcome = await runCommand<AssignmentCommand, any, any>(deps, request, assignmentDecider, assignmentStreamId(assignment.terms!.assignmentId), 'DisputeRejection', {
        assignmentId: assignment.terms!.assignmentId,
        contributorId: assignment.terms!.contributorId,
        // Named, not spread: a body field must never override what the path and the log decide.
        disputeId: request.body.disputeId,
        reason: request.body.reason,
      });
      reply.code(201);
      return { status: outcome.status, events: eventsView(outcome) };
    },
  );

  api.post(
    '/v1/assignments/:assignmentId/verdicts',
    { preHandler: asStaff(auth, 'verdicts:write'), 
      config: { idempotent: true },
      schema: {
        params: AssignmentParams,
        headers: IdempotencyHeaders,
        body: Type.Union([
          Type.Object({ verdict: Type.Literal('accepted'), qualityScore: Type.Number({ minimum: 0, maximum: 1 }), bonusMsat: Msat, evidence: Type.Record(Type.String(), Type.Unknown()) }),
          Type.Object({ verdict: Type.Literal('rejected'), reasonCode: Type.String({ pattern: '^[A-Z][A-Z0-9_]{1,63}$' }), evidence: Type.Record(Type.String(), Type.Unknown()) }),
        ]),
        response: { 201: AppendedEvents },
      },
    },
    async (request, reply) => {
      const caller = staffCallerOf(request);
      const assignment = await existingAssignment(deps, request.params.assignmentId);
      const assignmentId = assignment.terms!.assignmentId;
      const body = request.body;
      const outcome =
        body.verdict === 'accepted'
          ? await runCommand<AssignmentCommand, any, any>(deps, request, assignmentDecider, assignmentStreamId(assignmentId), 'AcceptSubmission', { assignmentId, validatorId: caller.keyId, qualityScore: body.qualityScore, bonusMsat: BigInt(body.bonusMsat), evidence: body.evidence })
          : await runCommand<AssignmentCommand, any, any>(deps, request, assignmentDecider, assignmentStreamId(assignmentId), 'RejectSubmission', { assignmentId, validatorId: caller.keyId, reasonCode: body.reasonCode, evidence: body.evidence });
      reply.code(201);
      return { status: outcome.status, events: eventsView(outcome) };
    },
  );
}

export async function existingAssignment(deps: ApiDeps, assignmentId: string): Promise<AssignmentState> {
  return (await loadExistingAssignment(deps, assignmentId)).state;
}

/** The assignment's state and revision, for a route that decides on it and hands both to the command (see HandleOptions.loaded). */
export async function loadExistingAssignment(deps: ApiDeps, assignmentId: string): Promise<{ state: AssignmentState; lastRevision: number | null }> {
  const loaded = await loadAggregate(deps.store, assignmentDecider, assignmentStreamId(assignmentId));
  if (!loaded.state.terms) throw new ApiError(404, 'ASSIGNMENT_NOT_FOUND', `assignment ${assignmentId} does not exist`);
  return loaded;
}

/** A contributor sees only their own assignments; to them another's is as absent as a missing one. */
export async function ownedAssignment(deps: ApiDeps, assignmentId: string, caller: Caller): Promise<AssignmentState> {
  return (await loadOwnedAssignment(deps, assignmentId, caller)).state;
}

export async function loadOwnedAssignment(deps: ApiDeps, assignmentId: string, caller: Caller): Promise<{ state: AssignmentState; lastRevision: number | null }> {
  const loaded = await loadExistingAssignment(deps, assignmentId);
  if (caller.kind === 'contributor' && loaded.state.terms!.contributorId !== caller.contributorId) {
    throw new ApiError(404, 'ASSIGNMENT_NOT_FOUND', `assignment ${assignmentId} does not exist`);
  }
  return loaded;
}

async function checkHoldInvoice(deps: ApiDeps, terms: NonNullable<AssignmentState['terms']>, bolt11: string): Promise<void> {
  const run = await requireRun(deps, terms.runId);
  const contributor = (await loadAggregate(deps.store, contributorDecider, contributorStreamId(terms.contributorId))).state;
  if (contributor.status === 'none') throw new ApiError(404, 'CONTRIBUTOR_NOT_FOUND', `contributor ${terms.contributorId} is not registered`);
  try {
    const decoded = await deps.lightning.node.decodeInvoice(bolt11);
    verifyEscrowInvoice(decoded, {
      paymentHash: deps.preimages.escrow(terms.assignmentId).paymentHash,
      amountMsat: terms.baseRewardMsat,
      destination: contributor.lightningNodePubkeyHex,
      nowMs: deps.nowMs(),
      minRemainingMs: MIN_INVOICE_REMAINING_MS,
      maxCltvDelta: run.escrowPolicy.cltvDeltaBlocks,
      network: deps.lightning.network,
    });
  } catch (error) {
    if (error instanceof LightningError && !error.retryable) throw new ApiError(422, error.code, error.message);
    throw error;
  }
}

type AssignRequest = Readonly<{ assignmentId: string; runId: string; contributorId: string; step: number; shardId: string; batchIndex: number; seed: string; baseCheckpointDigest?: string; baseRewardMsat?: string }>;

/** Whether an existing assignment is what this request asks for, on every field the client chose. */
function sameClientTerms(existing: WorkTerms, body: AssignRequest, derived: WorkTerms): boolean {
  return (
    existing.runId === body.runId && existing.contributorId === body.contributorId && existing.step === body.step &&
    existing.shardId === body.shardId && existing.batchIndex === body.batchIndex && existing.seed === body.seed &&
    existing.baseRewardMsat === derived.baseRewardMsat &&
    (body.baseCheckpointDigest === undefined || existing.baseCheckpointDigest === body.baseCheckpointDigest)
  );
}

/** The terms the server chose when it first took the request: a clock, the budget then, the run's last checkpoint then. */
function serverDerivedTerms(existing: WorkTerms): Pick<WorkTerms, 'deadlineMs' | 'disputeWindowMs' | 'maxBonusMsat' | 'maxFeeMsat' | 'baseCheckpointDigest'> {
  const { deadlineMs, disputeWindowMs, maxBonusMsat, maxFeeMsat, baseCheckpointDigest } = existing;
  return { deadlineMs, disputeWindowMs, maxBonusMsat, maxFeeMsat, baseCheckpointDigest };
}

/**
 * A run's bonus bound for a new assignment: the policy's maximum when the uncommitted budget
 * covers it, else none. Either way the reservation covers everything the assignment may pay,
 * and the bound is written into its terms, where the validator's bonus is checked against it.
 */
function affordableBonus(run: Awaited<ReturnType<typeof requireRun>>, baseRewardMsat: bigint): { maxBonusMsat: bigint; maxFeeMsat: bigint } {
  const policyBonusMsat = run.rewardPolicy.maxBonusMsat;
  const maxFeeMsat = maxFeeMsatFor(DEFAULT_DISPATCHER_LIMITS, baseRewardMsat > policyBonusMsat ? baseRewardMsat : policyBonusMsat);
  const full = worstCaseCostMsat({ baseRewardMsat, maxBonusMsat: policyBonusMsat, maxFeeMsat });
  return full <= availableMsat(run) ? { maxBonusMsat: policyBonusMsat, maxFeeMsat } : { maxBonusMsat: 0n, maxFeeMsat };
}

/** The assignment's payouts as its payout state machine says, with each kind's invoice attempts read from the log. */
async function payoutsOf(deps: ApiDeps, assignment: AssignmentState): Promise<PayoutLine[]> {
  const inputs = await loadPayoutInputs(deps.store, deps.db, assignment, deps.preimages.escrow(assignment.terms!.assignmentId).paymentHash);
  return payoutLines(inputs, deps.nowMs());
}

async function escrowStatus(deps: ApiDeps, assignmentId: string): Promise<string> {
  return (await loadAggregate(deps.store, invoiceDecider, invoiceStreamId(deps.preimages.escrow(assignmentId).paymentHash))).state.status;
}

async function checkPayoutInvoice(deps: ApiDeps, terms: NonNullable<AssignmentState['terms']>, bolt11: string, amountMsat: bigint): Promise<void> {
  const contributor = (await loadAggregate(deps.store, contributorDecider, contributorStreamId(terms.contributorId))).state;
  if (contributor.status === 'none') throw new ApiError(404, 'CONTRIBUTOR_NOT_FOUND', `contributor ${terms.contributorId} is not registered`);
  try {
    const decoded = await deps.lightning.node.decodeInvoice(bolt11);
    verifyPayoutInvoice(decoded, { amountMsat, destination: contributor.lightningNodePubkeyHex, nowMs: deps.nowMs(), minRemainingMs: MIN_INVOICE_REMAINING_MS, network: deps.lightning.network });
    // A payment hash backs one payment: never the escrow's, never one already in the log.
    const inLog = (await deps.store.readStream(invoiceStreamId(decoded.paymentHash), { maxCount: 1 })).length > 0;
    if (decoded.paymentHash === deps.preimages.escrow(terms.assignmentId).paymentHash || inLog) {
      throw new ApiError(422, 'INVOICE_HASH_IN_USE', `the invoice's payment hash ${decoded.paymentHash} is already used by another invoice; create a new invoice for the payout`);
    }
  } catch (error) {
    if (error instanceof LightningError && !error.retryable) throw new ApiError(422, error.code, error.message);
    throw error;
  }
}

async function assignmentView(deps: ApiDeps, assignment: AssignmentState): Promise<unknown> {
  const terms = assignment.terms!;
  const { paymentHash } = deps.preimages.escrow(terms.assignmentId);
  const invoice = (await loadAggregate(deps.store, invoiceDecider, invoiceStreamId(paymentHash))).state;
  // The preimage is shown only once released: before that it exists nowhere but in the coordinator's derivation.
  const released = invoice.status === 'releasing' || invoice.status === 'settled';
  return wire({
    assignmentId: terms.assignmentId,
    status: assignment.status,
    terms,
    submission: assignment.submission,
    acceptance: assignment.acceptance,
    rejection: assignment.rejection,
    dispute: assignment.dispute,
    verdict: assignment.verdict,
    resolution: assignment.resolution,
    escrow: {
      paymentHash,
      status: invoice.status,
      bolt11: invoice.terms?.bolt11 ?? (await deps.holdInvoices.posted(terms.assignmentId)),
      preimageHex: released ? invoice.preimageHex : null,
      feeMsat: invoice.status === 'settled' ? invoice.feeMsat : null,
    },
    // Why a contributor's invoices were set aside, per kind: post a fresh one after fixing what the code names.
    invoiceRefusals: assignment.invoiceRefusals,
    // One line per payout the verdicts owe; an invoice-needed line takes PUT …/payout-invoices/:kind.
    payouts: await Promise.all((await payoutsOf(deps, assignment)).map((line) => withPostedInvoice(deps, terms.assignmentId, line))),
    reservation: { reservationId: assignmentReservationId(terms.assignmentId), worstCaseMsat: worstCaseCostMsat(terms) },
  });
}

/** An invoice-needed payout whose invoice the contributor has posted is 'due': the escrow engine will log and pay it. */
async function withPostedInvoice(deps: ApiDeps, assignmentId: string, line: PayoutLine): Promise<PayoutLine> {
  if (line.state !== 'invoice-needed' || line.kind === 'escrow') return line;
  const posted = await deps.holdInvoices.postedPayout(assignmentId, line.kind, line.attempts);
  return posted === null ? line : { ...line, state: 'due', reason: 'invoice posted; waiting for the escrow engine to pay it' };
}

