// The replay-job queue on PostgreSQL and PGlite: FOR UPDATE SKIP LOCKED claims with leases, fenced by the lease owner.

import { randomUUID } from 'node:crypto';
import { sql, type Kysely } from 'kysely';
import { claimantsFor, type ClaimantEngine, type Claimants } from '../postgres/claimants.js';
import { migrateToLatest } from '../postgres/database.js';
import type { JobStatus, NewReplayJob, ReplayJob, ReplayJobQueue } from '../../replay/ports/replay-jobs.js';
import * as replayJobs from './migrations/0001_replay_jobs.js';

/** A job that fails this many claims (crashes, errors) is marked failed and left for a person to look at. */
export const MAX_REPLAY_ATTEMPTS = 5;
/** Distinct lease owners probed per claim: how many dead workers' jobs one claim can see past their lease. */
const MAX_OWNERS_PROBED = 32;
/** Longest error text kept per job. */
const MAX_ERROR_CHARS = 2_000;

type JobRow = {
  job_id: string;
  assignment_id: string;
  dispute_id: string;
  status: JobStatus;
  attempts: number;
  lease_owner: string | null;
  lease_expires_at_ms: string | null;
  enqueued_at_ms: string;
  finished_at_ms: string | null;
  last_error: string | null;
};

export type ReplayJobQueueOptions = Readonly<{
  /**
   * Tells a lease owner whose process is gone (a SIGKILL, a crash) from a live one, so its job is claimed at once
   * instead of after its lease: on PostgreSQL each worker holds a session advisory lock, on PGlite only this process
   * can have the database open. Without it, a dead worker's job waits out its lease.
   */
  engine?: ClaimantEngine;
}>;

export class PostgresReplayJobQueue implements ReplayJobQueue {
  private readonly workers = new Map<string, Claimants>();
  private readonly probe: Claimants | null;

  constructor(
    private readonly db: Kysely<any>,
    private readonly maxAttempts = MAX_REPLAY_ATTEMPTS,
    private readonly options: ReplayJobQueueOptions = {},
  ) {
    // A claimant never started: it only asks whether others are gone.
    this.probe = options.engine ? claimantsFor(db, options.engine, `replay-probe-${randomUUID()}`) : null;
  }

  /** A worker of this process, live until close(): its leases are taken over early only once it is gone. */
  async registerWorker(workerId: string): Promise<void> {
    if (!this.options.engine || this.workers.has(workerId)) return;
    const claimant = claimantsFor(this.db, this.options.engine, replayWorkerInstance(workerId));
    await claimant.start();
    this.workers.set(workerId, claimant);
  }

  async close(): Promise<void> {
    const workers = [...this.workers.values()];
    this.workers.clear();
    await Promise.all(workers.map((w) => w.close()));
  }

  /** Owners of unexpired leases whose process is certainly gone. */
  private async goneOwners(nowMs: number): Promise<string[]> {
    if (!this.probe) return [];
    const rows = await sql<{ lease_owner: string }>`
      SELECT DISTINCT lease_owner FROM replay_jobs
      WHERE status = 'running' AND lease_owner IS NOT NULL AND lease_expires_at_ms >= ${String(nowMs)}
      ORDER BY lease_owner LIMIT ${MAX_OWNERS_PROBED}`.execute(this.db);
    const gone: string[] = [];
    for (const { lease_owner: owner } of rows.rows) if (!this.workers.has(owner) && (await this.probe.isGone(replayWorkerInstance(owner)))) gone.push(owner);
    return gone;
  }

  async prepare(): Promise<void> {
    await migrateToLatest(this.db, { '0001_replay_jobs': replayJobs }, 'replay_jobs_migrations');
  }

  async enqueue(job: NewReplayJob): Promise<boolean> {
    const inserted = await this.db
      .insertInto('replay_jobs')
      .values({ job_id: job.jobId, assignment_id: job.assignmentId, dispute_id: job.disputeId, status: 'queued', attempts: 0, enqueued_at_ms: String(job.enqueuedAtMs) })
      .onConflict((oc) => oc.column('job_id').doNothing())
      .returning('job_id')
      .execute();
    return inserted.length === 1;
  }

