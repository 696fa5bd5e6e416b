// Audits as background jobs for the API: one at a time, its progress while it runs, and a bounded list of finished reports.

import { randomUUID } from 'node:crypto';
import type { CoordinatorNode } from '../../domain/ports/lightning.js';
import type { AuditOptions, AuditProgress, AuditReport, ReplayChoice } from '../../replay/audit/run-audit.js';
import type { BlobStore } from '../../replay/ports/blob-store.js';
import type { LedgerStore } from '../event-store/ledger-store.js';

/** Finished audits kept for GET /v1/audits/:id; the oldest is forgotten first. */
export const MAX_FINISHED_AUDITS = 20;

export type AuditRequest = Readonly<{ replay: ReplayChoice; parts?: AuditOptions['parts']; settlementGraceMs?: number }>;

export type AuditJobView = Readonly<{
  auditId: string;
  status: 'running' | 'finished' | 'failed';
  requestedBy: string;
  startedAtMs: number;
  finishedAtMs: number | null;
  progress: AuditProgress | null;
  /** Once finished: the full report (msat as strings), and whether it is clean. */
  clean: boolean | null;
  report: AuditReport | null;
  error: string | null;
}>;

type Job = { -readonly [K in keyof AuditJobView]: AuditJobView[K] };

export type AuditJobDeps = Readonly<{ store: LedgerStore; node: CoordinatorNode; blobs: BlobStore; nowMs: () => number }>;

export class AuditAlreadyRunning extends Error {
  override readonly name = 'AuditAlreadyRunning';
  constructor(readonly runningAuditId: string) {
    super(`audit ${runningAuditId} is still running; wait for it (GET /v1/audits/${runningAuditId}) before starting another`);
  }
}

export class AuditJobs {
  private readonly jobs = new Map<string, Job>();
  private running: { id: string; done: Promise<void> } | null = null;
  private closing = false;

  constructor(private readonly deps: AuditJobDeps) {}

  /** Starts an audit in the background and returns its id; refuses while one runs. */
  start(request: AuditRequest, requestedBy: string): AuditJobView {
    if (this.running) throw new AuditAlreadyRunning(this.running.id);
    if (this.closing) throw new Error('the server is shutting down');
    const job: Job = { auditId: randomUUID(), status: 'running', requestedBy, startedAtMs: this.deps.nowMs(), finishedAtMs: null, progress: null, clean: null, report: null, error: null };
    this.jobs.set(job.auditId, job);
    const done = this.run(job, request).finally(() => {
      this.running = null;
      this.forgetOldest();
    });
    this.running = { id: job.auditId, done };
    return { ...job };
  }

  get(auditId: string): AuditJobView | null {
    const job = this.jobs.get(auditId);
    return job ? { ...job } : null;
  }

  /** Resolves once no audit is running (the running one finished or failed). */
  async idle(): Promise<void> {
    await this.running?.done;
  }

  /** Stops a running audit at its next page and waits for it. */
  async close(): Promise<void> {
    this.closing = true;
    await this.running?.done;
  }

  private async run(job: Job, request: AuditRequest): Promise<void> {
    const { auditOptions, openStepReplayer } = await import('../audit/audit-deps.js');
    const { runAudit } = await import('../../replay/audit/run-audit.js');
    const replayer = request.replay.mode === 'none' ? undefined : await openStepReplayer(this.deps.store, this.deps.blobs);
    try {
      const settings = {
        replay: request.replay,
        ...(request.parts ? { parts: request.parts } : {}),
        ...(request.settlementGraceMs !== undefined ? { settlementGraceMs: request.settlementGraceMs } : {}),
        onProgress: (p: AuditProgress) => void (job.progress = p),
        shouldStop: () => this.closing,
      };
      const report = await runAudit(auditOptions(this.deps.store, this.deps.node, replayer, this.deps.nowMs, settings));
      Object.assign(job, { status: 'finished', report, clean: report.clean });
    } catch (error) {
      Object.assign(job, { status: 'failed', error: error instanceof Error ? `${(error as { code?: string }).code ?? error.name}: ${error.message}` : String(error) });
    } finally {
      job.finishedAtMs = this.deps.nowMs();
      await replayer?.close();
    }
  }

  private forgetOldest(): void {
    const finished = [...this.jobs.values()].filter((j) => j.status !== 'running');
    for (const job of finished.slice(0, Math.max(0, finished.length - MAX_FINISHED_AUDITS))) this.jobs.delete(job.auditId);
  }
}
