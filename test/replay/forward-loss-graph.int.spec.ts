// The forward-only loss graph on real onnxruntime and real MNIST: its loss is bitwise the train step's loss output, and the validator's held-out evaluation uses it.

import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mnistBatch, MNIST_HELDOUT_SHARD_ID, MNIST_SHARD_SIZE } from '../../replay/data/mnist.js';
import { referenceStep, type StepDefinition } from '../../replay/graphs/reference-steps.js';
import { buildForwardLossGraph, forwardLossInputNames, forwardLossOutputNames } from '../../replay/graphs/train-step-graph.js';
import { initialParameters, sha256Hex } from '../../replay/model/checkpoint.js';
import type { ModelName, ParameterSet } from '../../replay/model/model-spec.js';
import { StepRunner, type TrainBatch } from '../../replay/step/step-runner.js';
import { heldOutImprovement } from '../../replay/validator/judge-submission.js';

const MODEL_NAMES: readonly ModelName[] = ['softmax-regression', 'mlp'];
const runners: StepRunner[] = [];
const runnerWith = (level: 'disabled' | 'all') => {
  const runner = new StepRunner({ provider: 'cpu', graphOptimizationLevel: level, intraOpNumThreads: 1 });
  runners.push(runner);
  return runner;
};
const reference = runnerWith('disabled');
afterAll(async () => Promise.all(runners.map((r) => r.close())));

const batchOf = (shardId: string, batchIndex: number, batchSize: number, seed: string): TrainBatch => {
  const batch = mnistBatch({ shardId, batchIndex, batchSize, seed });
  return { x: batch.x, y: batch.y, batchSize };
};
const BATCHES: Readonly<Record<string, TrainBatch>> = {
  'mnist-04 #0 of 32': batchOf('mnist-04', 0, 32, '5'),
  'mnist-11 #7 of 32': batchOf('mnist-11', 7, 32, '901'),
  'mnist-00 #1 of 100': batchOf('mnist-00', 1, 100, '3'),
  'held-out, all 500': batchOf(MNIST_HELDOUT_SHARD_ID, 0, MNIST_SHARD_SIZE, '0'),
};

/** Real checkpoints: the seeded initialisation, then after 1, 10 and 40 SGD steps of the train-step graph on real MNIST batches. */
const checkpoints: Record<string, { step: StepDefinition; label: string; parameters: ParameterSet }[]> = {};
beforeAll(async () => {
  for (const name of MODEL_NAMES) {
    const step = referenceStep(name);
    let parameters = initialParameters(step.model, '1');
    const list = [{ step, label: 'initial', parameters }];
    for (let i = 1; i <= 40; i += 1) {
      const batch = batchOf(`mnist-0${i % 7}`, i % 15, step.batchSize, '42');
      parameters = (await reference.run(step, parameters, batch, step.learningRate)).outputs.next;
      if (i === 1 || i === 10 || i === 40) list.push({ step, label: `after ${i} steps`, parameters });
    }
    checkpoints[name] = list;
  }
}, 60_000);

describe.each(MODEL_NAMES)('forward-only loss graph for %s', (name) => {
  it('gives bitwise the train-step graph loss on real checkpoints and real MNIST batches (CPU, optimization disabled, one thread)', async () => {
    let compared = 0;
    for (const { step, label, parameters } of checkpoints[name]!) {
      for (const [batchLabel, batch] of Object.entries(BATCHES)) {
        const trainLoss = (await reference.run(step, parameters, batch, step.learningRate)).outputs.loss;
        const forwardLoss = (await reference.evaluateLoss(step, parameters, batch)).loss;
        expect(Number.isFinite(trainLoss), `${label}, ${batchLabel}`).toBe(true);
        // Object.is: the same float32, not merely close (and it would tell 0 from −0).
        expect(Object.is(forwardLoss, trainLoss), `${label}, ${batchLabel}: forward ${forwardLoss} vs train step ${trainLoss}`).toBe(true);
        compared += 1;
      }
    }
    expect(compared).toBe(4 * Object.keys(BATCHES).length);
  });

  it('stays within 1e-6 relative of the train-step loss with every optimization on, where fusions may differ between the two graphs', async () => {
    const optimized = runnerWith('all');
    for (const { step, parameters } of checkpoints[name]!) {
      for (const batch of Object.values(BATCHES)) {
        const trainLoss = (await optimized.run(step, parameters, batch, step.learningRate)).outputs.loss;
        const forwardLoss = (await optimized.evaluateLoss(step, parameters, batch)).loss;
        expect(Math.abs(forwardLoss - trainLoss) / trainLoss).toBeLessThanOrEqual(1e-6);
      }
    }
  });

  it('declares parameters, x and y as inputs and the loss as its only output; its bytes are stable and not the train step', async () => {
    const step = referenceStep(name);
    const bytes = buildForwardLossGraph(step.model);
    expect(sha256Hex(buildForwardLossGraph(step.model))).toBe(sha256Hex(bytes));
    expect(step.forwardLoss.graphDigest).toBe(sha256Hex(bytes));
    expect(step.forwardLoss.graphDigest).not.toBe(step.graphDigest);
    const session = await ort.InferenceSession.create(bytes, { executionProviders: ['cpu'] });
    try {
      expect(session.inputNames).toEqual(forwardLossInputNames(step.model));
      expect(session.outputNames).toEqual(forwardLossOutputNames());
    } finally {
      await session.release();
    }
    expect(bytes.byteLength).toBeLessThan(step.graphBytes.byteLength);
  });

  it("gives the validator's held-out evaluation exactly the numbers the train-step graph gave it", async () => {
    const { step, parameters: base } = checkpoints[name]![1]!;
    const gradients = (await reference.run(step, base, BATCHES['mnist-04 #0 of 32']!, step.learningRate)).outputs.gradients;
    const quality = await heldOutImprovement(step, base, gradients, reference);
    // What judge-submission computed before the forward-only graph: the train step's loss output, on the held-out shard.
    const heldOut = BATCHES['held-out, all 500']!;
    const lr = Math.fround(step.learningRate);
    const applied = base.map((tensor, t) => tensor.map((value, i) => value - lr * gradients[t]![i]!));
    const before = (await reference.run(step, base, heldOut, step.learningRate)).outputs.loss;
    const after = (await reference.run(step, applied, heldOut, step.learningRate)).outputs.loss;
    expect(quality).toEqual({ lossBefore: before, lossAfter: after, relativeImprovement: (before - after) / before });
    expect(quality.relativeImprovement).toBeGreaterThan(0);
  });
});
