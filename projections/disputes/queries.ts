// Typed reads of the disputes projection: the most recent disputes (over all runs or one), and one dispute with its recipe.

import type { Kysely, Selectable } from 'kysely';
import type { DisputesTables } from './schema.js';

export type DisputeSummary = Readonly<{
  assignmentId: string;
  runId: string;
  contributorId: string;
  disputeId: string;
  /** The validator's reason code for the rejection under dispute. */
  rejectionCode: string;
  rejectedAtMs: number;
  disputedAtMs: number;
  reason: string;
  /** match | mismatch, null until a replay verdict is recorded. */
  replayOutcome: string | null;
  executionProvider: string | null;
  device: string | null;
  replayDurationMs: number | null;
  /** upheld | overturned, null while open. */
  resolution: string | null;
  resolvedAtMs: number | null;
}>;

export type DisputeDetail = DisputeSummary &
  Readonly<{ replayJobId: string | null; recipe: unknown; metric: unknown; tolerance: unknown; validatorId: string; replayedAtMs: number | null }>;

export type RecentDisputesQuery = Readonly<{ runId?: string; fromMs?: number; toMs?: number; limit: number }>;

const num = (v: string | null): number | null => (v === null ? null : Number(v));

function summaryOf(row: Selectable<DisputesTables['rejections']>): DisputeSummary {
  return {
    assignmentId: row.assignment_id,
    runId: row.run_id,
    contributorId: row.contributor_id,
    disputeId: row.dispute_id!,
    rejectionCode: row.reason_code,
    rejectedAtMs: Number(row.rejected_at_ms),
    disputedAtMs: Number(row.disputed_at_ms),
    reason: row.dispute_reason ?? '',
    replayOutcome: row.replay_outcome,
    executionProvider: row.execution_provider,
    device: row.device,
    replayDurationMs: num(row.replay_duration_ms),
    resolution: row.resolution,
    resolvedAtMs: num(row.resolved_at_ms),
  };
}

/** Disputes opened in [fromMs, toMs), newest first (ties by assignment id), at most `limit`. */
export async function recentDisputes(db: Kysely<any>, query: RecentDisputesQuery): Promise<DisputeSummary[]> {
  const rows = await (db as Kysely<DisputesTables>)
    .selectFrom('rejections')
    .selectAll()
    .where('disputed_at_ms', 'is not', null)
    .$if(query.runId !== undefined, (q) => q.where('run_id', '=', query.runId!))
    .$if(query.fromMs !== undefined, (q) => q.where('disputed_at_ms', '>=', String(query.fromMs)))
    .$if(query.toMs !== undefined, (q) => q.where('disputed_at_ms', '<', String(query.toMs)))
    .orderBy('disputed_at_ms', 'desc')
    .orderBy('assignment_id', 'desc')
    .limit(query.limit)
    .execute();
  return rows.map(summaryOf);
}

/** The dispute of one assignment with the replay's full recipe, metric and tolerance; null when it was never disputed. */
export async function disputeOf(db: Kysely<any>, assignmentId: string): Promise<DisputeDetail | null> {
  const row = await (db as Kysely<DisputesTables>).selectFrom('rejections').selectAll().where('assignment_id', '=', assignmentId).executeTakeFirst();
  if (row === undefined || row.dispute_id === null) return null;
  const parsed = (json: string | null): unknown => (json === null ? null : JSON.parse(json));
  return {
    ...summaryOf(row),
    validatorId: row.validator_id,
    replayJobId: row.replay_job_id,
    recipe: parsed(row.recipe_json),
    metric: parsed(row.metric_json),
    tolerance: parsed(row.tolerance_json),
    replayedAtMs: num(row.replayed_at_ms),
  };
}
