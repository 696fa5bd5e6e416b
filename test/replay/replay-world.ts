// A replay world for tests: PGlite log, file blobs, a real softmax-regression run with two checkpoints (more on demand), and contributors who submit.

import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileBlobStore } from '../../adapters/blobs/file-blob-store.js';
import { EventStoreCommandBus } from '../../adapters/commands/command-bus.js';
import { handleCommand, loadAggregate } from '../../adapters/commands/command-handler.js';
import { openEventStore } from '../../adapters/event-store/open-event-store.js';
import type { PostgresEventStore } from '../../adapters/postgres/postgres-event-store.js';
import { PostgresReplayJobQueue } from '../../adapters/replay/postgres-replay-jobs.js';
import { assignmentDecider, assignmentStreamId, type AssignmentCommand, type AssignmentState } from '../../domain/assignment/index.js';
import { runDecider, runStreamId, type RunCommand } from '../../domain/run/index.js';
import { mnistBatch, mnistShard, mnistShardDigests } from '../../replay/data/mnist.js';
import { encodeDense } from '../../replay/encoding/dense-f32.js';
import { encodeSparseLoco } from '../../replay/encoding/sparseloco.js';
import { referenceStep, type StepDefinition } from '../../replay/graphs/reference-steps.js';
import { checkpointDigest, encodeCheckpoint, initialParameters } from '../../replay/model/checkpoint.js';
import type { ParameterSet } from '../../replay/model/model-spec.js';
import { StepRunner } from '../../replay/step/step-runner.js';
import { ValidatorWorker } from '../../replay/workers/validator-worker.js';
import { command, openRunData, T0 } from '../domain/fixtures.js';

export const RUN_ID = 'run-mnist';
export const SHARD_ID = 'mnist-00';
export const SEED = '42';

export type ReplayWorld = Awaited<ReturnType<typeof replayWorld>>;

