// The validator on a real run: honest gradients accepted, each kind of cheat rejected with its own reason, on real onnxruntime.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeDense } from '../../replay/encoding/dense-f32.js';
import { sha256Hex } from '../../replay/model/checkpoint.js';
import type { ParameterSet } from '../../replay/model/model-spec.js';
import { createPrng } from '../../replay/model/prng.js';
import type { CommandBus } from '../../replay/ports/commands.js';
import { ValidatorWorker } from '../../replay/workers/validator-worker.js';
import { replayWorld, type ReplayWorld } from './replay-world.js';

let world: ReplayWorld;
beforeAll(async () => {
  world = await replayWorld();
}, 120_000);
afterAll(async () => world?.close());

/** Gaussian-free noise with the same L2 norm as the honest step, so the norm bound cannot be what catches it. */
function noiseLike(reference: ParameterSet, seed: string): ParameterSet {
  const prng = createPrng(seed);
  const noise = reference.map((t) => t.map(() => prng.nextFloat() * 2 - 1));
  const norm = (p: ParameterSet) => Math.sqrt(p.reduce((s, t) => s + t.reduce((a, v) => a + v * v, 0), 0));
  const scale = norm(reference) / norm(noise);
  return noise.map((t) => t.map((v) => v * scale));
}

async function judge(assignmentId: string, contributorId: string, batchIndex: number, gradients: (honest: ParameterSet) => Promise<ParameterSet> | ParameterSet) {
  await world.assign(assignmentId, contributorId, batchIndex);
  await world.submitDense(assignmentId, contributorId, await gradients(await world.gradientFor(batchIndex)));
  await world.validator().runOnce();
  return world.state(assignmentId);
}

describe('validator checks: integrity, quality, sampled replay', () => {
  it('accepts an honest dense gradient, with a quality score and an exact replay match as evidence', async () => {
    const state = await judge('a-honest', 'alice', 0, (honest) => honest);
    expect(state.status).toBe('accepted');
    expect(state.acceptance!.qualityScore).toBeGreaterThan(0);
    const evidence = state.acceptance!.evidence as Record<string, any>;
    expect(evidence.quality.lossAfter).toBeLessThan(evidence.quality.lossBefore);
    expect(evidence.replay).toMatchObject({ sampled: true, outcome: 'match', comparison: { exact: { mode: 'exact', match: true } }, executionProvider: 'cpu' });
    expect(evidence.replay.recipe).toMatchObject({ graphDigest: world.step.graphDigest, checkpointDigest: world.checkpoints.currentDigest, shardDigest: world.shardDigest, graphOptimizationLevel: 'disabled' });
    // A byte-identical replay is matched without hashing it; the evidence still names both digests, and they are the submitted one.
    expect(evidence.replay.comparison.exact).toMatchObject({ submittedDigest: evidence.integrity.gradientDigest, replayedDigest: evidence.integrity.gradientDigest });
  });

  it('accepts an honest SparseLoCo-compressed gradient by comparing it with the replay compressed the same way', async () => {
    await world.assign('a-sparse', 'bob', 1);
    await world.submitSparse('a-sparse', 'bob', await world.gradientFor(1));
    await world.validator().runOnce();
    const state = await world.state('a-sparse');
    expect(state.status).toBe('accepted');
    expect((state.acceptance!.evidence as any).integrity.encoding).toBe('sparseloco');
  });

  it('rejects noise of the honest norm as QUALITY_NO_IMPROVEMENT', async () => {
    const state = await judge('a-noise', 'mallory', 2, (honest) => noiseLike(honest, '99'));
    expect(state.rejection?.reasonCode).toBe('QUALITY_NO_IMPROVEMENT');
  });

  it('rejects a rescaled honest gradient as REPLAY_SCALED_GRADIENT', async () => {
    const state = await judge('a-scaled', 'mallory', 4, (honest) => honest.map((t) => t.map((v) => v * 1.5)));
    expect(state.rejection?.reasonCode).toBe('REPLAY_SCALED_GRADIENT');
    expect((state.rejection!.evidence as any).replay.comparison.tolerance.metrics.normRatio).toBeCloseTo(1.5, 3);
    // A mismatch hashes the replay for its evidence: the honest gradient's digest, not the submitted one.
    const exact = (state.rejection!.evidence as any).replay.comparison.exact;
    expect(exact.match).toBe(false);
    expect(exact.replayedDigest).toBe(sha256Hex(encodeDense(world.step.model, await world.gradientFor(4))));
    expect(exact.submittedDigest).toBe((state.rejection!.evidence as any).integrity.gradientDigest);
  });

  it('rejects a gradient computed on the previous checkpoint as REPLAY_STALE_CHECKPOINT', async () => {
    const state = await judge('a-stale', 'mallory', 3, () => world.gradientFor(3, world.checkpoints.initial));
    expect(state.rejection?.reasonCode).toBe('REPLAY_STALE_CHECKPOINT');
  });

  it("rejects another contributor's gradient, byte for byte, as GRADIENT_COPIED", async () => {
    const original = await world.gradientFor(0);
    await world.assign('a-copied', 'mallory', 5);
    await world.submitBytes('a-copied', 'mallory', encodeDense(world.step.model, original));
    await world.validator().runOnce();
    const state = await world.state('a-copied');
    expect(state.rejection?.reasonCode).toBe('GRADIENT_COPIED');
    expect((state.rejection!.evidence as any).integrity.firstSubmittedBy).toBe('a-honest');
  });

  it('rejects NaN, an over-long body and an over-large norm at integrity, before any replay', async () => {
    const honest = await world.gradientFor(6);
    // The encoder refuses NaN, as an honest client's would; a cheat writes the bytes itself.
    const nan = encodeDense(world.step.model, honest);
    new DataView(nan.buffer, nan.byteOffset).setFloat32(7 * 4, Number.NaN, true);
    await world.assign('a-nan', 'mallory', 6);
    await world.submitBytes('a-nan', 'mallory', nan);
    await world.validator().runOnce();
    expect((await world.state('a-nan')).rejection?.reasonCode).toBe('GRADIENT_NON_FINITE');
    await world.assign('a-long', 'mallory', 7);
    const long = encodeDense(world.step.model, honest);
    await world.submitBytes('a-long', 'mallory', Buffer.concat([long, Buffer.alloc(4)]));
    await world.validator().runOnce();
    expect((await world.state('a-long')).rejection?.reasonCode).toBe('GRADIENT_TOO_LARGE');
    expect((await judge('a-huge', 'mallory', 8, (h) => h.map((t) => t.map((v) => v * 1e4)))).rejection?.reasonCode).toBe('GRADIENT_NORM_OUT_OF_BOUNDS');
  });

  it('judges each submission once, however often the worker passes over the log', async () => {
    const before = await world.store.readStream('assignment-a-honest');
    const again = await world.validator().runOnce();
    expect(again.judged).toBe(0);
    expect(await world.store.readStream('assignment-a-honest')).toHaveLength(before.length);
  });
});

