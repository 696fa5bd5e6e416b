// Settles a multi-step dispute Verde-style: bisect two committed traces to the first divergent step, recompute only that step.

import { mnistBatch } from '../data/mnist.js';
import { requireDeclaredShardData } from '../data/shard-data.js';
import { checkpointDigest } from '../model/checkpoint.js';
import type { ParameterSet } from '../model/model-spec.js';
import type { StepRecipe } from '../recipe.js';
import { resolveStep } from '../step/execute-recipe.js';
import type { StepRunner } from '../step/step-runner.js';
import { bisectTrace, type BisectResult, type ClaimedCheckpoint } from './bisect.js';

/** What the contributor committed to and reveals on demand during the dispute. */
export type CommittedTrace = Readonly<{
  /** Merkle root over c_0..c_H, fixed in the submission before any dispute. */
  root: string;
  claimed(step: number): Promise<ClaimedCheckpoint>;
  /** The checkpoint's parameters at a step; the referee checks them against the agreed digest before using them. */
  checkpointAt(step: number): Promise<ParameterSet>;
}>;

export type TraceDisputeResult = BisectResult & Readonly<{ recomputeMs: number; provider: string | null }>;

/**
 * The referee never re-runs the whole trace: comparisons are free (digests), and the one step
 * recomputed starts from a checkpoint both sides agreed on, so its cost is one `session.run`.
 */
export async function resolveTraceDispute(input: {
  recipe: StepRecipe;
  trace: CommittedTrace;
  /** The challenger's digest at each step (its own replica of the trace). */
  reference: (step: number) => Promise<string>;
  runner: StepRunner;
}): Promise<TraceDisputeResult> {
  const step = resolveStep(input.recipe);
  // The referee recomputes on the shard the recipe (and its run) declared, never on whatever data is held here.
  requireDeclaredShardData(input.recipe.shardId, input.recipe.shardDigest);
  let recomputeMs = 0;
  let provider: string | null = null;
  const result = await bisectTrace({
    steps: input.recipe.innerSteps,
    root: input.trace.root,
    claimed: (i) => input.trace.claimed(i),
    reference: input.reference,
    recomputeStep: async (i) => {
      const agreed = (await input.trace.claimed(i - 1)).digest;
      const start = await input.trace.checkpointAt(i - 1);
      if (checkpointDigest(step.model, start) !== agreed) throw new Error(`the contributor's checkpoint at step ${i - 1} does not hash to the committed digest ${agreed}`);
      const batch = mnistBatch({ shardId: input.recipe.shardId, batchIndex: input.recipe.batchIndex + i - 1, batchSize: input.recipe.batchSize, seed: input.recipe.seed });
      const run = await input.runner.run(step, start, { x: batch.x, y: batch.y, batchSize: input.recipe.batchSize }, input.recipe.learningRate);
      recomputeMs += run.runMs;
      provider = run.provider;
      return checkpointDigest(step.model, run.outputs.next);
    },
  });
  return { ...result, recomputeMs, provider };
}
