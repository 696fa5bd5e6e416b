// Replay benchmark: recipe execution steps/s per execution provider and model, beside a bare session.run of the same graph.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { FileBlobStore } from '../../adapters/blobs/file-blob-store.js';
import { mnistBatch, mnistShard } from '../../replay/data/mnist.js';
import { referenceSteps, type StepDefinition } from '../../replay/graphs/reference-steps.js';
import { checkpointDigest, encodeCheckpoint, initialParameters } from '../../replay/model/checkpoint.js';
import { recipeForAssignment } from '../../replay/recipe.js';
import { executeRecipe } from '../../replay/step/execute-recipe.js';
import { EXECUTION_PROVIDERS, openSession, type ExecutionProviderName } from '../../replay/step/execution-providers.js';
import { feedsFor, StepRunner } from '../../replay/step/step-runner.js';
import { timeSequential } from './stats.js';

const SHARD_ID = 'mnist-04';
/** Batches of 32 in one epoch of a 500-sample shard. */
const BATCHES_PER_EPOCH = 15;

export async function runReplayBench(steps: number, log: (line: string) => void) {
  const results: Record<string, unknown> = {};
  for (const provider of EXECUTION_PROVIDERS) {
    const probe = await openSession(referenceSteps()[0]!.graphBytes, { provider, graphOptimizationLevel: 'disabled', intraOpNumThreads: 1 }).catch((error: Error) => error);
    if (probe instanceof Error) {
      results[provider] = { available: false, reason: probe.message.split('\n')[0] };
      continue;
    }
    await probe.session.release();
    const models: Record<string, unknown> = {};
    for (const step of referenceSteps()) {
      log(`bench: replay ${step.model.name} on ${provider}, ${steps} steps...`);
      models[step.model.name] = await benchModel(step, provider, steps);
    }
    results[provider] = { available: true, device: probe.device, models };
  }
  return results;
}

async function benchModel(step: StepDefinition, provider: ExecutionProviderName, steps: number) {
  const blobDir = mkdtempSync(join(tmpdir(), 'trainledger-replay-bench-'));
  const blobs = new FileBlobStore(blobDir);
  const runner = new StepRunner({ provider, graphOptimizationLevel: 'disabled', intraOpNumThreads: 1 });
  try {
    const parameters = initialParameters(step.model, '1');
    await blobs.put(encodeCheckpoint(step.model, parameters));
    const recipe = recipeForAssignment({ shardId: SHARD_ID, batchIndex: 0, baseCheckpointDigest: checkpointDigest(step.model, parameters), seed: '5' }, step, mnistShard(SHARD_ID).digest, {
      executionProvider: provider,
      graphOptimizationLevel: 'disabled',
      intraOpNumThreads: 1,
    });
    // The baseline: the same session settings, feeds built once, nothing but session.run.
    const opened = await runner.sessionFor(step);
    const batch = mnistBatch({ shardId: SHARD_ID, batchIndex: 0, batchSize: step.batchSize, seed: '5' });
    const feeds = feedsFor(step, parameters, { x: batch.x, y: batch.y, batchSize: step.batchSize }, step.learningRate);
    await warmUp(opened.session, feeds, () => executeRecipe(recipe, { blobs, runner }));
    const bare = await timeSequential(steps, 1, () => opened.session.run(feeds));
    const engine = await timeSequential(steps, 1, (i) => executeRecipe({ ...recipe, batchIndex: i % BATCHES_PER_EPOCH }, { blobs, runner }));
    return {
      engine: { stepsPerSec: engine.eventsPerSec, latencyMsP50: engine.latencyMsP50, latencyMsP99: engine.latencyMsP99 },
      bareSessionRun: { stepsPerSec: bare.eventsPerSec, latencyMsP50: bare.latencyMsP50, latencyMsP99: bare.latencyMsP99 },
      overheadRatio: Math.round((bare.eventsPerSec / engine.eventsPerSec) * 100) / 100,
    };
  } finally {
    await runner.close();
    rmSync(blobDir, { recursive: true, force: true });
  }
}

/** First runs allocate arenas and load the shard; neither belongs in a per-step figure. */
async function warmUp(session: ort.InferenceSession, feeds: Record<string, ort.Tensor>, engineStep: () => Promise<unknown>): Promise<void> {
  for (let i = 0; i < 5; i += 1) {
    await session.run(feeds);
    await engineStep();
  }
}
