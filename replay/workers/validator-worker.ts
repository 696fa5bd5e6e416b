// The validator worker: follows the log, judges every submitted gradient, and records SubmissionAccepted or SubmissionRejected, or leaves it unjudged with a reason.

import { sql, type Kysely } from 'kysely';
import type { Migration } from 'kysely/migration';
import { migrateToLatest } from '../../projections/migrate.js';
import { assignmentDecider, assignmentStreamId, type AssignmentCommand, type AssignmentEvent } from '../../domain/assignment/index.js';
import { decodeEvent } from '../../domain/codec.js';
import type { EventStore, RecordedEvent } from '../../domain/ports/event-store.js';
import { isShardDataError, requireDeclaredShardData } from '../data/shard-data.js';
import type { CommandBus } from '../ports/commands.js';
import { judgeSubmission, type JudgeDeps, type Judgement } from '../validator/judge-submission.js';
import { loadAssignmentContext } from './assignment-context.js';

export const VALIDATOR_SUBSCRIPTION = 'validator';
/** Log events read per batch. */
export const VALIDATOR_BATCH_SIZE = 100;
/** Ordered; a landed migration is never edited. */
const VALIDATOR_MIGRATIONS: Readonly<Record<string, Migration>> = {
  '0001_gradient_digests': {
    async up(db: Kysely<any>): Promise<void> {
      await db.schema
        .createTable('validator_gradient_digests')
        .addColumn('run_id', 'text', (c) => c.notNull())
        .addColumn('gradient_digest', 'text', (c) => c.notNull())
        .addColumn('assignment_id', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('validator_gradient_digests_pk', ['run_id', 'gradient_digest'])
        .execute();
    },
  },
  // Submissions left unjudged, with the reason: neither accepted nor rejected, so nobody is blamed, and a person can find them.
  '0002_unjudged_submissions': {
    async up(db: Kysely<any>): Promise<void> {
      await db.schema
        .createTable('validator_unjudged')
        .addColumn('assignment_id', 'text', (c) => c.notNull())
        .addColumn('gradient_digest', 'text', (c) => c.notNull())
        .addColumn('run_id', 'text', (c) => c.notNull())
        .addColumn('code', 'text', (c) => c.notNull())
        .addColumn('reason', 'text', (c) => c.notNull())
        .addColumn('skipped_at_ms', 'int8', (c) => c.notNull())
        .addPrimaryKeyConstraint('validator_unjudged_pk', ['assignment_id', 'gradient_digest'])
        .execute();
    },
  },
};

/** Longest reason text kept per unjudged submission. */
const MAX_REASON_CHARS = 2_000;

/** A submission the validator did not judge, and why (a stable code and a sentence). */
export type UnjudgedSubmission = Readonly<{ assignmentId: string; gradientDigest: string; runId: string; code: string; reason: string; skippedAtMs: number }>;

/** Micro-units: a quality score becomes a bonus with six decimals of precision, in integer arithmetic. */
const SCORE_SCALE = 1_000_000n;

export type ValidatorWorkerDeps = JudgeDeps &
  Readonly<{
    store: EventStore;
    /** Over the same store: verdicts are written through it. */
    commands: CommandBus;
    /** The event store's database, for the validator's own table of seen gradient digests. */
    db: Kysely<any>;
    validatorId: string;
    nowMs: () => number;
    /**
     * Submissions the validator could not judge (a run with an unknown graph, a missing checkpoint, shard data here
     * that is not the data the run declared): never guessed, kept in `validator_unjudged` (see unjudged()) and reported here.
     */
    onSkipped?: (assignmentId: string, reason: string, code: string) => void;
  }>;

export type ValidatorPass = Readonly<{ judged: number; accepted: number; rejected: number; skipped: number }>;

export class ValidatorWorker {
  constructor(private readonly deps: ValidatorWorkerDeps) {}

  /** The first submitter of each gradient per run: copies of it by other assignments are rejected. */
  async prepare(): Promise<void> {
    await migrateToLatest(this.deps.db, VALIDATOR_MIGRATIONS, 'validator_migrations');
  }

  /**
   * Judges every submission after the checkpoint; the checkpoint moves after each batch. Once
   * `stopped()` holds it returns between two submissions, with the checkpoint on the last one
   * judged, so a shutdown waits for one judgement at most.
   */
  async runOnce(stopped: () => boolean = () => false): Promise<ValidatorPass> {
    const { store } = this.deps;
    const pass = { judged: 0, accepted: 0, rejected: 0, skipped: 0 };
    for (let after = await store.loadCheckpoint(VALIDATOR_SUBSCRIPTION); !stopped(); ) {
      const batch = await store.readAll({ after, maxCount: VALIDATOR_BATCH_SIZE });
      if (batch.length === 0) return pass;
      let done = 0;
      for (const recorded of batch) {
        if (stopped()) break;
        if (recorded.type === 'GradientSubmitted') await this.judge(recorded, pass);
        done += 1;
      }
      if (done === 0) return pass;
      after = batch[done - 1]!.position;
      await store.saveCheckpoint(VALIDATOR_SUBSCRIPTION, after);
    }
    return pass;
  }

  private async judge(recorded: RecordedEvent, pass: { judged: number; accepted: number; rejected: number; skipped: number }): Promise<void> {
    const event = decodeEvent<AssignmentEvent>(recorded);
    if (event.type !== 'GradientSubmitted') return;
    const { assignmentId, runId, gradientDigest } = event.data;
    const context = await loadAssignmentContext(this.deps, assignmentId);
    // Judged already (a restart mid-batch), or the submission was superseded: nothing to do.
    if (!context || context.assignment.status !== 'submitted' || context.assignment.submission?.gradientDigest !== gradientDigest) return;
    const skipped = { assignmentId, gradientDigest, runId };
    if (!context.step) return this.skip(pass, skipped, 'UNKNOWN_STEP_GRAPH', `run ${runId} uses graph ${context.run.stepGraphDigest}, which this build has no reference step for`);
    const terms = context.assignment.terms!;
    // Before anything is computed: a verdict resting on other data than the run declared would judge the wrong step.
    // It is the server's problem, not the contributor's, so the submission is left unjudged rather than rejected.
    try {
      requireDeclaredShardData(terms.shardId, context.declaredShardDigest);
    } catch (error) {
      if (isShardDataError(error)) return this.skip(pass, skipped, error.code, error.message);
      throw error;
    }
    const judgement = await judgeSubmission(
      {
        step: context.step,
        terms,
        gradientDigest,
        encoding: event.data.encoding,
        sizeBytes: event.data.sizeBytes,
        previousCheckpointDigest: context.previousCheckpointDigest,
        declaredShardDigest: context.declaredShardDigest,
        policy: context.run.verificationPolicy,
        copiedFromAssignmentId: await this.firstSubmitter(runId, gradientDigest, assignmentId),
      },
      this.deps,
    ).catch((error: unknown) => (error instanceof Error ? error : new Error(String(error))));
    if (judgement instanceof Error) return this.skip(pass, skipped, errorCode(judgement), judgement.message);
    // The assignment's own bound, not the policy's: it is what was reserved (none when the budget could not cover a bonus).
    try {
      await this.record(assignmentId, gradientDigest, judgement, terms.maxBonusMsat);
    } catch (error) {
      // A staff verdict (POST …/verdicts) came first while this one was computed: the first verdict stands, and this
      // submission is no longer the validator's to judge. Failing the pass would count toward stopping the validator.
      const now = await loadAssignmentContext(this.deps, assignmentId);
      if (now && (now.assignment.status !== 'submitted' || now.assignment.submission?.gradientDigest !== gradientDigest)) return;
      throw error;
    }
    pass.judged += 1;
    if (judgement.verdict === 'accepted') pass.accepted += 1;
    else pass.rejected += 1;
  }

  /** Null when this assignment is the first to submit these bytes in the run, else the one that was. */
  private async firstSubmitter(runId: string, gradientDigest: string, assignmentId: string): Promise<string | null> {
    await sql`INSERT INTO validator_gradient_digests (run_id, gradient_digest, assignment_id)
      VALUES (${runId}, ${gradientDigest}, ${assignmentId}) ON CONFLICT DO NOTHING`.execute(this.deps.db);
    const first = await sql<{ assignment_id: string }>`SELECT assignment_id FROM validator_gradient_digests
      WHERE run_id = ${runId} AND gradient_digest = ${gradientDigest}`.execute(this.deps.db);
    const owner = first.rows[0]?.assignment_id ?? null;
    return owner === assignmentId ? null : owner;
  }

  private async record(assignmentId: string, gradientDigest: string, judgement: Judgement, maxBonusMsat: bigint): Promise<void> {
    const { validatorId, nowMs, commands } = this.deps;
    const data =
      judgement.verdict === 'accepted'
        ? { assignmentId, validatorId, qualityScore: judgement.qualityScore, bonusMsat: bonusFor(judgement.qualityScore, maxBonusMsat), evidence: judgement.evidence }
        : { assignmentId, validatorId, reasonCode: judgement.reasonCode, evidence: judgement.evidence };
    const command = { type: judgement.verdict === 'accepted' ? 'AcceptSubmission' : 'RejectSubmission', data, metadata: { nowMs: nowMs() } } as AssignmentCommand;
    // One verdict per submitted gradient, however often the worker restarts over the same events.
    await commands.handle(assignmentDecider, assignmentStreamId(assignmentId), command, { idempotencyKey: `validate:${assignmentId}:${gradientDigest}` });
    // Judged after all (the subscription was rewound once the data was fixed): no longer unjudged.
    await sql`DELETE FROM validator_unjudged WHERE assignment_id = ${assignmentId} AND gradient_digest = ${gradientDigest}`.execute(this.deps.db);
  }

  /** Every submission left unjudged, oldest first. */
  async unjudged(): Promise<UnjudgedSubmission[]> {
    const rows = await sql<{ assignment_id: string; gradient_digest: string; run_id: string; code: string; reason: string; skipped_at_ms: string }>`
      SELECT * FROM validator_unjudged ORDER BY skipped_at_ms, assignment_id`.execute(this.deps.db);
    return rows.rows.map((r) => ({ assignmentId: r.assignment_id, gradientDigest: r.gradient_digest, runId: r.run_id, code: r.code, reason: r.reason, skippedAtMs: Number(r.skipped_at_ms) }));
  }

  private async skip(pass: { skipped: number }, submission: { assignmentId: string; gradientDigest: string; runId: string }, code: string, reason: string): Promise<void> {
    const { assignmentId, gradientDigest, runId } = submission;
    const text = reason.slice(0, MAX_REASON_CHARS);
    await sql`INSERT INTO validator_unjudged (assignment_id, gradient_digest, run_id, code, reason, skipped_at_ms)
      VALUES (${assignmentId}, ${gradientDigest}, ${runId}, ${code}, ${text}, ${String(this.deps.nowMs())})
      ON CONFLICT (assignment_id, gradient_digest) DO UPDATE SET code = EXCLUDED.code, reason = EXCLUDED.reason, skipped_at_ms = EXCLUDED.skipped_at_ms`.execute(this.deps.db);
    pass.skipped += 1;
    this.deps.onSkipped?.(assignmentId, reason, code);
  }
}

/** A thrown error's stable code when it has one (ReplayError, DomainError, BlobStoreError), else JUDGE_FAILED. */
function errorCode(error: Error): string {
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' && /^[A-Z][A-Z0-9_]{0,63}$/.test(code) ? code : 'JUDGE_FAILED';
}

/** The bonus is the quality score's share of the assignment's reserved maximum, rounded down to the msat. */
export function bonusFor(qualityScore: number, maxBonusMsat: bigint): bigint {
  const scaled = BigInt(Math.floor(Math.min(1, Math.max(0, qualityScore)) * Number(SCORE_SCALE)));
  return (maxBonusMsat * scaled) / SCORE_SCALE;
}
