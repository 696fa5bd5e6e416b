// The replay-job queue port: jobs claimed durably under a lease, so a dead worker's job is retried and each finishes once.

export type ReplayJob = Readonly<{
  jobId: string;
  assignmentId: string;
  disputeId: string;
  /** Claims so far, this one included. */
  attempts: number;
  leaseOwner: string;
  leaseExpiresAtMs: number;
}>;

export type NewReplayJob = Readonly<{ jobId: string; assignmentId: string; disputeId: string; enqueuedAtMs: number }>;

export type JobStatus = 'queued' | 'running' | 'done' | 'failed';

export interface ReplayJobQueue {
  /** Adds the job once: enqueuing a job id again changes nothing and returns false. */
  enqueue(job: NewReplayJob): Promise<boolean>;
  /**
   * Claims the oldest job that is queued, or running under a lease that expired, for `workerId`
   * until `nowMs + leaseMs`. Concurrent claimers never get the same job. Null when none is ready.
   */
  claim(workerId: string, nowMs: number, leaseMs: number): Promise<ReplayJob | null>;
  /** Marks the job done if `workerId` still holds its lease; false means another worker took it over. */
  complete(jobId: string, workerId: string, nowMs: number): Promise<boolean>;
  /** Gives the job back (queued again, or failed for good after the attempt limit); false if the lease was lost. */
  release(jobId: string, workerId: string, error: string, nowMs: number): Promise<boolean>;
  /**
   * Parks the job: failed for good now, with the error kept for a person to read, because retrying
   * cannot change the outcome (the data held here is not the data the run declared). False if the lease was lost.
   */
  fail(jobId: string, workerId: string, error: string, nowMs: number): Promise<boolean>;
  status(jobId: string): Promise<{ status: JobStatus; attempts: number; lastError: string | null } | null>;
}
