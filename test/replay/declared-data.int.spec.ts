// The run's declared data: the validator and the replay worker judge a step only on the shard data the run declared,
// and when the data held here is other data, they leave it unjudged or park the job, without blaming anyone or stopping.

import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { AssignmentCommand, AssignmentEvent } from '../../domain/assignment/index.js';
import { decodeEvent } from '../../domain/codec.js';
import { LOG_START } from '../../domain/ports/event-store.js';
import { mnistShard, mnistShardDigests } from '../../replay/data/mnist.js';
import { checkpointDigest, encodeCheckpoint } from '../../replay/model/checkpoint.js';
import { recipeForAssignment } from '../../replay/recipe.js';
import { executeRecipe } from '../../replay/step/execute-recipe.js';
import { feedReplayJobs, ReplayWorker, replayJobIdFor } from '../../replay/workers/replay-worker.js';
import { VALIDATOR_SUBSCRIPTION } from '../../replay/workers/validator-worker.js';
import { command, T0 } from '../domain/fixtures.js';
import { RUN_ID, SEED, SHARD_ID, replayWorld, type ReplayWorld } from './replay-world.js';

/** The case: a run that declares its shard with an all-zero digest. */
const ZERO_DIGEST = '0'.repeat(64);
/** Declares mnist-00 with an all-zero digest; every other shard as held. */
const WRONG_DIGEST_RUN = 'run-wrong-digest';
/** Declares mnist-01 only, so an assignment on mnist-00 names a shard the run never promised. */
const UNDECLARED_RUN = 'run-undeclared';
const LEASE_MS = 60_000;

let world: ReplayWorld;
beforeAll(async () => {
  world = await replayWorld();
  await world.openRun(WRONG_DIGEST_RUN, mnistShardDigests().map((shard) => (shard.shardId === SHARD_ID ? { ...shard, digest: ZERO_DIGEST } : shard)));
  await world.openRun(UNDECLARED_RUN, [{ shardId: 'mnist-01', digest: mnistShard('mnist-01').digest }]);
}, 120_000);
afterAll(async () => world?.close());

async function eventsOf(assignmentId: string): Promise<AssignmentEvent[]> {
  return (await world.store.readStream(`assignment-${assignmentId}`)).map((r) => decodeEvent<AssignmentEvent>(r));
}

async function submitHonest(assignmentId: string, contributorId: string, batchIndex: number, runId: string): Promise<void> {
  await world.assign(assignmentId, contributorId, batchIndex, runId);
  await world.submitDense(assignmentId, contributorId, await world.gradientFor(batchIndex));
}

function worker(workerId: string): ReplayWorker {
  return new ReplayWorker({ ...world, calibration: null, workerId, leaseMs: LEASE_MS, nowMs: () => world.clock.nowMs });
}

async function rejectAndDispute(assignmentId: string, contributorId: string, disputeId: string): Promise<void> {
  await world.assignment(command<AssignmentCommand>('RejectSubmission', { assignmentId, validatorId: 'broken-validator', reasonCode: 'REPLAY_MISMATCH', evidence: {} }), assignmentId);
  await world.assignment(command<AssignmentCommand>('DisputeRejection', { assignmentId, contributorId, disputeId, reason: 'replay my step' }), assignmentId);
  await feedReplayJobs({ store: world.store, commands: world.commands, jobs: world.jobs, nowMs: () => world.clock.nowMs });
}

