// Assignments: the coordinator assigns (reserving budget), the contributor posts a hold invoice, a gradient and disputes, and reads its escrow.

import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { loadAggregate } from '../../commands/command-handler.js';
import { assignmentDecider, assignmentStreamId, type AssignmentCommand, type AssignmentState } from '../../../domain/assignment/index.js';
import { contributorDecider, contributorStreamId } from '../../../domain/contributor/index.js';
import { invoiceDecider, invoiceStreamId } from '../../../domain/invoice/index.js';
import { LightningError } from '../../../domain/ports/lightning.js';
import { runDecider, runStreamId, type RunCommand } from '../../../domain/run/index.js';
import { verifyEscrowInvoice } from '../../lightning/verify-escrow-invoice.js';
import { authDeps, eventsView, runCommand, wire, type ApiDeps } from '../api-context.js';
import { asContributor, asStaff, asStaffOrContributor, callerOf, contributorCallerOf, staffCallerOf, type Caller } from '../auth/authenticate.js';
import { MAX_BOLT11_CHARS } from '../hold-invoice-box.js';
import { ApiError } from '../problem.js';
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
/** The escrow keeps a minute of slack so the HTLC can arrive before the invoice expires. */
const MIN_INVOICE_REMAINING_MS = 60_000;

export async function assignmentsRoutes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  const api = app.withTypeProvider<TypeBoxTypeProvider>();
  const auth = authDeps(deps);

  const Assigned = Type.Object({ ...AppendedEvents.properties, paymentHash: Sha256Hex });
  api.post('/v1/assignments', { preHandler: asStaff(auth, 'assignments:write'), config: { idempotent: true }, schema: { body: AssignBody, headers: IdempotencyHeaders, response: { 201: Assigned } } }, async (request, reply) => {
    const body = request.body;
    const run = await requireRun(deps, body.runId);
    const contributor = (await loadAggregate(deps.store, contributorDecider, contributorStreamId(body.contributorId))).state;
    if (contributor.status !== 'active') throw new ApiError(422, 'CONTRIBUTOR_NOT_ACTIVE', `contributor ${body.contributorId} is not registered or is suspended`);
    if (!run.shards.some((s) => s.shardId === body.shardId)) throw new ApiError(422, 'UNKNOWN_SHARD', `run ${body.runId} has no shard ${body.shardId}`);
    const baseRewardMsat = body.baseRewardMsat !== undefined ? BigInt(body.baseRewardMsat) : run.rewardPolicy.baseRewardMsat;
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
      deadlineMs: nowMs + run.escrowPolicy.assignmentTimeoutMs,
      disputeWindowMs: run.escrowPolicy.disputeWindowMs,
    };
    // The terms are decided (without writing) before the budget moves: a refusal must reserve nothing.
    const current = (await loadAggregate(deps.store, assignmentDecider, assignmentStreamId(body.assignmentId))).state;
    assignmentDecider.decide({ type: 'AssignWork', data: terms, metadata: { nowMs } } as AssignmentCommand, current);
    // Budget first: an assignment the uncommitted budget cannot cover is refused, not reported later.
    await runCommand<RunCommand, any, any>(deps, request, runDecider, runStreamId(body.runId), 'ReserveBudget', { runId: body.runId, reservationId: `rsv-${body.assignmentId}`, assignmentId: body.assignmentId, amountMsat: baseRewardMsat });
    const outcome = await runCommand<AssignmentCommand, any, any>(deps, request, assignmentDecider, assignmentStreamId(body.assignmentId), 'AssignWork', terms);
    reply.code(201);
    return { status: outcome.status, events: eventsView(outcome), paymentHash: deps.preimages.escrow(body.assignmentId).paymentHash };
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
      if (assignment.status !== 'assigned' && assignment.status !== 'submitted') throw new ApiError(409, 'ESCROW_NOT_OPEN', `assignment ${terms.assignmentId} is ${assignment.status}; its escrow takes no invoice now`);
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
      const due = payoutsDue(deps, assignment, await escrowStatus(deps, terms.assignmentId)).find((p) => p.kind === kind);
      if (!due) throw new ApiError(409, 'NO_PAYOUT_DUE', `assignment ${terms.assignmentId} owes no ${kind} payout; GET the assignment to see what is due`);
      await checkPayoutInvoice(deps, terms, request.body.bolt11, due.amountMsat);
      const posted = await deps.holdInvoices.postPayout(terms.assignmentId, kind, request.body.bolt11, deps.nowMs());
      if (!posted.stored) throw new ApiError(409, 'INVOICE_ALREADY_POSTED', `assignment ${terms.assignmentId} already has a ${kind} invoice; a payout is paid once`);
      return wire({ assignmentId: terms.assignmentId, kind, amountMsat: due.amountMsat });
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
        ...request.body,
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
  const { state } = await loadAggregate(deps.store, assignmentDecider, assignmentStreamId(assignmentId));
  if (!state.terms) throw new ApiError(404, 'ASSIGNMENT_NOT_FOUND', `assignment ${assignmentId} does not exist`);
  return state;
}