export async function replayWorld(options: { replayProbability?: number; minRelativeImprovement?: number } = {}) {
  const { store, db } = await openEventStore({ engine: 'pglite' });
  const blobs = new FileBlobStore(mkdtempSync(join(tmpdir(), 'trainledger-replay-')));
  const runner = new StepRunner({ provider: 'cpu', graphOptimizationLevel: 'disabled', intraOpNumThreads: 1 });
  const step = referenceStep('softmax-regression');
  const clock = { nowMs: T0 };
  const newEventId = () => randomUUID();
  // The workers' command port, over the same store (and so the same aggregate cache) as the setup commands below.
  const commands = new EventStoreCommandBus(store, { newEventId });
  const jobs = new PostgresReplayJobQueue(db);
  await jobs.prepare();

  // Two checkpoints a few steps apart: the assigned one, and the stale one before it.
  const initial = initialParameters(step.model, '11');
  const current = await train(runner, step, initial, 10);
  const [initialDigest, currentDigest] = [checkpointDigest(step.model, initial), checkpointDigest(step.model, current)];
  await blobs.put(encodeCheckpoint(step.model, initial));
  await blobs.put(encodeCheckpoint(step.model, current));

  /**
   * Opens a run on the softmax-regression graph with both checkpoints published. Written straight to the log, past the
   * API's check of declared data, so a test can give a run shards whose digests are not the data held here.
   */
  async function openRun(runId: string, shards: readonly { shardId: string; digest: string }[] = mnistShardDigests()): Promise<void> {
    const run = (cmd: RunCommand) => handleCommand(store, runDecider, runStreamId(runId), cmd, { newEventId });
    await run(
      command<RunCommand>('OpenRun', openRunData({
        runId,
        stepGraphDigest: step.graphDigest,
        initialCheckpointDigest: initialDigest,
        shards: [...shards],
        verificationPolicy: { replayProbability: options.replayProbability ?? 1, maxGradientNorm: 50, minRelativeImprovement: options.minRelativeImprovement ?? 0.004 },
      }), T0),
    );
    await run(command<RunCommand>('PublishCheckpoint', { runId, checkpointId: 'ckpt-10', step: 10, digest: currentDigest }, T0));
  }
  await openRun(RUN_ID);

  const assignment = (cmd: AssignmentCommand, assignmentId: string) =>
    handleCommand(store, assignmentDecider, assignmentStreamId(assignmentId), { ...cmd, metadata: { nowMs: (clock.nowMs += 1000) } } as AssignmentCommand, { newEventId });

  async function assign(assignmentId: string, contributorId: string, batchIndex: number, runId: string = RUN_ID): Promise<void> {
    await assignment(
      command('AssignWork', {
        assignmentId, runId, contributorId, step: 11, shardId: SHARD_ID, batchIndex, baseCheckpointDigest: currentDigest, seed: SEED,
        baseRewardMsat: 1_000_000n, maxBonusMsat: 500_000n, maxFeeMsat: 10_000n, deadlineMs: T0 + 86_400_000, disputeWindowMs: 86_400_000,
      }),
      assignmentId,
    );
  }

  /** The step as an honest contributor computes it, from the given checkpoint. */
  async function gradientFor(batchIndex: number, from: ParameterSet = current): Promise<ParameterSet> {
    const batch = mnistBatch({ shardId: SHARD_ID, batchIndex, batchSize: step.batchSize, seed: SEED });
    return (await runner.run(step, from, { x: batch.x, y: batch.y, batchSize: step.batchSize }, step.learningRate)).outputs.gradients;
  }

  async function submitBytes(assignmentId: string, contributorId: string, bytes: Uint8Array, encoding: 'dense-f32' | 'sparseloco' = 'dense-f32'): Promise<string> {
    const { digest } = await blobs.put(bytes);
    await assignment(
      command('SubmitGradient', { assignmentId, contributorId, gradientDigest: digest, sizeBytes: bytes.byteLength, encoding, claimedLoss: 0.5, computeTimeMs: 100 }),
      assignmentId,
    );
    return digest;
  }

  const submitDense = (assignmentId: string, contributorId: string, gradients: ParameterSet) => submitBytes(assignmentId, contributorId, encodeDense(step.model, gradients));
  const submitSparse = (assignmentId: string, contributorId: string, gradients: ParameterSet) =>
    submitBytes(assignmentId, contributorId, encodeSparseLoco(step.model, gradients, { chunkSize: 4096, topK: 512 }), 'sparseloco');

  const validator = (random: () => number = () => 0, onSkipped?: (assignmentId: string, reason: string, code: string) => void) =>
    new ValidatorWorker({ store, commands, db, blobs, runner, calibration: null, random, validatorId: 'validator-1', nowMs: () => (clock.nowMs += 1000), ...(onSkipped ? { onSkipped } : {}) });

  await validator().prepare();

  const state = async (assignmentId: string): Promise<AssignmentState> => (await loadAggregate(store, assignmentDecider, assignmentStreamId(assignmentId))).state;

  return {
    store: store as PostgresEventStore, commands, db, blobs, runner, step, jobs, clock, newEventId,
    checkpoints: { initial, current, initialDigest, currentDigest },
    shardDigest: mnistShard(SHARD_ID).digest,
    openRun, assign, assignment, gradientFor, submitBytes, submitDense, submitSparse, validator, state,
    close: async () => {
      await runner.close();
      await store.close();
    },
  };
}

async function train(runner: StepRunner, step: StepDefinition, start: ParameterSet, steps: number): Promise<ParameterSet> {
  let parameters = start;
  for (let i = 0; i < steps; i += 1) {
    const batch = mnistBatch({ shardId: 'mnist-01', batchIndex: i, batchSize: step.batchSize, seed: '5' });
    parameters = (await runner.run(step, parameters, { x: batch.x, y: batch.y, batchSize: step.batchSize }, step.learningRate)).outputs.next;
  }
  return parameters;
}
