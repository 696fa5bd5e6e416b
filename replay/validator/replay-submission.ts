// Re-runs a submission's step from its recipe and compares: exact within the recipe class, then by tolerance; names a mismatch.

import type { WorkTerms } from '../../domain/assignment/assignment.state.js';
import type { GradientEncoding } from '../../domain/assignment/assignment.state.js';
import { requireDeclaredShardData } from '../data/shard-data.js';
import { encodeDense } from '../encoding/dense-f32.js';
import { decodeSparseLoco, encodeSparseLoco, type SparseLocoOptions } from '../encoding/sparseloco.js';
import { decodeGradient } from '../encoding/decode-gradient.js';
import type { StepDefinition } from '../graphs/reference-steps.js';
import { denseDigest, sha256Hex } from '../model/checkpoint.js';
import type { ParameterSet } from '../model/model-spec.js';
import type { BlobStore } from '../ports/blob-store.js';
import { recipeForAssignment, type StepRecipe } from '../recipe.js';
import { compareGradients, differenceMetrics, type Comparison } from '../compare/compare.js';
import { thresholdsFor, type CalibrationFile } from '../compare/calibration.js';
import { executeRecipe, type RecipeExecution } from '../step/execute-recipe.js';
import type { ProviderAttempt } from '../step/execution-providers.js';
import type { StepRunner } from '../step/step-runner.js';

export type SubmissionUnderReplay = Readonly<{
  step: StepDefinition;
  terms: Pick<WorkTerms, 'shardId' | 'batchIndex' | 'baseCheckpointDigest' | 'seed'>;
  gradientDigest: string;
  encoding: GradientEncoding;
  /** The run's checkpoint before the assigned one, to recognise a stale step; null for the first. */
  previousCheckpointDigest: string | null;
  /** The digest the run declared for terms.shardId; null when the run declares no such shard. */
  declaredShardDigest: string | null;
}>;

export type ReplayComparison = Readonly<{
  recipe: StepRecipe;
  comparison: Readonly<{ exact: Comparison; tolerance: Comparison | null }>;
  staleComparison: Comparison | null;
  provider: string;
  device: string;
  attempts: readonly ProviderAttempt[];
  durationMs: number;
}> &
  (Readonly<{ outcome: 'match' }> | Readonly<{ outcome: 'mismatch'; reasonCode: 'REPLAY_SCALED_GRADIENT' | 'REPLAY_STALE_CHECKPOINT' | 'REPLAY_MISMATCH' }>);

export type ReplayDeps = Readonly<{ blobs: BlobStore; runner: StepRunner; calibration: CalibrationFile | null }>;

export async function replaySubmission(input: SubmissionUnderReplay & { gradients: ParameterSet; bytes?: Uint8Array }, deps: ReplayDeps): Promise<ReplayComparison> {
  const startedMs = performance.now();
  const { provider, graphOptimizationLevel, intraOpNumThreads } = deps.runner.settings;
  // The recipe records what the run promised, and the data held here must be exactly that before anything runs.
  const shardDigest = requireDeclaredShardData(input.terms.shardId, input.declaredShardDigest);
  const recipe = recipeForAssignment(input.terms, input.step, shardDigest, { executionProvider: provider, graphOptimizationLevel, intraOpNumThreads });
  const bytes = input.bytes ?? (await deps.blobs.get(input.gradientDigest));
  const sparse = input.encoding === 'sparseloco' && bytes ? sparseLocoOptionsOf(bytes) : null;
  const current = await executeRecipe(recipe, deps);
  const comparison = compareWith(input, current, sparse, deps.calibration);
  const base = { recipe, comparison, provider: current.provider, device: current.device, attempts: current.attempts };
  if (comparison.exact.match || comparison.tolerance?.match) return { ...base, staleComparison: null, durationMs: performance.now() - startedMs, outcome: 'match' };
  const thresholds = thresholdsFor(input.step.graphDigest, deps.calibration);
  const metrics = differenceMetrics(input.gradients, project(input.step, current.gradients, sparse));
  // Same direction, different length: the step was computed and then rescaled.
  if (metrics.cosine >= thresholds.cosineMin) return { ...base, staleComparison: null, durationMs: performance.now() - startedMs, outcome: 'mismatch', reasonCode: 'REPLAY_SCALED_GRADIENT' };
  const stale = input.previousCheckpointDigest ? await executeRecipe({ ...recipe, checkpointDigest: input.previousCheckpointDigest }, deps) : null;
  const staleComparison = stale ? compareWith(input, stale, sparse, deps.calibration) : null;
  const isStale = staleComparison !== null && (staleComparison.exact.match || staleComparison.tolerance?.match === true);
  return {
    ...base,
    staleComparison: staleComparison?.tolerance ?? staleComparison?.exact ?? null,
    durationMs: performance.now() - startedMs,
    outcome: 'mismatch',
    reasonCode: isStale ? 'REPLAY_STALE_CHECKPOINT' : 'REPLAY_MISMATCH',
  };
}

