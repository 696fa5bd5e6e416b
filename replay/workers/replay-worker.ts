// Dispute replays: a feeder turns disputes into durable jobs; workers claim them, re-run the step, record the verdict and resolve.

import { assignmentDecider, assignmentStreamId, resolutionImpliedBy, type AssignmentCommand, type AssignmentEvent } from '../../domain/assignment/index.js';
import { decodeEvent } from '../../domain/codec.js';
import type { EventStore } from '../../domain/ports/event-store.js';
import type { CalibrationFile } from '../compare/calibration.js';
import { isShardDataError, requireDeclaredShardData } from '../data/shard-data.js';
import type { BlobStore } from '../ports/blob-store.js';
import type { CommandBus } from '../ports/commands.js';
import type { ReplayJob, ReplayJobQueue } from '../ports/replay-jobs.js';
import type { StepRunner } from '../step/step-runner.js';
import { loadSubmittedGradients, replaySubmission, type ReplayComparison } from '../validator/replay-submission.js';
import { loadAssignmentContext } from './assignment-context.js';

export const REPLAY_FEEDER_SUBSCRIPTION = 'replay-feeder';
const FEEDER_BATCH_SIZE = 200;

/** `commands` must write to `store`: the feeder reads the log and its checkpoint there. */
export type ReplayFeederDeps = Readonly<{ store: EventStore; commands: CommandBus; jobs: ReplayJobQueue; nowMs: () => number }>;

/** The replay job of a dispute is named after it, so a re-delivered dispute can never start a second replay. */
export function replayJobIdFor(disputeId: string): string {
  return `replay-${disputeId}`;
}

/** RejectionDisputed → RequestReplay; ReplayRequested → a queued job. Both idempotent, so re-reading the log is harmless. */
export async function feedReplayJobs(deps: ReplayFeederDeps, stopped: () => boolean = () => false): Promise<number> {
  let fed = 0;
  for (let after = await deps.store.loadCheckpoint(REPLAY_FEEDER_SUBSCRIPTION); !stopped(); ) {
    const batch = await deps.store.readAll({ after, maxCount: FEEDER_BATCH_SIZE });
    if (batch.length === 0) return fed;
    let done = 0;
    for (const recorded of batch) {
      // A stop request is seen between events; the checkpoint then moves to the last one handled.
      if (stopped()) break;
      const event = decodeEvent<AssignmentEvent>(recorded);
      if (event.type === 'RejectionDisputed') {
        const { assignmentId, disputeId } = event.data;
        const command = { type: 'RequestReplay', data: { assignmentId, replayJobId: replayJobIdFor(disputeId) }, metadata: { nowMs: deps.nowMs() } } as AssignmentCommand;
        await deps.commands.handle(assignmentDecider, assignmentStreamId(assignmentId), command, { idempotencyKey: `replay-request:${disputeId}` });
      } else if (event.type === 'ReplayRequested') {
        const { assignmentId, disputeId, replayJobId } = event.data;
        if (await deps.jobs.enqueue({ jobId: replayJobId, assignmentId, disputeId, enqueuedAtMs: deps.nowMs() })) fed += 1;
      }
      done += 1;
    }
    if (done === 0) return fed;
    after = batch[done - 1]!.position;
    await deps.store.saveCheckpoint(REPLAY_FEEDER_SUBSCRIPTION, after);
  }
  return fed;
}

export type ReplayWorkerDeps = Readonly<{
  store: EventStore;
  /** Over the same store: verdicts and resolutions are written through it. */
  commands: CommandBus;
  jobs: ReplayJobQueue;
  blobs: BlobStore;
  runner: StepRunner;
  calibration: CalibrationFile | null;
  workerId: string;
  /** Longer than any replay: a live worker must never lose its lease mid-step. */
  leaseMs: number;
  nowMs: () => number;
}>;

/**
 * failed: given back to be retried (or failed for good once its attempts are spent).
 * parked: failed for good at once, with no verdict recorded, because no retry can change it: the
 * data held here is not the data the run declared (one of SHARD_DATA_ERROR_CODES, named in detail).
 */
export type JobOutcome = Readonly<{ jobId: string; result: 'resolved' | 'already-resolved' | 'lease-lost' | 'failed' | 'parked'; detail?: string }>;

export class ReplayWorker {
  constructor(private readonly deps: ReplayWorkerDeps) {}