  async claim(workerId: string, nowMs: number, leaseMs: number): Promise<ReplayJob | null> {
    // Queued and expired jobs first, with no probe: asking whether lease owners are gone costs a lock test per owner,
    // so it runs only when nothing else is claimable. A dead worker's job then waits at most until the queue drains
    // (or its lease ends, whichever is first) rather than costing every claim the probe.
    const row = (await this.claimFirst(workerId, nowMs, leaseMs, [])) ?? (await this.takeOverFromGone(workerId, nowMs, leaseMs));
    if (!row) return null;
    if (row.attempts > this.maxAttempts) {
      await this.finish(row.job_id, workerId, 'failed', `gave up after ${this.maxAttempts} attempts; last: ${row.last_error ?? 'lease expired'}`, nowMs);
      return this.claim(workerId, nowMs, leaseMs);
    }
    return { jobId: row.job_id, assignmentId: row.assignment_id, disputeId: row.dispute_id, attempts: row.attempts, leaseOwner: workerId, leaseExpiresAtMs: nowMs + leaseMs };
  }

  /** A lease whose owner's process is gone is as good as expired: a killed worker's job does not wait out its lease. */
  private async takeOverFromGone(workerId: string, nowMs: number, leaseMs: number): Promise<JobRow | null> {
    const gone = await this.goneOwners(nowMs);
    return gone.length === 0 ? null : this.claimFirst(workerId, nowMs, leaseMs, gone);
  }

  /** SKIP LOCKED: two claimers never wait on, or take, the same row; the lease makes a dead claimer's job claimable again. */
  private async claimFirst(workerId: string, nowMs: number, leaseMs: number, goneOwners: readonly string[]): Promise<JobRow | null> {
    const takenOver = goneOwners.length === 0 ? sql`false` : sql`(status = 'running' AND lease_owner IN (${sql.join([...goneOwners])}))`;
    const result = await sql<JobRow>`
      UPDATE replay_jobs SET status = 'running', attempts = attempts + 1, lease_owner = ${workerId}, lease_expires_at_ms = ${String(nowMs + leaseMs)}
      WHERE job_id = (
        SELECT job_id FROM replay_jobs
        WHERE status = 'queued' OR (status = 'running' AND lease_expires_at_ms < ${String(nowMs)}) OR ${takenOver}
        ORDER BY enqueued_at_ms, job_id
        LIMIT 1
        FOR UPDATE SKIP LOCKED)
      RETURNING *`.execute(this.db);
    return result.rows[0] ?? null;
  }

  async complete(jobId: string, workerId: string, nowMs: number): Promise<boolean> {
    return this.finish(jobId, workerId, 'done', null, nowMs);
  }

  async release(jobId: string, workerId: string, error: string, nowMs: number): Promise<boolean> {
    // A job whose attempts are spent fails here for good instead of waiting for one more claim.
    const result = await sql`
      UPDATE replay_jobs SET
        status = CASE WHEN attempts >= ${this.maxAttempts} THEN 'failed' ELSE 'queued' END,
        finished_at_ms = CASE WHEN attempts >= ${this.maxAttempts} THEN ${String(nowMs)}::int8 ELSE NULL END,
        lease_owner = NULL, lease_expires_at_ms = NULL, last_error = ${error.slice(0, MAX_ERROR_CHARS)}
      WHERE job_id = ${jobId} AND status = 'running' AND lease_owner = ${workerId}`.execute(this.db);
    return Number(result.numAffectedRows ?? 0n) === 1;
  }

  async fail(jobId: string, workerId: string, error: string, nowMs: number): Promise<boolean> {
    return this.finish(jobId, workerId, 'failed', error, nowMs);
  }

  async status(jobId: string): Promise<{ status: JobStatus; attempts: number; lastError: string | null } | null> {
    const row = (await this.db.selectFrom('replay_jobs').select(['status', 'attempts', 'last_error']).where('job_id', '=', jobId).executeTakeFirst()) as
      | Pick<JobRow, 'status' | 'attempts' | 'last_error'>
      | undefined;
    return row ? { status: row.status, attempts: row.attempts, lastError: row.last_error } : null;
  }

  /** Fenced by the lease owner: a worker whose lease was taken over cannot finish the job. */
  private async finish(jobId: string, workerId: string, status: 'done' | 'failed', error: string | null, nowMs: number): Promise<boolean> {
    const updated = await this.db
      .updateTable('replay_jobs')
      .set({ status, lease_owner: null, lease_expires_at_ms: null, finished_at_ms: String(nowMs), ...(error ? { last_error: error.slice(0, MAX_ERROR_CHARS) } : {}) })
      .where('job_id', '=', jobId)
      .where('status', '=', 'running')
      .where('lease_owner', '=', workerId)
      .executeTakeFirst();
    return Number(updated.numUpdatedRows) === 1;
  }
}

/** A worker's claimant instance id: apart from the HTTP layer's instances, in the same lock space. */
function replayWorkerInstance(workerId: string): string {
  return `replay-worker:${workerId}`;
}
