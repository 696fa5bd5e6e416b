// The step runner and recipes on real onnxruntime: provider choice with reasons, bitwise determinism, strict recipe resolution.

import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileBlobStore } from '../../adapters/blobs/file-blob-store.js';
import { differenceMetrics, withinTolerance } from '../../replay/compare/compare.js';
import { DEFAULT_THRESHOLDS } from '../../replay/compare/calibration.js';
import { mnistBatch, mnistShard } from '../../replay/data/mnist.js';
import { referenceStep } from '../../replay/graphs/reference-steps.js';
import { encodeDense } from '../../replay/encoding/dense-f32.js';
import { checkpointDigest, encodeCheckpoint, initialParameters, sha256Hex } from '../../replay/model/checkpoint.js';
import { parseRecipe, recipeForAssignment, type StepRecipe } from '../../replay/recipe.js';
import { EXECUTION_PROVIDERS, openSession } from '../../replay/step/execution-providers.js';
import { executeRecipe } from '../../replay/step/execute-recipe.js';
import { loadCheckpoint, MAX_CACHED_CHECKPOINTS } from '../../replay/step/checkpoint-cache.js';
import type { BlobStore } from '../../replay/ports/blob-store.js';
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
      const first = await executeRecipe(recipes[name]!, { blobs, runner: runner(1) }, { trace: true });
      const second = await executeRecipe(recipes[name]!, { blobs, runner: runner(1) }, { trace: true });
      expect(second.gradientDigest).toBe(first.gradientDigest);
      expect(second.trace!.checkpointDigests).toEqual(first.trace!.checkpointDigests);
      // Without the trace onnxruntime is asked for the loss and gradients alone: the same bits.
      const untraced = await executeRecipe(recipes[name]!, { blobs, runner: runner(1) });
      expect(untraced.trace).toBeNull();
      expect(untraced.gradientDigest).toBe(first.gradientDigest);
      expect(untraced.loss).toBe(first.loss);
      expect(untraced.gradientDigest).toBe(sha256Hex(encodeDense(referenceStep(name).model, untraced.gradients)));
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
    const run = await executeRecipe(recipe, { blobs, runner: runner() }, { trace: true });
    const digests = run.trace!.checkpointDigests;
    expect(digests).toHaveLength(4);
    expect(new Set(digests).size).toBe(4);
    expect(digests.at(-1)).toBe(checkpointDigest(referenceStep('softmax-regression').model, run.trace!.finalParameters));
    const one = await executeRecipe(recipes['softmax-regression']!, { blobs, runner: runner() }, { trace: true });
    expect(digests.slice(0, 2)).toEqual(one.trace!.checkpointDigests);
    expect(run.gradientDigest).not.toBe(one.gradientDigest);
    // Untraced, the H steps fetch the next parameters alone: the same pseudo-gradient, bit for bit.
    const untraced = await executeRecipe(recipe, { blobs, runner: runner() });
    expect(untraced.gradientDigest).toBe(run.gradientDigest);
    expect(untraced.loss).toBe(run.loss);
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

  it("needs no copy of onnxruntime's outputs: each run's outputs are fresh arrays that a later run leaves alone", async () => {
    const step = referenceStep('mlp');
    const stepRunner = runner();
    const parameters = initialParameters(step.model, '3');
    const batchAt = (batchIndex: number) => {
      const batch = mnistBatch({ shardId: 'mnist-03', batchIndex, batchSize: step.batchSize, seed: '77' });
      return { x: batch.x, y: batch.y, batchSize: step.batchSize };
    };
    const first = await stepRunner.run(step, parameters, batchAt(0), step.learningRate);
    const kept = first.outputs.gradients.map((g) => g.slice());
    const second = await stepRunner.run(step, parameters, batchAt(1), step.learningRate);
    const again = await stepRunner.runStep(step, parameters, batchAt(0), step.learningRate, 'gradients');
    first.outputs.gradients.forEach((g, t) => {
      expect(g.buffer).not.toBe(second.outputs.gradients[t]!.buffer);
      expect(g.buffer).not.toBe(again.outputs.gradients![t]!.buffer);
      expect(g).toEqual(kept[t]);
      expect(again.outputs.gradients![t]).toEqual(kept[t]);
    });
    expect(second.outputs.gradients[0]).not.toEqual(kept[0]);
    // Feeds wrap the caller's arrays and onnxruntime never writes an input.
    expect(parameters).toEqual(initialParameters(step.model, '3'));
  });

  it('parses a recipe back from JSON exactly, and refuses a malformed one with INVALID_RECIPE', () => {
    const recipe = recipes.mlp!;
    expect(parseRecipe(JSON.parse(JSON.stringify(recipe)))).toEqual(recipe);
    for (const bad of [null, {}, { ...recipe, recipeVersion: 2 }, { ...recipe, seed: '-1' }, { ...recipe, learningRate: 0 }, { ...recipe, innerSteps: 0 }, { ...recipe, intraOpNumThreads: 0 }, { ...recipe, executionProvider: 'tpu' }, { ...recipe, graphDigest: 'XYZ' }]) {
      expect(() => parseRecipe(bad)).toThrow(expect.objectContaining({ code: 'INVALID_RECIPE' }));
    }
  });
});

