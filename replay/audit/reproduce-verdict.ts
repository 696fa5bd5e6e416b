// Re-runs the recipe an assignment's verdict rests on and says whether the verdict reproduces: digests, losses, distance, threshold.

import { assignmentDecider, type AssignmentEvent, type AssignmentState } from '../../domain/assignment/index.js';
import { decodeEvent } from '../../domain/codec.js';
import { foldEvents } from '../../domain/decider.js';
import type { RecordedEvent } from '../../domain/ports/event-store.js';
import type { RunEvent } from '../../domain/run/index.js';
import { thresholdsFor, type CalibrationFile } from '../compare/calibration.js';
import { differenceMetrics, type DifferenceMetrics, type ToleranceThresholds } from '../compare/compare.js';
import type { BlobStore } from '../ports/blob-store.js';
import { parseRecipe, type StepRecipe } from '../recipe.js';
import { executeRecipe, resolveStep } from '../step/execute-recipe.js';
import type { ProviderRequest } from '../step/execution-providers.js';
import { StepRunner } from '../step/step-runner.js';
import { loadSubmittedGradients, replaySubmission } from '../validator/replay-submission.js';

/** Why a replay could not even start; each code is stable and printed by the CLI. */
export const REPRODUCE_ERROR_CODES = ['ASSIGNMENT_NOT_FOUND', 'NO_RECORDED_RECIPE', 'GRADIENT_BLOB_MISSING', 'RECORDED_RECIPE_INVALID'] as const;
export type ReproduceErrorCode = (typeof REPRODUCE_ERROR_CODES)[number];