/** A contributor sees only their own assignments; to them another's is as absent as a missing one. */
export async function ownedAssignment(deps: ApiDeps, assignmentId: string, caller: Caller): Promise<AssignmentState> {
  const assignment = await existingAssignment(deps, assignmentId);
  if (caller.kind === 'contributor' && assignment.terms!.contributorId !== caller.contributorId) {
    throw new ApiError(404, 'ASSIGNMENT_NOT_FOUND', `assignment ${assignmentId} does not exist`);
  }
  return assignment;
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

/** Payouts the verdicts owe beyond the escrow: a bonus on acceptance, compensation for an overturn the escrow can no longer pay. */
function payoutsDue(deps: ApiDeps, assignment: AssignmentState, escrow: string): { kind: 'bonus' | 'compensation'; amountMsat: bigint }[] {
  const due: { kind: 'bonus' | 'compensation'; amountMsat: bigint }[] = [];
  if (assignment.acceptance && assignment.acceptance.bonusMsat > 0n) due.push({ kind: 'bonus', amountMsat: assignment.acceptance.bonusMsat });
  if (assignment.resolution?.resolution === 'overturned' && !['held', 'releasing', 'settled'].includes(escrow)) due.push({ kind: 'compensation', amountMsat: assignment.terms!.baseRewardMsat });
  return due;
}

async function escrowStatus(deps: ApiDeps, assignmentId: string): Promise<string> {
  return (await loadAggregate(deps.store, invoiceDecider, invoiceStreamId(deps.preimages.escrow(assignmentId).paymentHash))).state.status;
}

async function checkPayoutInvoice(deps: ApiDeps, terms: NonNullable<AssignmentState['terms']>, bolt11: string, amountMsat: bigint): Promise<void> {
  const contributor = (await loadAggregate(deps.store, contributorDecider, contributorStreamId(terms.contributorId))).state;
  if (contributor.status === 'none') throw new ApiError(404, 'CONTRIBUTOR_NOT_FOUND', `contributor ${terms.contributorId} is not registered`);
  const decoded = await deps.lightning.node.decodeInvoice(bolt11).catch((error: unknown) => {
    if (error instanceof LightningError && !error.retryable) throw new ApiError(422, error.code, error.message);
    throw error;
  });
  const refuse = (code: string, detail: string): never => {
    throw new ApiError(422, code, `${detail}; create a new invoice`);
  };
  if (decoded.amountMsat !== amountMsat) refuse('INVOICE_WRONG_AMOUNT', `the invoice asks ${String(decoded.amountMsat)} msat, the payout is ${amountMsat} msat`);
  if (decoded.destination !== contributor.lightningNodePubkeyHex) refuse('INVOICE_WRONG_DESTINATION', `the invoice pays node ${decoded.destination}, the contributor registered ${contributor.lightningNodePubkeyHex}`);
  if (decoded.network !== deps.lightning.network) refuse('INVOICE_WRONG_NETWORK', `the invoice is for ${decoded.network}, the coordinator runs on ${deps.lightning.network}`);
  if (decoded.expiresAtMs - deps.nowMs() < MIN_INVOICE_REMAINING_MS) refuse('INVOICE_EXPIRES_TOO_SOON', `the invoice expires at ${decoded.expiresAtMs}`);
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
    escrow: { paymentHash, status: invoice.status, bolt11: invoice.terms?.bolt11 ?? (await deps.holdInvoices.posted(terms.assignmentId)), preimageHex: released ? invoice.preimageHex : null },
    // What a contributor must post an invoice for (PUT …/payout-invoices/:kind) to be paid.
    payoutsDue: await Promise.all(
      payoutsDue(deps, assignment, invoice.status).map(async (p) => ({ ...p, invoicePosted: (await deps.holdInvoices.postedPayout(terms.assignmentId, p.kind)) !== null })),
    ),
  });
}

