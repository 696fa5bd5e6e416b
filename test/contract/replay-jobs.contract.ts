// The replay-job queue contract: each adapter runs it; claims are exclusive, leases expire, finishing is fenced.

import { afterEach, describe, expect, it } from 'vitest';
import type { ReplayJobQueue } from '../../replay/ports/replay-jobs.js';

export type OpenedQueue = Readonly<{ jobs: ReplayJobQueue; close: () => Promise<void> }>;

export function describeReplayJobQueueContract(options: { engine: string; open: () => Promise<OpenedQueue>; maxAttempts: number }): void {
  describe(`replay job queue contract [${options.engine}]`, () => {
    let opened: OpenedQueue | null = null;
    const open = async () => (opened = await options.open());
    afterEach(async () => {
      await opened?.close();
      opened = null;
    });

    const job = (n: number) => ({ jobId: `job-${n}`, assignmentId: `asg-${n}`, disputeId: `dsp-${n}`, enqueuedAtMs: 1_000 + n });

    it('enqueues a job id once and hands jobs out oldest first', async () => {
      const { jobs } = await open();
      expect(await jobs.enqueue(job(2))).toBe(true);
      expect(await jobs.enqueue(job(1))).toBe(true);
      expect(await jobs.enqueue(job(1))).toBe(false);
      expect((await jobs.claim('w', 5_000, 1_000))?.jobId).toBe('job-1');
      expect((await jobs.claim('w', 5_000, 1_000))?.jobId).toBe('job-2');
      expect(await jobs.claim('w', 5_000, 1_000)).toBeNull();
    });

    it('never gives one job to two concurrent claimers', async () => {
      const { jobs } = await open();
      for (let n = 0; n < 20; n += 1) await jobs.enqueue(job(n));
      const claims = await Promise.all(Array.from({ length: 30 }, (_, w) => jobs.claim(`w${w}`, 5_000, 60_000)));
      const claimed = claims.filter((c) => c !== null).map((c) => c!.jobId);
      expect(claimed).toHaveLength(20);
      expect(new Set(claimed).size).toBe(20);
    });

    it('gives an expired lease to the next claimer and fences the old owner out', async () => {
      const { jobs } = await open();
      await jobs.enqueue(job(1));
      expect((await jobs.claim('old', 5_000, 1_000))?.attempts).toBe(1);
      expect(await jobs.claim('new', 5_999, 1_000)).toBeNull();
      const retaken = await jobs.claim('new', 6_001, 1_000);
      expect(retaken).toMatchObject({ jobId: 'job-1', attempts: 2, leaseOwner: 'new' });
      expect(await jobs.complete('job-1', 'old', 6_100)).toBe(false);
      expect(await jobs.release('job-1', 'old', 'late', 6_100)).toBe(false);
      expect(await jobs.complete('job-1', 'new', 6_200)).toBe(true);
      expect(await jobs.status('job-1')).toEqual({ status: 'done', attempts: 2, lastError: null });
      expect(await jobs.claim('new', 99_000, 1_000)).toBeNull();
    });

    it('requeues a released job with its error, and fails it for good after the attempt limit', async () => {
      const { jobs } = await open();
      await jobs.enqueue(job(1));
      for (let attempt = 1; attempt <= options.maxAttempts; attempt += 1) {
        const claimed = await jobs.claim('w', 5_000 + attempt, 1_000);
        expect(claimed?.attempts).toBe(attempt);
        expect(await jobs.release('job-1', 'w', `boom ${attempt}`, 5_000 + attempt)).toBe(true);
      }
      expect(await jobs.status('job-1')).toEqual({ status: 'failed', attempts: options.maxAttempts, lastError: `boom ${options.maxAttempts}` });
      expect(await jobs.claim('w', 10_000, 1_000)).toBeNull();
    });

    it('fails a job whose leases keep expiring once the attempts are spent', async () => {
      const { jobs } = await open();
      await jobs.enqueue(job(1));
      let nowMs = 5_000;
      for (let attempt = 1; attempt <= options.maxAttempts; attempt += 1) {
        expect((await jobs.claim('crashing', nowMs, 1_000))?.attempts).toBe(attempt);
        nowMs += 1_001;
      }
      expect(await jobs.claim('crashing', nowMs, 1_000)).toBeNull();
      expect((await jobs.status('job-1'))?.status).toBe('failed');
    });

    it('knows nothing of a job it never saw', async () => {
      const { jobs } = await open();
      expect(await jobs.status('nope')).toBeNull();
      expect(await jobs.complete('nope', 'w', 1)).toBe(false);
    });
  });
}