export class ReproduceError extends Error {
  override readonly name = 'ReproduceError';
  constructor(
    readonly code: ReproduceErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** Where the recipe comes from: a dispute's replay verdict, or the validator's sampled replay inside its verdict's evidence. */
export type VerdictSource = 'replay-verdict' | 'validator-replay';

export type RecordedVerdict = Readonly<{
  source: VerdictSource;
  /** The validator's verdict on the submission, and the dispute's resolution when there was one. */
  verdict: 'accepted' | 'rejected';
  validatorReasonCode: string | null;
  resolution: 'upheld' | 'overturned' | null;
  /** What the recorded replay found: match or mismatch, with the reason code of a mismatch. */
  outcome: 'match' | 'mismatch';
  reasonCode: string | null;
  recipe: StepRecipe;
  executionProvider: string | null;
  /** The replayed gradient's digest when the verdict recorded one (validator evidence does; a replay verdict records only exactMatch). */
  replayedDigest: string | null;
}>;

type Json = Record<string, unknown>;
const asObject = (value: unknown): Json | null => (typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Json) : null);

/** The replay a verdict rests on, newest first: the dispute's replay verdict, else the validator's sampled replay; null when none ran. */
export function recordedVerdictOf(assignment: AssignmentState): RecordedVerdict | null {
  const verdict = assignment.acceptance ? 'accepted' : assignment.rejection ? 'rejected' : null;
  if (verdict === null) return null;
  const common = { verdict, validatorReasonCode: assignment.rejection?.reasonCode ?? null, resolution: assignment.resolution?.resolution ?? null } as const;
  if (assignment.verdict) {
    const tolerance = asObject(assignment.verdict.tolerance);
    return {
      ...common,
      source: 'replay-verdict',
      outcome: assignment.verdict.outcome,
      reasonCode: typeof tolerance?.reasonCode === 'string' ? tolerance.reasonCode : null,
      recipe: parseRecorded(assignment.verdict.recipe),
      executionProvider: assignment.verdict.executionProvider,
      replayedDigest: null,
    };
  }
  const evidence = asObject(assignment.acceptance?.evidence ?? assignment.rejection?.evidence);
  const replay = asObject(evidence?.replay);
  if (!replay || replay.sampled !== true || replay.recipe === undefined) return null;
  const exact = asObject(asObject(replay.comparison)?.exact);
  return {
    ...common,
    source: 'validator-replay',
    outcome: replay.outcome === 'match' ? 'match' : 'mismatch',
    reasonCode: typeof replay.reasonCode === 'string' ? replay.reasonCode : null,
    recipe: parseRecorded(replay.recipe),
    executionProvider: typeof replay.executionProvider === 'string' ? replay.executionProvider : null,
    replayedDigest: typeof exact?.replayedDigest === 'string' ? exact.replayedDigest : null,
  };
}

function parseRecorded(value: unknown): StepRecipe {
  try {
    return parseRecipe(value);
  } catch (error) {
    throw new ReproduceError('RECORDED_RECIPE_INVALID', `the recorded recipe does not parse: ${error instanceof Error ? error.message : String(error)}`);
  }
}

export function foldAssignment(events: readonly RecordedEvent[]): AssignmentState {
  return foldEvents(assignmentDecider, events.map((e) => decodeEvent<AssignmentEvent>(e)));
}

/** The run's initial checkpoint and every published one, in log order. */
export function runCheckpointDigests(runEvents: readonly RecordedEvent[]): string[] {
  const digests: string[] = [];
  for (const recorded of runEvents) {
    const event = decodeEvent<RunEvent>(recorded);
    if (event.type === 'RunOpened') digests.push(event.data.initialCheckpointDigest);
    if (event.type === 'CheckpointPublished') digests.push(event.data.digest);
  }
  return digests;
}

export type Reproduction = Readonly<{
  assignmentId: string;
  recorded: RecordedVerdict;
  /** The recipe as re-run: the recorded one with the provider asked for here. */
  recipe: StepRecipe;
  provider: string;
  device: string;
  submittedDigest: string;
  recordedReplayedDigest: string | null;
  recomputedDigest: string;
  claimedLoss: number;
  recomputedLoss: number;
  /** Submitted gradient against the recomputed one (dense values). */
  distance: DifferenceMetrics;
  threshold: ToleranceThresholds;
  outcome: 'match' | 'mismatch';
  reasonCode: string | null;
  reproduced: boolean;
  durationMs: number;
}>;

export type ReproduceDeps = Readonly<{ blobs: BlobStore; calibration: CalibrationFile | null; provider: ProviderRequest }>;

/**
 * The verdict reproduces when the re-run reaches the same outcome (and, for a mismatch, the same reason code)
 * as recorded. The runner pins the recorded optimization level and thread count, so on CPU the re-run is
 * bitwise the recorded one; on another provider the tolerance decides, as it did for the verdict.
 */
export async function reproduceVerdict(input: { assignmentEvents: readonly RecordedEvent[]; runEvents: readonly RecordedEvent[] }, deps: ReproduceDeps): Promise<Reproduction> {
  const startedMs = performance.now();
  const assignment = foldAssignment(input.assignmentEvents);
  const terms = assignment.terms;
  if (!terms) throw new ReproduceError('ASSIGNMENT_NOT_FOUND', 'the assignment has no WorkAssigned event');
  const recorded = recordedVerdictOf(assignment);
  if (!recorded) {
    const why = assignment.acceptance || assignment.rejection ? 'its verdict rested on integrity and quality checks, with no sampled replay' : `it has no verdict yet (status ${assignment.status})`;
    throw new ReproduceError('NO_RECORDED_RECIPE', `assignment ${terms.assignmentId} has no replay recipe to re-run: ${why}`);
  }
  const submission = assignment.submission!;
  const step = resolveStep(recorded.recipe);
  const submitted = await loadSubmittedGradients(deps.blobs, step, submission.gradientDigest, submission.encoding);
  if (!submitted) throw new ReproduceError('GRADIENT_BLOB_MISSING', `gradient ${submission.gradientDigest} is not in the blob folder: pass --blobs DIR (the server's <data dir>/blobs), or export the bundle --with-blobs`);
  const recipe: StepRecipe = { ...recorded.recipe, executionProvider: deps.provider };
  const runner = new StepRunner({ provider: deps.provider, graphOptimizationLevel: recipe.graphOptimizationLevel, intraOpNumThreads: recipe.intraOpNumThreads });
  try {
    const executed = await executeRecipe(recipe, { blobs: deps.blobs, runner });
    const checkpoints = runCheckpointDigests(input.runEvents);
    const index = checkpoints.lastIndexOf(recipe.checkpointDigest);
    const replay = await replaySubmission(
      {
        step,
        terms: { shardId: recipe.shardId, batchIndex: recipe.batchIndex, baseCheckpointDigest: recipe.checkpointDigest, seed: recipe.seed },
        gradientDigest: submission.gradientDigest,
        encoding: submission.encoding,
        previousCheckpointDigest: index > 0 ? checkpoints[index - 1]! : null,
        declaredShardDigest: recipe.shardDigest,
        ...submitted,
      },
      { blobs: deps.blobs, runner, calibration: deps.calibration },
    );
    const reasonCode = replay.outcome === 'mismatch' ? replay.reasonCode : null;
    return {
      assignmentId: terms.assignmentId,
      recorded,
      recipe,
      provider: executed.provider,
      device: executed.device,
      submittedDigest: submission.gradientDigest,
      recordedReplayedDigest: recorded.replayedDigest,
      recomputedDigest: executed.gradientDigest,
      claimedLoss: submission.claimedLoss,
      recomputedLoss: executed.loss,
      distance: differenceMetrics(submitted.gradients, executed.gradients),
      threshold: thresholdsFor(step.graphDigest, deps.calibration),
      outcome: replay.outcome,
      reasonCode,
      reproduced: replay.outcome === recorded.outcome && (replay.outcome === 'match' || reasonCode === recorded.reasonCode),
      durationMs: performance.now() - startedMs,
    };
  } finally {
    await runner.close();
  }
}