/** The real file store, counting reads and able to hand back other bytes than it holds: what the cache must not trust blindly. */
class ObservedStore implements BlobStore {
  reads = 0;
  tamper = false;
  constructor(private readonly inner: FileBlobStore) {}
  put(bytes: Uint8Array) {
    return this.inner.put(bytes);
  }
  has(digest: string) {
    return this.inner.has(digest);
  }
  async get(digest: string) {
    this.reads += 1;
    const bytes = await this.inner.get(digest);
    if (!bytes || !this.tamper) return bytes;
    const changed = bytes.slice();
    changed[0]! ^= 1;
    return changed;
  }
}

describe('checkpoint cache', () => {
  const step = referenceStep('softmax-regression');
  const parameters = initialParameters(step.model, '99');
  const digest = checkpointDigest(step.model, parameters);
  const fresh = () => new ObservedStore(new FileBlobStore(mkdtempSync(join(tmpdir(), 'trainledger-ckpt-'))));

  it('reads, verifies and decodes a checkpoint once per digest and store, then serves the same parameters', async () => {
    const store = fresh();
    await store.put(encodeCheckpoint(step.model, parameters));
    const first = await loadCheckpoint({ checkpointDigest: digest }, step, store);
    const second = await loadCheckpoint({ checkpointDigest: digest }, step, store);
    expect(second).toBe(first);
    expect(first).toEqual(parameters);
    expect(store.reads).toBe(1);
    const recipe = recipeForAssignment({ shardId: 'mnist-03', batchIndex: 0, baseCheckpointDigest: digest, seed: '1' }, step, mnistShard('mnist-03').digest);
    const stepRunner = runner();
    const one = await executeRecipe(recipe, { blobs: store, runner: stepRunner });
    const two = await executeRecipe({ ...recipe, batchIndex: 1 }, { blobs: store, runner: stepRunner });
    expect(store.reads).toBe(1);
    expect(two.gradientDigest).not.toBe(one.gradientDigest);
    // Another store is another cache: it does not hold the checkpoint, so it says so.
    await expect(loadCheckpoint({ checkpointDigest: digest }, step, fresh())).rejects.toMatchObject({ code: 'RECIPE_CHECKPOINT_MISSING' });
  });

  it('refuses bytes that do not hash to the digest asked for, and caches no failure', async () => {
    const store = fresh();
    await expect(loadCheckpoint({ checkpointDigest: digest }, step, store)).rejects.toMatchObject({ code: 'RECIPE_CHECKPOINT_MISSING' });
    await store.put(encodeCheckpoint(step.model, parameters));
    store.tamper = true;
    await expect(loadCheckpoint({ checkpointDigest: digest }, step, store)).rejects.toMatchObject({ code: 'RECIPE_CHECKPOINT_INVALID' });
    store.tamper = false;
    expect(await loadCheckpoint({ checkpointDigest: digest }, step, store)).toEqual(parameters);
    expect(store.reads).toBe(3);
  });

  it('keeps at most MAX_CACHED_CHECKPOINTS per store, least recently used out first', async () => {
    const store = fresh();
    const digests: string[] = [];
    for (let i = 0; i <= MAX_CACHED_CHECKPOINTS; i += 1) digests.push((await store.put(encodeCheckpoint(step.model, initialParameters(step.model, String(100 + i))))).digest);
    for (const d of digests) await loadCheckpoint({ checkpointDigest: d }, step, store);
    expect(store.reads).toBe(digests.length);
    await loadCheckpoint({ checkpointDigest: digests.at(-1)! }, step, store);
    expect(store.reads).toBe(digests.length);
    await loadCheckpoint({ checkpointDigest: digests[0]! }, step, store);
    expect(store.reads).toBe(digests.length + 1);
  });
});
