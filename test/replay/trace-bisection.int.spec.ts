// Trace bisection on real train steps: an injected divergence is found in ⌈log2 H⌉ rounds and settled by recomputing one step.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { merkleProof, merkleRoot } from '../../replay/bisect/merkle.js';
import { maxBisectRounds } from '../../replay/bisect/bisect.js';
import { resolveTraceDispute, type CommittedTrace } from '../../replay/bisect/trace-dispute.js';
import { mnistBatch, mnistShard } from '../../replay/data/mnist.js';
import { referenceStep } from '../../replay/graphs/reference-steps.js';
import { checkpointDigest, initialParameters } from '../../replay/model/checkpoint.js';
import type { ParameterSet } from '../../replay/model/model-spec.js';
import { recipeForAssignment, type StepRecipe } from '../../replay/recipe.js';
import { StepRunner } from '../../replay/step/step-runner.js';

/** 12 batches of 32 fit one epoch of a 500-sample shard. */
const H = 12;
const step = referenceStep('softmax-regression');
let runner: StepRunner;
let recipe: StepRecipe;
let base: ParameterSet;
let honest: ParameterSet[];

beforeAll(async () => {
  runner = new StepRunner({ provider: 'cpu', graphOptimizationLevel: 'disabled', intraOpNumThreads: 1 });
  base = initialParameters(step.model, '3');
  recipe = { ...recipeForAssignment({ shardId: 'mnist-02', batchIndex: 0, baseCheckpointDigest: checkpointDigest(step.model, base), seed: '9' }, step, mnistShard('mnist-02').digest), innerSteps: H };
  honest = await trace(base, null);
});
afterAll(async () => runner?.close());

/** Runs H inner steps; from `corruptAt` on, the runner's output is nudged, as a faulty or cheating GPU would. */
async function trace(start: ParameterSet, corruptAt: number | null): Promise<ParameterSet[]> {
  const checkpoints = [start];
  let parameters = start;
  for (let i = 1; i <= H; i += 1) {
    const batch = mnistBatch({ shardId: recipe.shardId, batchIndex: recipe.batchIndex + i - 1, batchSize: recipe.batchSize, seed: recipe.seed });
    parameters = (await runner.run(step, parameters, { x: batch.x, y: batch.y, batchSize: recipe.batchSize }, recipe.learningRate)).outputs.next;
    if (i === corruptAt) parameters = parameters.map((t, j) => (j === 0 ? t.map((v, k) => (k === 5 ? v + 1e-3 : v)) : t));
    checkpoints.push(parameters);
  }
  return checkpoints;
}

function committed(checkpoints: ParameterSet[]): CommittedTrace {
  const digests = checkpoints.map((c) => checkpointDigest(step.model, c));
  return {
    root: merkleRoot(digests),
    claimed: async (i) => ({ digest: digests[i]!, proof: merkleProof(digests, i) }),
    checkpointAt: async (i) => checkpoints[i]!,
  };
}

const referenceOf = (checkpoints: ParameterSet[]) => async (i: number) => checkpointDigest(step.model, checkpoints[i]!);

describe('trace bisection over real train steps', () => {
  for (const divergentStep of [1, 6, 11, H]) {
    it(`finds a divergence injected at step ${divergentStep} of ${H} in at most ⌈log2 H⌉ rounds and recomputes exactly that step`, async () => {
      const contributor = await trace(base, divergentStep);
      const result = await resolveTraceDispute({ recipe, trace: committed(contributor), reference: referenceOf(honest), runner });
      expect(result).toMatchObject({ verdict: 'claim-wrong', firstDivergentStep: divergentStep, recomputations: 1, provider: 'cpu' });
      expect(result.rounds).toBeLessThanOrEqual(maxBisectRounds(H));
      expect(result.recomputedDigest).toBe(checkpointDigest(step.model, honest[divergentStep]!));
    });
  }

  it('sides with the contributor when the challenger is the one that diverged', async () => {
    const challenger = await trace(base, 5);
    const result = await resolveTraceDispute({ recipe, trace: committed(honest), reference: referenceOf(challenger), runner });
    expect(result).toMatchObject({ verdict: 'claim-correct', firstDivergentStep: 5, recomputations: 1 });
  });

  it('needs no recomputation when the traces agree, and refuses a checkpoint that does not match its commitment', async () => {
    expect(await resolveTraceDispute({ recipe, trace: committed(honest), reference: referenceOf(honest), runner })).toMatchObject({ verdict: 'no-dispute', recomputations: 0 });
    const contributor = await trace(base, 9);
    const lying: CommittedTrace = { ...committed(contributor), checkpointAt: async (i) => contributor[i === 8 ? 0 : i]! };
    await expect(resolveTraceDispute({ recipe, trace: lying, reference: referenceOf(honest), runner })).rejects.toThrow(/does not hash to the committed digest/);
  });

  it('refuses to referee on other shard data than the recipe declares (RECIPE_SHARD_DIGEST_MISMATCH), before recomputing anything', async () => {
    const contributor = await trace(base, 3);
    const declaredOther = { ...recipe, shardDigest: '0'.repeat(64) };
    await expect(resolveTraceDispute({ recipe: declaredOther, trace: committed(contributor), reference: referenceOf(honest), runner })).rejects.toMatchObject({ code: 'RECIPE_SHARD_DIGEST_MISMATCH' });
  });
});