describe('the validator judges only on the data the run declared', () => {
  it('leaves an honest submission unjudged, with a visible reason, when the held shard is not the declared one; the pass goes on', async () => {
    await submitHonest('v-wrong', 'alice', 0, WRONG_DIGEST_RUN);
    // Submitted after the bad one: the same pass must still judge it.
    await submitHonest('v-good', 'bob', 1, RUN_ID);
    const skipped: { assignmentId: string; reason: string; code: string }[] = [];
    const steps = vi.spyOn(world.runner, 'runStep');
    const losses = vi.spyOn(world.runner, 'evaluateLoss');
    const validator = world.validator(() => 0, (assignmentId, reason, code) => skipped.push({ assignmentId, reason, code }));
    const pass = await validator.runOnce();
    // Only the good submission ran anything: held-out loss before and after (forward-only), one replayed step.
    expect(losses).toHaveBeenCalledTimes(2);
    expect(steps).toHaveBeenCalledTimes(1);
    steps.mockRestore();
    losses.mockRestore();

    expect(pass).toEqual({ judged: 1, accepted: 1, rejected: 0, skipped: 1 });
    expect((await world.state('v-good')).status).toBe('accepted');
    // Neither accepted nor rejected: the contributor is not blamed for the server's data.
    expect((await world.state('v-wrong')).status).toBe('submitted');
    expect((await eventsOf('v-wrong')).map((e) => e.type)).toEqual(['WorkAssigned', 'GradientSubmitted']);
    const heldDigest = mnistShard(SHARD_ID).digest;
    expect(skipped).toEqual([{ assignmentId: 'v-wrong', code: 'RECIPE_SHARD_DIGEST_MISMATCH', reason: expect.stringContaining(ZERO_DIGEST) }]);
    expect(skipped[0]!.reason).toContain(heldDigest);
    const [unjudged] = await validator.unjudged();
    expect(await validator.unjudged()).toHaveLength(1);
    expect(unjudged).toMatchObject({ assignmentId: 'v-wrong', runId: WRONG_DIGEST_RUN, code: 'RECIPE_SHARD_DIGEST_MISMATCH', reason: skipped[0]!.reason });
  });

  it('leaves a submission unjudged when its run never declared the assigned shard (RUN_SHARD_UNDECLARED)', async () => {
    await submitHonest('v-undeclared', 'carol', 2, UNDECLARED_RUN);
    const validator = world.validator();
    expect(await validator.runOnce()).toEqual({ judged: 0, accepted: 0, rejected: 0, skipped: 1 });
    expect((await world.state('v-undeclared')).status).toBe('submitted');
    expect((await validator.unjudged()).find((u) => u.assignmentId === 'v-undeclared')).toMatchObject({ code: 'RUN_SHARD_UNDECLARED', runId: UNDECLARED_RUN });
  });

  it('keeps the list of unjudged submissions current: one judged once its cause is fixed leaves it', async () => {
    // A base checkpoint whose bytes are not stored yet: the validator cannot judge, and says why.
    const base = world.checkpoints.current.map((t, i) => (i === 0 ? t.map((v, k) => (k === 0 ? v + 0.01 : v)) : t));
    const baseDigest = checkpointDigest(world.step.model, base);
    await world.assignment(
      command<AssignmentCommand>('AssignWork', {
        assignmentId: 'v-late-ckpt', runId: RUN_ID, contributorId: 'dave', step: 11, shardId: SHARD_ID, batchIndex: 6, baseCheckpointDigest: baseDigest, seed: SEED,
        baseRewardMsat: 1_000_000n, maxBonusMsat: 500_000n, maxFeeMsat: 10_000n, deadlineMs: T0 + 86_400_000, disputeWindowMs: 86_400_000,
      } as never),
      'v-late-ckpt',
    );
    await world.submitDense('v-late-ckpt', 'dave', await world.gradientFor(6, base));
    const validator = world.validator();
    expect(await validator.runOnce()).toMatchObject({ judged: 0, skipped: 1 });
    expect((await validator.unjudged()).find((u) => u.assignmentId === 'v-late-ckpt')).toMatchObject({ code: 'RECIPE_CHECKPOINT_MISSING' });

    await world.blobs.put(encodeCheckpoint(world.step.model, base));
    await world.store.saveCheckpoint(VALIDATOR_SUBSCRIPTION, LOG_START);
    await validator.runOnce();
    expect((await world.state('v-late-ckpt')).status).toBe('accepted');
    expect((await validator.unjudged()).map((u) => u.assignmentId)).not.toContain('v-late-ckpt');
    // The data problems are still there, and still unjudged.
    expect((await validator.unjudged()).map((u) => u.assignmentId)).toEqual(expect.arrayContaining(['v-wrong', 'v-undeclared']));
  });
});

