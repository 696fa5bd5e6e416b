// Runs: open (on a reference graph and the shards this server holds), fund, publish checkpoints (bytes first, then the event), read a run; list graphs and shards.

import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { aggregateCacheFor } from '../../commands/aggregate-cache.js';
import { loadAggregate } from '../../commands/command-handler.js';
import { runDecider, runStreamId, type RunCommand, type RunDefinition } from '../../../domain/run/index.js';
import { MNIST_HELDOUT_SHARD_ID, MNIST_SHARD_SIZE, mnistShardDigests } from '../../../replay/data/mnist.js';
import { declaredShardProblem } from '../../../replay/data/shard-data.js';
import { referenceSteps, stepByGraphDigest } from '../../../replay/graphs/reference-steps.js';
import { authDeps, eventsView, runCommand, wire, type ApiDeps } from '../api-context.js';
import { asStaff, asStaffOrContributor, staffCallerOf } from '../auth/authenticate.js';
import { ApiError } from '../problem.js';
import { AppendedEvents, Id, IdempotencyHeaders, Msat, Sha256Hex } from './schemas.js';

const RunBody = Type.Object({
  runId: Id,
  stepGraphDigest: Sha256Hex,
  initialCheckpointDigest: Sha256Hex,
  shards: Type.Array(Type.Object({ shardId: Id, digest: Sha256Hex }), { minItems: 1, maxItems: 4096 }),
  rewardPolicy: Type.Object({ baseRewardMsat: Msat, maxBonusMsat: Msat }),
  verificationPolicy: Type.Object({ replayProbability: Type.Number({ minimum: 0, maximum: 1 }), maxGradientNorm: Type.Number({ exclusiveMinimum: 0 }), minRelativeImprovement: Type.Number() }),
  escrowPolicy: Type.Object({
    cltvDeltaBlocks: Type.Integer(),
    invoiceExpirySec: Type.Integer(),
    disputeWindowMs: Type.Integer(),
    assignmentTimeoutMs: Type.Integer(),
  }),
});

/** Any staff role may read a run's definition. */
const READ_RUN_SCOPES = ['runs:write', 'assignments:read', 'metrics:read', 'events:read'];