  /** Claims and finishes one job; null when none is ready. */
  async runOne(): Promise<JobOutcome | null> {
    const { jobs, workerId, leaseMs, nowMs } = this.deps;
    const job = await jobs.claim(workerId, nowMs(), leaseMs);
    if (!job) return null;
    try {
      const result = await this.perform(job);
      // The verdict is in the log either way; a lost lease only means another worker also finished it.
      const completed = await jobs.complete(job.jobId, workerId, nowMs());
      return { jobId: job.jobId, result: completed ? result : 'lease-lost' };
    } catch (error) {
      const detail = error instanceof Error ? `${(error as { code?: string }).code ?? error.name}: ${error.message}` : String(error);
      if (isShardDataError(error)) {
        // A verdict on other data than the run promised would judge the wrong step; the dispute stays open for a person.
        const parked = await jobs.fail(job.jobId, workerId, detail, nowMs());
        return { jobId: job.jobId, result: parked ? 'parked' : 'lease-lost', detail };
      }
      await jobs.release(job.jobId, workerId, detail, nowMs());
      return { jobId: job.jobId, result: 'failed', detail };
    }
  }

  /** Runs jobs until none is ready, `maxJobs` ran, or `stopped()` holds (checked between jobs). */
  async drain(maxJobs = 1_000, stopped: () => boolean = () => false): Promise<JobOutcome[]> {
    const outcomes: JobOutcome[] = [];
    for (let i = 0; i < maxJobs && !stopped(); i += 1) {
      const outcome = await this.runOne();
      if (!outcome) break;
      outcomes.push(outcome);
    }
    return outcomes;
  }

  private async perform(job: ReplayJob): Promise<'resolved' | 'already-resolved'> {
    const context = await loadAssignmentContext(this.deps, job.assignmentId);
    if (!context) throw new Error(`assignment ${job.assignmentId} has no terms or no run in the log`);
    const { assignment } = context;
    if (assignment.status === 'resolved') return 'already-resolved';
    if (assignment.status === 'replaying') await this.recordVerdict(job, context);
    await this.command(job.assignmentId, 'ResolveDispute', { resolution: await this.impliedResolution(job.assignmentId) }, `resolve:${job.jobId}`);
    return 'resolved';
  }

  private async recordVerdict(job: ReplayJob, context: NonNullable<Awaited<ReturnType<typeof loadAssignmentContext>>>): Promise<void> {
    const { assignment, step } = context;
    const submission = assignment.submission!;
    const terms = assignment.terms!;
    if (!step) throw new Error(`run ${context.run.runId} uses graph ${context.run.stepGraphDigest}, which this build has no reference step for`);
    // Before anything is loaded or run: the data held here must be the data the run declared.
    const declaredShardDigest = requireDeclaredShardData(terms.shardId, context.declaredShardDigest);
    const submitted = await loadSubmittedGradients(this.deps.blobs, step, submission.gradientDigest, submission.encoding);
    if (!submitted) throw new Error(`gradient ${submission.gradientDigest} is not in the blob store`);
    const replay = await replaySubmission(
      { step, terms, gradientDigest: submission.gradientDigest, encoding: submission.encoding, previousCheckpointDigest: context.previousCheckpointDigest, declaredShardDigest, ...submitted },
      this.deps,
    );
    await this.command(job.assignmentId, 'RecordReplayVerdict', verdictData(job.jobId, replay), `verdict:${job.jobId}`);
  }

  private async impliedResolution(assignmentId: string) {
    const context = await loadAssignmentContext(this.deps, assignmentId);
    return resolutionImpliedBy(context!.assignment.verdict!.outcome);
  }

  private async command(assignmentId: string, type: AssignmentCommand['type'], data: Record<string, unknown>, idempotencyKey: string): Promise<void> {
    const command = { type, data: { assignmentId, ...data }, metadata: { nowMs: this.deps.nowMs() } } as AssignmentCommand;
    await this.deps.commands.handle(assignmentDecider, assignmentStreamId(assignmentId), command, { idempotencyKey });
  }
}

/** The verdict as the log records it: the recipe that reproduces it, the metric, the tolerance, where it ran and how long it took. */
function verdictData(replayJobId: string, replay: ReplayComparison): Record<string, unknown> {
  const { exact, tolerance } = replay.comparison;
  const metric: Record<string, number> = { exactMatch: exact.match ? 1 : 0 };
  if (tolerance?.mode === 'tolerance') {
    for (const [name, value] of Object.entries(tolerance.metrics)) if (Number.isFinite(value)) metric[name] = value;
  }
  return {
    replayJobId,
    outcome: replay.outcome,
    recipe: { ...replay.recipe },
    metric,
    tolerance: {
      mode: tolerance ? 'tolerance' : 'exact',
      ...(tolerance?.mode === 'tolerance' ? { thresholds: { ...tolerance.thresholds } } : {}),
      ...(replay.outcome === 'mismatch' ? { reasonCode: replay.reasonCode } : {}),
    },
    executionProvider: replay.provider,
    device: replay.device,
    durationMs: Math.max(0, Math.round(replay.durationMs)),
  };
}