describe('a verdict that races the validator', () => {
  // Regression (issue 16, found by the SIGKILL suite): a staff verdict (POST /v1/assignments/:id/verdicts) landing while
  // the validator computed made the validator's append fail its whole pass ("a verdict is final"), and twenty such
  // passes in a row stop the validator for good.
  it('lets the first verdict stand and finishes its pass instead of failing it', async () => {
    await world.assign('a-raced', 'alice', 9);
    await world.submitDense('a-raced', 'alice', await world.gradientFor(9));
    const racing: CommandBus = {
      load: (decider, streamId) => world.commands.load(decider, streamId),
      handle: async (decider, streamId, command, options) => {
        if (command.type === 'AcceptSubmission' || command.type === 'RejectSubmission') {
          const staff = { type: 'RejectSubmission', data: { assignmentId: 'a-raced', validatorId: 'staff-validator', reasonCode: 'STAFF_REJECTED', evidence: {} }, metadata: command.metadata };
          await world.commands.handle(decider, streamId, staff as typeof command);
        }
        return world.commands.handle(decider, streamId, command, options);
      },
    };
    const validator = new ValidatorWorker({ store: world.store, commands: racing, db: world.db, blobs: world.blobs, runner: world.runner, calibration: null, random: () => 0, validatorId: 'validator-1', nowMs: () => (world.clock.nowMs += 1000) });
    await expect(validator.runOnce()).resolves.toBeDefined();
    expect((await world.state('a-raced')).rejection?.reasonCode).toBe('STAFF_REJECTED');
  });
});

describe('sampled replay', () => {
  it('does not replay when the draw falls above the replay probability, and says so in the evidence', async () => {
    const sampled = await replayWorld({ replayProbability: 0.25 });
    try {
      await sampled.assign('s-1', 'carol', 0);
      // A rescaled gradient still lowers the held-out loss: only a replay could catch it, and this one is not drawn.
      await sampled.submitDense('s-1', 'carol', (await sampled.gradientFor(0)).map((t) => t.map((v) => v * 1.5)));
      await sampled.validator(() => 0.9).runOnce();
      const state = await sampled.state('s-1');
      expect(state.status).toBe('accepted');
      expect((state.acceptance!.evidence as any).replay).toEqual({ sampled: false, draw: 0.9, replayProbability: 0.25 });
    } finally {
      await sampled.close();
    }
  });
});
