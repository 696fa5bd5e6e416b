// Replay benchmark: recipe execution steps/s per execution provider and model, beside a bare session.run of the same graph.
//
// engine: executeRecipe as verification calls it (checkpoint from the per-store cache, seeded
// batch, session.run fetching loss and gradients, gradient digest on demand). bareSessionRun:
// session.run of the same session with feeds built once, every output fetched; overheadRatio =
// bare steps/s / engine steps/s. bareSessionRunSameFetches fetches what the engine fetches (the
// ratio against it isolates the engine's own work), and engineWithGradientDigest also reads the
// gradient digest (one SHA-256 of the gradient, what a mismatch's evidence costs).

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileBlobStore } from '../../adapters/blobs/file-blob-store.js';
import { mnistBatch, mnistShard } from '../../replay/data/mnist.js';
import { referenceSteps, type StepDefinition } from '../../replay/graphs/reference-steps.js';
import { gradOutputName, OUTPUT_LOSS } from '../../replay/graphs/train-step-graph.js';
import { checkpointDigest, encodeCheckpoint, initialParameters } from '../../replay/model/checkpoint.js';
import { recipeForAssignment } from '../../replay/recipe.js';
import { executeRecipe } from '../../replay/step/execute-recipe.js';
import { EXECUTION_PROVIDERS, openSession, type ExecutionProviderName } from '../../replay/step/execution-providers.js';
import { feedsFor, StepRunner } from '../../replay/step/step-runner.js';
import { timeSequential, type Timing } from './stats.js';

const SHARD_ID = 'mnist-04';
/** Batches of 32 in one epoch of a 500-sample shard. */
const BATCHES_PER_EPOCH = 15;
/** Alternating rounds of every measure; each figure is the median round's. */
const ROUNDS = 5;

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
    // The baseline: the same session (so the same options and thread count), feeds built once, nothing but session.run.
    const opened = await runner.sessionFor(step);
    const batch = mnistBatch({ shardId: SHARD_ID, batchIndex: 0, batchSize: step.batchSize, seed: '5' });
    const feeds = feedsFor(step, parameters, { x: batch.x, y: batch.y, batchSize: step.batchSize }, step.learningRate);
    // The outputs a one-step engine run fetches (loss and gradients), for the second baseline.
    const engineFetches = [OUTPUT_LOSS, ...step.model.parameters.map((p) => gradOutputName(p.name))];
    const engineStep = (i: number) => executeRecipe({ ...recipe, batchIndex: i % BATCHES_PER_EPOCH }, { blobs, runner });
    const measures = {
      bare: () => opened.session.run(feeds),
      bareSameFetches: () => opened.session.run(feeds, engineFetches),
      engine: engineStep,
      // What a mismatch, or any caller that reads the digest, pays on top: one SHA-256 of the gradient.
      engineWithGradientDigest: async (i: number) => (await engineStep(i)).gradientDigest,
    };
    await warmUp(Object.values(measures));
    // Rounds alternate the four so a noisy neighbour slows each alike; each figure is its median round.
    const rounds: Record<keyof typeof measures, Timing[]> = { bare: [], bareSameFetches: [], engine: [], engineWithGradientDigest: [] };
    for (let round = 0; round < ROUNDS; round += 1) {
      for (const [name, operation] of Object.entries(measures)) rounds[name as keyof typeof measures].push(await timeSequential(steps, 1, operation));
    }
    const [bare, bareSame, engine, engineDigest] = [rounds.bare, rounds.bareSameFetches, rounds.engine, rounds.engineWithGradientDigest].map(medianRound) as [Timing, Timing, Timing, Timing];
    const figure = (t: Timing) => ({ stepsPerSec: t.eventsPerSec, latencyMsP50: t.latencyMsP50, latencyMsP99: t.latencyMsP99 });
    const ratio = (baseline: Timing, measured: Timing) => Math.round((baseline.eventsPerSec / measured.eventsPerSec) * 100) / 100;
    return {
      engine: figure(engine),
      bareSessionRun: figure(bare),
      overheadRatio: ratio(bare, engine),
      // The same ratio by median latency: steadier than rates when neighbours preempt the process.
      overheadRatioP50: Math.round((engine.latencyMsP50 / bare.latencyMsP50) * 100) / 100,
      bareSessionRunSameFetches: figure(bareSame),
      overheadRatioSameFetches: ratio(bareSame, engine),
      engineWithGradientDigest: figure(engineDigest),
      overheadRatioWithGradientDigest: ratio(bare, engineDigest),
      rounds: ROUNDS,
    };
  } finally {
    await runner.close();
    rmSync(blobDir, { recursive: true, force: true });
  }
}

/** First runs allocate arenas, load the shard and fill the caches; none of that belongs in a per-step figure. */
async function warmUp(operations: readonly ((i: number) => Promise<unknown>)[]): Promise<void> {
  for (let i = 0; i < 20; i += 1) for (const operation of operations) await operation(i);
}

/** The round with the median rate. */
function medianRound(timings: readonly Timing[]): Timing {
  return [...timings].sort((a, b) => a.eventsPerSec - b.eventsPerSec)[Math.floor(timings.length / 2)]!;
}