describe('a dispute replay runs only on the data the run declared', () => {
  it('parks the job with the reason and records no verdict; the next job in the same drain is resolved', async () => {
    await submitHonest('r-wrong', 'alice', 3, WRONG_DIGEST_RUN);
    await rejectAndDispute('r-wrong', 'alice', 'dsp-wrong');
    await submitHonest('r-good', 'bob', 4, RUN_ID);
    await rejectAndDispute('r-good', 'bob', 'dsp-good');

    const outcomes = await worker('w1').drain();
    expect(outcomes).toEqual([
      { jobId: replayJobIdFor('dsp-wrong'), result: 'parked', detail: expect.stringMatching(/^RECIPE_SHARD_DIGEST_MISMATCH: .*0{64}/) },
      { jobId: replayJobIdFor('dsp-good'), result: 'resolved' },
    ]);
    // Parked at once: not retried five times over data that cannot change.
    expect(await world.jobs.status(replayJobIdFor('dsp-wrong'))).toMatchObject({ status: 'failed', attempts: 1, lastError: expect.stringContaining('RECIPE_SHARD_DIGEST_MISMATCH') });
    expect(await worker('w2').drain()).toEqual([]);

    const wrong = await eventsOf('r-wrong');
    expect(wrong.filter((e) => e.type === 'ReplayVerdictRecorded' || e.type === 'DisputeResolved')).toEqual([]);
    expect((await world.state('r-wrong')).status).toBe('replaying');
    const verdict = (await eventsOf('r-good')).find((e) => e.type === 'ReplayVerdictRecorded')!;
    expect(verdict.data).toMatchObject({ outcome: 'match', recipe: { shardId: SHARD_ID, shardDigest: mnistShard(SHARD_ID).digest } });
  });

  it('parks a dispute on a shard its run never declared (RUN_SHARD_UNDECLARED)', async () => {
    await submitHonest('r-undeclared', 'carol', 5, UNDECLARED_RUN);
    await rejectAndDispute('r-undeclared', 'carol', 'dsp-undeclared');
    expect(await worker('w1').drain()).toEqual([{ jobId: replayJobIdFor('dsp-undeclared'), result: 'parked', detail: expect.stringMatching(/^RUN_SHARD_UNDECLARED: /) }]);
    expect((await eventsOf('r-undeclared')).some((e) => e.type === 'ReplayVerdictRecorded')).toBe(false);
  });
});

describe('a recipe names the declared digest, and executing it checks the held data first', () => {
  const recipeFor = (shardDigest: string) =>
    recipeForAssignment({ shardId: SHARD_ID, batchIndex: 0, baseCheckpointDigest: world.checkpoints.currentDigest, seed: SEED }, world.step, shardDigest);

  it('refuses other data before loading the checkpoint or running a step', async () => {
    const runs = vi.spyOn(world.runner, 'runStep');
    // The checkpoint is missing too; the data is what is checked first.
    await expect(executeRecipe({ ...recipeFor(ZERO_DIGEST), checkpointDigest: 'b'.repeat(64) }, world)).rejects.toMatchObject({ code: 'RECIPE_SHARD_DIGEST_MISMATCH' });
    expect(runs).not.toHaveBeenCalled();
    runs.mockRestore();
  });

  it('names a shard this server does not hold RECIPE_UNKNOWN_SHARD', async () => {
    await expect(executeRecipe({ ...recipeFor(ZERO_DIGEST), shardId: 'imagenet-00' }, world)).rejects.toMatchObject({ code: 'RECIPE_UNKNOWN_SHARD' });
  });
});