export async function runsRoutes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  const api = app.withTypeProvider<TypeBoxTypeProvider>();
  const auth = authDeps(deps);

  api.post('/v1/runs', { preHandler: asStaff(auth, 'runs:write'), config: { idempotent: true }, schema: { body: RunBody, headers: IdempotencyHeaders, response: { 201: AppendedEvents } } }, async (request, reply) => {
    const caller = staffCallerOf(request);
    const body = request.body;
    if (!stepByGraphDigest(body.stepGraphDigest)) {
      throw new ApiError(422, 'UNKNOWN_STEP_GRAPH', `step graph ${body.stepGraphDigest} is not a reference graph of this build; GET /v1/step-graphs lists them`);
    }
    if (!(await deps.blobs.has(body.initialCheckpointDigest))) {
      throw new ApiError(422, 'CHECKPOINT_NOT_UPLOADED', `upload the initial checkpoint's bytes (PUT /v1/checkpoints) before opening the run`);
    }
    // Every reference graph trains on the shards this server holds: a run may promise only that data, digest for digest,
    // or the validator would judge its steps on other data than it declared.
    const shardProblem = declaredShardProblem(body.shards);
    if (shardProblem) {
      const { code, detail, shardId, declaredDigest, knownDigest } = shardProblem;
      throw new ApiError(422, code, detail, { shardId, declaredDigest, knownDigest });
    }
    const data = {
      ...body,
      coordinatorId: caller.keyId,
      rewardPolicy: { baseRewardMsat: BigInt(body.rewardPolicy.baseRewardMsat), maxBonusMsat: BigInt(body.rewardPolicy.maxBonusMsat) },
    };
    const outcome = await runCommand<RunCommand, any, any>(deps, request, runDecider, runStreamId(body.runId), 'OpenRun', data);
    reply.code(201);
    return { status: outcome.status, events: eventsView(outcome) };
  });

  api.post(
    '/v1/runs/:runId/fundings',
    { preHandler: asStaff(auth, 'runs:write'), config: { idempotent: true }, schema: { params: Type.Object({ runId: Id }), headers: IdempotencyHeaders, body: Type.Object({ fundingId: Id, source: Type.Union([Type.Literal('customer'), Type.Literal('subsidy')]), amountMsat: Msat }), response: { 201: AppendedEvents } } },
    async (request, reply) => {
      await requireRun(deps, request.params.runId);
      const { fundingId, source, amountMsat } = request.body;
      const outcome = await runCommand<RunCommand, any, any>(deps, request, runDecider, runStreamId(request.params.runId), 'FundRun', { runId: request.params.runId, fundingId, source, amountMsat: BigInt(amountMsat) });
      reply.code(201);
      return { status: outcome.status, events: eventsView(outcome) };
    },
  );

  api.post(
    '/v1/runs/:runId/checkpoints',
    { preHandler: asStaff(auth, 'runs:write'), config: { idempotent: true }, schema: { params: Type.Object({ runId: Id }), headers: IdempotencyHeaders, body: Type.Object({ checkpointId: Id, step: Type.Integer({ minimum: 0 }), digest: Sha256Hex }), response: { 201: AppendedEvents } } },
    async (request, reply) => {
      await requireRun(deps, request.params.runId);
      if (!(await deps.blobs.has(request.body.digest))) throw new ApiError(422, 'CHECKPOINT_NOT_UPLOADED', `upload checkpoint ${request.body.digest} (PUT /v1/checkpoints) before publishing it`);
      const outcome = await runCommand<RunCommand, any, any>(deps, request, runDecider, runStreamId(request.params.runId), 'PublishCheckpoint', { runId: request.params.runId, checkpointId: request.body.checkpointId, step: request.body.step, digest: request.body.digest });
      reply.code(201);
      return { status: outcome.status, events: eventsView(outcome) };
    },
  );

  api.get('/v1/runs/:runId', { preHandler: asStaffOrContributor(auth, READ_RUN_SCOPES), schema: { params: Type.Object({ runId: Id }) } }, async (request) => {
    const run = await requireRun(deps, request.params.runId);
    const step = stepByGraphDigest(run.stepGraphDigest);
    return wire({
      runId: run.runId,
      status: run.status,
      stepGraphDigest: run.stepGraphDigest,
      step: step ? { model: step.model.name, learningRate: step.learningRate, batchSize: step.batchSize } : null,
      initialCheckpointDigest: run.initialCheckpointDigest,
      lastCheckpoint: run.lastCheckpoint,
      shards: run.shards,
      rewardPolicy: run.rewardPolicy,
      verificationPolicy: run.verificationPolicy,
      escrowPolicy: run.escrowPolicy,
      funded: run.funded,
      reservedMsat: run.reservedMsat,
      spentMsat: run.spentMsat,
    });
  });

  api.get('/v1/step-graphs', async () => {
    return referenceSteps().map((s) => ({ model: s.model.name, graphDigest: s.graphDigest, learningRate: s.learningRate, batchSize: s.batchSize, parameters: s.model.parameters }));
  });

  // The data a run may declare: the training shards this server holds and their digests (the held-out shard is the validator's).
  api.get('/v1/shards', async () => {
    return mnistShardDigests().map(({ shardId, digest }) => ({ shardId, digest, sampleCount: MNIST_SHARD_SIZE, use: shardId === MNIST_HELDOUT_SHARD_ID ? 'held-out' : 'training' }));
  });
}

export async function requireRun(deps: ApiDeps, runId: string) {
  const { state } = await loadAggregate(deps.store, runDecider, runStreamId(runId));
  if (state.status === 'none') throw new ApiError(404, 'RUN_NOT_FOUND', `run ${runId} does not exist`);
  return state;
}

/**
 * The run as this process last saw it, for what a run's definition fixes (step graph, shards,
 * policies): RunOpened is its first event and nothing changes those, so any cached revision
 * answers without a read. Budget, status and checkpoints may be stale here: use requireRun.
 */
export async function requireRunDefinition(deps: ApiDeps, runId: string): Promise<RunDefinition> {
  const cached = aggregateCacheFor(deps.store).get(runDecider, runStreamId(runId));
  if (cached && cached.state.status !== 'none') return cached.state;
  return requireRun(deps, runId);
}
