// Executes a recipe end to end: resolve graph, checkpoint and batch by digest, run its inner steps, digest every result.

import { mnistBatch } from '../data/mnist.js';
import { requireDeclaredShardData } from '../data/shard-data.js';
import { stepByGraphDigest, type StepDefinition } from '../graphs/reference-steps.js';
import { checkpointDigest, denseDigest } from '../model/checkpoint.js';
import type { ParameterSet } from '../model/model-spec.js';
import type { BlobStore } from '../ports/blob-store.js';
import { recipeClass, type StepRecipe } from '../recipe.js';
import { ReplayError } from '../replay-error.js';
import { loadCheckpoint } from './checkpoint-cache.js';
import { ONNXRUNTIME_VERSION, type ExecutionProviderName, type ProviderAttempt } from './execution-providers.js';
import type { PartialStepRun, StepFetch, StepRunner } from './step-runner.js';

export { loadCheckpoint } from './checkpoint-cache.js';

/** The checkpoints a recipe passes through, for trace bisection; verifying the recipe's gradient needs none of them. */
export type RecipeTrace = Readonly<{
  /** c_0 … c_H: the digest of the checkpoint before and after every inner step. */
  checkpointDigests: readonly string[];
  finalParameters: ParameterSet;
}>;

export type RecipeExecution = Readonly<{
  recipe: StepRecipe;
  /** Graph, onnxruntime version, provider that ran, optimization level: digests compare only within one class. */
  recipeClass: string;
  /** Loss of the first inner step (the one the contributor claims). */
  loss: number;
  /** One step: the gradient. H steps: the pseudo-gradient (θ0 − θH) / learningRate. */
  gradients: ParameterSet;
  /**
   * SHA-256 of the gradients as a dense-f32 body, computed on first read and kept. A verdict
   * that finds the replayed gradient byte-identical to the submitted one already knows this
   * digest (it is the submitted one), so the match path never hashes the replay.
   */
  gradientDigest: string;
  /** Present when the execution was asked for it ({ trace: true }); null otherwise. */
  trace: RecipeTrace | null;
  provider: ExecutionProviderName;
  device: string;
  attempts: readonly ProviderAttempt[];
  onnxruntimeVersionMatches: boolean;
  /** Whole execution: loading, every inner step, digests. */
  durationMs: number;
  /** session.run alone, summed over inner steps. */
  runMs: number;
}>;

export type ExecuteDeps = Readonly<{ blobs: BlobStore; runner: StepRunner }>;

export type ExecuteOptions = Readonly<{
  /**
   * Also digest the checkpoint after every inner step (c_1 … c_H) and keep θ_H. Off by default:
   * a verdict compares the gradient alone, and each digest is one more SHA-256 of a whole
   * checkpoint per step.
   */
  trace?: boolean;
}>;

/**
 * What one execution costs beyond session.run: the checkpoint comes from the per-store cache
 * (read and verified once per digest), the batch from the cached epoch order, the feeds wrap
 * those arrays, onnxruntime computes and copies out only the outputs read (one step: loss and
 * gradients; H steps: loss and next parameters), nothing is copied after, and the gradient is
 * hashed at most once, tensor by tensor with no body built, and only when its digest is read.
 */
export async function executeRecipe(recipe: StepRecipe, deps: ExecuteDeps, options: ExecuteOptions = {}): Promise<RecipeExecution> {
  const startedMs = performance.now();
  requireRunnerFor(recipe, deps.runner);
  const step = resolveStep(recipe);
  // The recipe names the run's declared shard digest: the data held here must be that data before anything runs on it.
  requireDeclaredShardData(recipe.shardId, recipe.shardDigest);
  const base = await loadCheckpoint(recipe, step, deps.blobs);
  const trace = options.trace === true;
  // One step verifies its gradient output; H steps verify (θ0 − θH) / lr, so they need the next parameters and no gradient.
  const fetch: StepFetch = trace ? 'all' : recipe.innerSteps === 1 ? 'gradients' : 'next';
  let parameters = base;
  let loss = Number.NaN;
  let firstGradients: ParameterSet | null = null;
  let runMs = 0;
  const checkpointDigests = trace ? [recipe.checkpointDigest] : [];
  let last: PartialStepRun | null = null;
  for (let inner = 0; inner < recipe.innerSteps; inner += 1) {
    const batch = mnistBatch({ shardId: recipe.shardId, batchIndex: recipe.batchIndex + inner, batchSize: recipe.batchSize, seed: recipe.seed });
    last = await deps.runner.runStep(step, parameters, { x: batch.x, y: batch.y, batchSize: recipe.batchSize }, recipe.learningRate, fetch);
    if (inner === 0) {
      loss = last.outputs.loss;
      firstGradients = last.outputs.gradients;
    }
    runMs += last.runMs;
    if (last.outputs.next) parameters = last.outputs.next;
    if (trace) checkpointDigests.push(checkpointDigest(step.model, parameters));
  }
  if (!last) throw new Error('a recipe runs at least one inner step');
  const gradients = recipe.innerSteps === 1 ? firstGradients! : pseudoGradient(base, parameters, recipe.learningRate);
  let gradientDigest: string | undefined;
  return {
    recipe,
    recipeClass: recipeClass(recipe, last.provider),
    loss,
    gradients,
    get gradientDigest(): string {
      gradientDigest ??= denseDigest(step.model, gradients);
      return gradientDigest;
    },
    trace: trace ? { checkpointDigests, finalParameters: parameters } : null,
    provider: last.provider,
    device: last.device,
    attempts: last.attempts,
    onnxruntimeVersionMatches: recipe.onnxruntimeVersion === ONNXRUNTIME_VERSION,
    durationMs: performance.now() - startedMs,
    runMs,
  };
}

/** A runner set up for another class would run another recipe than the one named. */
function requireRunnerFor(recipe: StepRecipe, runner: StepRunner): void {
  const { settings } = runner;
  if (settings.graphOptimizationLevel !== recipe.graphOptimizationLevel || settings.intraOpNumThreads !== recipe.intraOpNumThreads) {
    throw new ReplayError(
      'RECIPE_RUNNER_MISMATCH',
      `the recipe pins optimization ${recipe.graphOptimizationLevel} and ${recipe.intraOpNumThreads} thread(s); this runner uses ${settings.graphOptimizationLevel} and ${settings.intraOpNumThreads}`,
    );
  }
}

export function resolveStep(recipe: Pick<StepRecipe, 'graphDigest' | 'model'>): StepDefinition {
  const step = stepByGraphDigest(recipe.graphDigest);
  if (!step) throw new ReplayError('RECIPE_UNKNOWN_GRAPH', `graph ${recipe.graphDigest} is not a reference step graph of this build; replay it with the build that opened the run`);
  if (step.model.name !== recipe.model) throw new ReplayError('RECIPE_MODEL_MISMATCH', `graph ${recipe.graphDigest} is the ${step.model.name} step, the recipe says ${recipe.model}`);
  return step;
}

/** Computed in float32 like the graph itself, so the same trace gives the same bytes everywhere. */
function pseudoGradient(first: ParameterSet, last: ParameterSet, learningRate: number): ParameterSet {
  const lr = Math.fround(learningRate);
  return first.map((tensor, t) => {
    const out = new Float32Array(tensor.length);
    const end = last[t]!;
    for (let i = 0; i < tensor.length; i += 1) out[i] = Math.fround(Math.fround(tensor[i]! - end[i]!) / lr);
    return out;
  });
}