/** Decodes the stored submission the way the validator did; null when its bytes are gone. */
export async function loadSubmittedGradients(blobs: BlobStore, step: StepDefinition, gradientDigest: string, encoding: GradientEncoding): Promise<{ gradients: ParameterSet; bytes: Uint8Array } | null> {
  const bytes = await blobs.get(gradientDigest);
  return bytes ? { gradients: decodeGradient(step.model, encoding, bytes), bytes } : null;
}

/**
 * A compressed submission is compared with the replayed step compressed the same way: the
 * encoder is deterministic, so an honest contributor's bytes decode to exactly that.
 */
function compareWith(input: SubmissionUnderReplay & { gradients: ParameterSet }, replay: RecipeExecution, sparse: SparseLocoOptions | null, calibration: CalibrationFile | null) {
  const replayed = project(input.step, replay.gradients, sparse);
  const submittedDigest = sha256Hex(encodeDense(input.step.model, input.gradients));
  // Byte-identical dense bodies have the same SHA-256, so a match needs no hash of the replay;
  // only a mismatch, whose evidence names the replayed digest, pays for one.
  const replayedDigest = sameDenseBytes(input.gradients, replayed) ? submittedDigest : sparse ? denseDigest(input.step.model, replayed) : replay.gradientDigest;
  const thresholds = thresholdsFor(input.step.graphDigest, calibration);
  const common = { submittedDigest, replayedDigest, submitted: input.gradients, replayed, thresholds };
  const exact = compareGradients({ ...common, sameRecipeClass: true });
  // Another provider or optimization level changes low bits: only then does tolerance decide.
  const tolerance = exact.match ? null : compareGradients({ ...common, sameRecipeClass: false });
  return { exact, tolerance };
}

/** Whether two gradients have the same dense-f32 bytes (so 0 and −0 differ, as their digests do). */
function sameDenseBytes(a: ParameterSet, b: ParameterSet): boolean {
  if (a.length !== b.length) return false;
  return a.every((x, t) => {
    const y = b[t]!;
    return x.length === y.length && Buffer.compare(new Uint8Array(x.buffer, x.byteOffset, x.byteLength), new Uint8Array(y.buffer, y.byteOffset, y.byteLength)) === 0;
  });
}

function project(step: StepDefinition, gradients: ParameterSet, sparse: SparseLocoOptions | null): ParameterSet {
  return sparse ? decodeSparseLoco(step.model, encodeSparseLoco(step.model, gradients, sparse)) : gradients;
}

/** The encoder writes one chunkSize/topK for every tensor; the first tensor header holds them (offsets in sparseloco.ts). */
function sparseLocoOptionsOf(bytes: Uint8Array): SparseLocoOptions | null {
  if (bytes.byteLength < 7 + 8) return null;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return { chunkSize: view.getUint16(7 + 4, true), topK: view.getUint16(7 + 6, true) };
}
