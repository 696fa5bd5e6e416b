// Disputes end to end: a wrong rejection is overturned on replay, a right one upheld; jobs survive dead workers and finish once.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assignmentDecider, type AssignmentCommand } from '../../domain/assignment/index.js';
import type { AssignmentEvent } from '../../domain/assignment/assignment.state.js';
import { decodeEvent } from '../../domain/codec.js';
import { parseRecipe } from '../../replay/recipe.js';
import { executeRecipe } from '../../replay/step/execute-recipe.js';
import { feedReplayJobs, ReplayWorker, replayJobIdFor } from '../../replay/workers/replay-worker.js';
import { command } from '../domain/fixtures.js';
import { replayWorld, type ReplayWorld } from './replay-world.js';

let world: ReplayWorld;
beforeAll(async () => {
  world = await replayWorld();
}, 120_000);
afterAll(async () => world?.close());

const LEASE_MS = 60_000;

function worker(workerId: string): ReplayWorker {
  return new ReplayWorker({ ...world, calibration: null, workerId, leaseMs: LEASE_MS, nowMs: () => world.clock.nowMs });
}

async function rejectWrongly(assignmentId: string): Promise<void> {
  // A validator that is simply wrong: it rejects a gradient nobody checked.
  await world.assignment(command<AssignmentCommand>('RejectSubmission', { assignmentId, validatorId: 'broken-validator', reasonCode: 'REPLAY_MISMATCH', evidence: {} }), assignmentId);
}

async function dispute(assignmentId: string, contributorId: string, disputeId: string): Promise<void> {
  await world.assignment(command<AssignmentCommand>('DisputeRejection', { assignmentId, contributorId, disputeId, reason: 'replay my step' }), assignmentId);
  await feedReplayJobs({ store: world.store, commands: world.commands, jobs: world.jobs, nowMs: () => world.clock.nowMs });
}

async function eventsOf(assignmentId: string): Promise<AssignmentEvent[]> {
  return (await world.store.readStream(`assignment-${assignmentId}`)).map((r) => decodeEvent<AssignmentEvent>(r));
}

describe('dispute replays', () => {
  it('overturns a rejection forced by a wrong validator, with a verdict whose recipe reproduces the step', async () => {
    await world.assign('d-honest', 'alice', 0);
    const digest = await world.submitDense('d-honest', 'alice', await world.gradientFor(0));
    await rejectWrongly('d-honest');
    await dispute('d-honest', 'alice', 'dsp-honest');
    const outcomes = await worker('w1').drain();
    expect(outcomes).toEqual([{ jobId: replayJobIdFor('dsp-honest'), result: 'resolved' }]);

    const events = await eventsOf('d-honest');
    const verdict = events.find((e) => e.type === 'ReplayVerdictRecorded')!;
    const resolved = events.find((e) => e.type === 'DisputeResolved')!;
    expect(verdict.data).toMatchObject({ outcome: 'match', executionProvider: 'cpu', metric: { exactMatch: 1 }, tolerance: { mode: 'exact' } });
    expect(resolved.data).toMatchObject({ resolution: 'overturned', outcome: 'match' });
    // Anyone can take the recorded recipe and get the contributor's gradient back, bit for bit.
    const rerun = await executeRecipe(parseRecipe((verdict.data as { recipe: unknown }).recipe), world);
    expect(rerun.gradientDigest).toBe(digest);
  });

  it('upholds a rejection whose replay does not match', async () => {
    await world.assign('d-stale', 'mallory', 1);
    await world.submitDense('d-stale', 'mallory', await world.gradientFor(1, world.checkpoints.initial));
    await rejectWrongly('d-stale');
    await dispute('d-stale', 'mallory', 'dsp-stale');
    await worker('w1').drain();
    const events = await eventsOf('d-stale');
    expect(events.find((e) => e.type === 'ReplayVerdictRecorded')!.data).toMatchObject({ outcome: 'mismatch', tolerance: { reasonCode: 'REPLAY_STALE_CHECKPOINT' } });
    expect(events.find((e) => e.type === 'DisputeResolved')!.data).toMatchObject({ resolution: 'upheld' });
  });

  it("retries a dead worker's job after its lease expires, records one verdict, and fences the dead worker out", async () => {
    await world.assign('d-lease', 'bob', 2);
    await world.submitDense('d-lease', 'bob', await world.gradientFor(2));
    await rejectWrongly('d-lease');
    await dispute('d-lease', 'bob', 'dsp-lease');
    const jobId = replayJobIdFor('dsp-lease');

    const dead = await world.jobs.claim('dead-worker', world.clock.nowMs, LEASE_MS);
    expect(dead?.jobId).toBe(jobId);
    // While the lease holds, nobody else gets the job.
    expect(await worker('w2').runOne()).toBeNull();
    world.clock.nowMs += LEASE_MS + 1;
    expect(await worker('w2').runOne()).toEqual({ jobId, result: 'resolved' });
    expect(await world.jobs.complete(jobId, 'dead-worker', world.clock.nowMs)).toBe(false);
    expect(await world.jobs.status(jobId)).toMatchObject({ status: 'done', attempts: 2 });

    const events = await eventsOf('d-lease');
    expect(events.filter((e) => e.type === 'ReplayVerdictRecorded')).toHaveLength(1);
    expect(events.filter((e) => e.type === 'DisputeResolved')).toHaveLength(1);
    // The folded stream is valid: the decider accepts every event in order.
    expect(() => events.reduce(assignmentDecider.evolve, assignmentDecider.initialState())).not.toThrow();
  });

  it('feeds each dispute once, however often the feeder re-reads the log', async () => {
    const again = await feedReplayJobs({ store: world.store, commands: world.commands, jobs: world.jobs, nowMs: () => world.clock.nowMs });
    expect(again).toBe(0);
    for (const id of ['d-honest', 'd-stale', 'd-lease']) expect((await eventsOf(id)).filter((e) => e.type === 'ReplayRequested')).toHaveLength(1);
  });
});
