// The step runner and recipes on real onnxruntime: provider choice with reasons, bitwise determinism, strict recipe resolution.

import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileBlobStore } from '../../adapters/blobs/file-blob-store.js';
import { differenceMetrics, withinTolerance } from '../../replay/compare/compare.js';
import { DEFAULT_THRESHOLDS } from '../../replay/compare/calibration.js';
import { mnistShard } from '../../replay/data/mnist.js';
import { referenceStep } from '../../replay/graphs/reference-steps.js';
import { checkpointDigest, encodeCheckpoint, initialParameters } from '../../replay/model/checkpoint.js';
import { parseRecipe, recipeForAssignment, type StepRecipe } from '../../replay/recipe.js';
import { EXECUTION_PROVIDERS, openSession } from '../../replay/step/execution-providers.js';
import { executeRecipe } from '../../replay/step/execute-recipe.js';
import { StepRunner } from '../../replay/step/step-runner.js';

const blobs = new FileBlobStore(mkdtempSync(join(tmpdir(), 'trainledger-step-')));
const runners: StepRunner[] = [];
const runner = (threads = 1, level: 'disabled' | 'all' = 'disabled') => {
  const created = new StepRunner({ provider: 'cpu', graphOptimizationLevel: level, intraOpNumThreads: threads });
  runners.push(created);
  return created;
};
afterAll(async () => Promise.all(runners.map((r) => r.close())));

const recipes: Record<string, StepRecipe> = {};
beforeAll(async () => {
  for (const name of ['softmax-regression', 'mlp'] as const) {
    const step = referenceStep(name);
    const parameters = initialParameters(step.model, '21');
    await blobs.put(encodeCheckpoint(step.model, parameters));
    recipes[name] = recipeForAssignment({ shardId: 'mnist-03', batchIndex: 2, baseCheckpointDigest: checkpointDigest(step.model, parameters), seed: '77' }, step, mnistShard('mnist-03').digest);
  }
});

describe('execution providers', () => {
  it('tries cuda, then webgpu, then cpu, and records why each one that failed did not run', async () => {
    const opened = await openSession(referenceStep('softmax-regression').graphBytes, { provider: 'auto', graphOptimizationLevel: 'disabled', intraOpNumThreads: 1 });
    try {
      const tried = opened.attempts.map((a) => a.provider);
      expect(tried).toEqual(EXECUTION_PROVIDERS.slice(0, tried.length));
      expect(opened.attempts.at(-1)).toMatchObject({ provider: opened.provider, ok: true });
      for (const failed of opened.attempts.slice(0, -1)) expect(failed.reason.length).toBeGreaterThan(10);
      expect(opened.device).toContain(opened.provider);
    } finally {
      await opened.session.release();
    }
  });
});

describe('recipes', () => {
  for (const name of ['softmax-regression', 'mlp'] as const) {
    it(`${name}: the same recipe gives bitwise-identical outputs across runners on CPU with optimization disabled`, async () => {
      const first = await executeRecipe(recipes[name]!, { blobs, runner: runner(1) });
      const second = await executeRecipe(recipes[name]!, { blobs, runner: runner(1) });
      expect(second.gradientDigest).toBe(first.gradientDigest);
      expect(second.checkpointDigests).toEqual(first.checkpointDigests);
      expect(first.recipeClass).toContain('/cpu/disabled/t1');
      expect(first.provider).toBe('cpu');
      expect(first.onnxruntimeVersionMatches).toBe(true);
    });
  }

  it('pins the thread count: two threads are another recipe class, equal within tolerance, and a mismatched runner is refused', async () => {
    const recipe = recipes.mlp!;
    const one = await executeRecipe(recipe, { blobs, runner: runner(1) });
    const two = await executeRecipe({ ...recipe, intraOpNumThreads: 2 }, { blobs, runner: runner(2) });
    expect(two.recipeClass).not.toBe(one.recipeClass);
    expect(withinTolerance(differenceMetrics(two.gradients, one.gradients), DEFAULT_THRESHOLDS)).toBe(true);
    await expect(executeRecipe(recipe, { blobs, runner: runner(2) })).rejects.toMatchObject({ code: 'RECIPE_RUNNER_MISMATCH' });
  });

  it('another optimization level is another recipe class: low bits may move, but it stays within tolerance', async () => {
    const recipe = recipes.mlp!;
    const reference = await executeRecipe(recipe, { blobs, runner: runner(1) });
    const optimized = await executeRecipe({ ...recipe, graphOptimizationLevel: 'all' }, { blobs, runner: runner(1, 'all') });
    expect(optimized.recipeClass).not.toBe(reference.recipeClass);
    expect(withinTolerance(differenceMetrics(optimized.gradients, reference.gradients), DEFAULT_THRESHOLDS)).toBe(true);
  });

  it('covers H inner steps: H + 1 checkpoint digests, and the pseudo-gradient (θ0 − θH) / lr', async () => {
    const recipe = { ...recipes['softmax-regression']!, innerSteps: 3 };
    const run = await executeRecipe(recipe, { blobs, runner: runner() });
    expect(run.checkpointDigests).toHaveLength(4);
    expect(new Set(run.checkpointDigests).size).toBe(4);
    const one = await executeRecipe(recipes['softmax-regression']!, { blobs, runner: runner() });
    expect(run.checkpointDigests.slice(0, 2)).toEqual(one.checkpointDigests);
    expect(run.gradientDigest).not.toBe(one.gradientDigest);
  });

  it('refuses an unknown graph, a missing checkpoint, other data and a wrong model with their own codes', async () => {
    const recipe = recipes['softmax-regression']!;
    const deps = { blobs, runner: runner() };
    await expect(executeRecipe({ ...recipe, graphDigest: 'a'.repeat(64) }, deps)).rejects.toMatchObject({ code: 'RECIPE_UNKNOWN_GRAPH' });
    await expect(executeRecipe({ ...recipe, model: 'mlp' }, deps)).rejects.toMatchObject({ code: 'RECIPE_MODEL_MISMATCH' });
    await expect(executeRecipe({ ...recipe, checkpointDigest: 'b'.repeat(64) }, deps)).rejects.toMatchObject({ code: 'RECIPE_CHECKPOINT_MISSING' });
    await expect(executeRecipe({ ...recipe, shardDigest: 'c'.repeat(64) }, deps)).rejects.toMatchObject({ code: 'RECIPE_SHARD_DIGEST_MISMATCH' });
    const mlpCheckpoint = recipes.mlp!.checkpointDigest;
    await expect(executeRecipe({ ...recipe, checkpointDigest: mlpCheckpoint }, deps)).rejects.toMatchObject({ code: 'RECIPE_CHECKPOINT_INVALID' });
  });

  it('parses a recipe back from JSON exactly, and refuses a malformed one with INVALID_RECIPE', () => {
    const recipe = recipes.mlp!;
    expect(parseRecipe(JSON.parse(JSON.stringify(recipe)))).toEqual(recipe);
    for (const bad of [null, {}, { ...recipe, recipeVersion: 2 }, { ...recipe, seed: '-1' }, { ...recipe, learningRate: 0 }, { ...recipe, innerSteps: 0 }, { ...recipe, intraOpNumThreads: 0 }, { ...recipe, executionProvider: 'tpu' }, { ...recipe, graphDigest: 'XYZ' }]) {
      expect(() => parseRecipe(bad)).toThrow(expect.objectContaining({ code: 'INVALID_RECIPE' }));
    }
  });
});
