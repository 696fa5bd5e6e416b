// Re-runs a replay verdict's step the way the replay worker did (same context, same data checks, same comparison) and says whether it reproduces.

import type { AssignmentState } from '../../domain/assignment/assignment.state.js';
import type { CalibrationFile } from '../compare/calibration.js';
import { isShardDataError, requireDeclaredShardData } from '../data/shard-data.js';
import type { BlobStore } from '../ports/blob-store.js';
import type { StepRunner } from '../step/step-runner.js';
import { loadSubmittedGradients, replaySubmission } from '../validator/replay-submission.js';
import { loadAssignmentContext, type AssignmentContextDeps } from '../workers/assignment-context.js';
import type { RecipeReplayer } from './ports.js';

export type StepRecipeReplayerDeps = AssignmentContextDeps & Readonly<{ blobs: BlobStore; runner: StepRunner; calibration: CalibrationFile | null }>;

export class StepRecipeReplayer implements RecipeReplayer {
  constructor(private readonly deps: StepRecipeReplayerDeps) {}

  async replay(assignment: AssignmentState): Promise<{ outcome: 'match' | 'mismatch' } | { outcome: 'unavailable'; reason: string }> {
    const assignmentId = assignment.terms?.assignmentId;
    if (assignmentId === undefined || assignment.submission === null) return { outcome: 'unavailable', reason: 'the assignment has no terms or no submission' };
    try {
      const context = await loadAssignmentContext(this.deps, assignmentId);
      if (!context) return { outcome: 'unavailable', reason: 'the assignment has no terms or no run in the log' };
      const { step } = context;
      const terms = context.assignment.terms!;
      if (!step) return { outcome: 'unavailable', reason: `run ${context.run.runId} uses graph ${context.run.stepGraphDigest}, which this build has no reference step for` };
      const declaredShardDigest = requireDeclaredShardData(terms.shardId, context.declaredShardDigest);
      const submission = assignment.submission;
      const submitted = await loadSubmittedGradients(this.deps.blobs, step, submission.gradientDigest, submission.encoding);
      if (!submitted) return { outcome: 'unavailable', reason: `gradient ${submission.gradientDigest} is not in the blob store` };
      const replay = await replaySubmission(
        { step, terms, gradientDigest: submission.gradientDigest, encoding: submission.encoding, previousCheckpointDigest: context.previousCheckpointDigest, declaredShardDigest, ...submitted },
        this.deps,
      );
      return { outcome: replay.outcome };
    } catch (error) {
      if (isShardDataError(error)) return { outcome: 'unavailable', reason: error instanceof Error ? error.message : String(error) };
      return { outcome: 'unavailable', reason: error instanceof Error ? `${error.name}: ${error.message}` : String(error) };
    }
  }
}
