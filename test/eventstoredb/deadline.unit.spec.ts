// The claimed append's overall deadline, no server: per-call deadlines from one budget, pauses cut to it, the local fallback timer, and reconciling a lost 'completed'.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { IDEMPOTENCY_CLAIM_LEASE_MS, type KeyRecord } from '../../adapters/eventstoredb/dedupe.js';
import { CLAIMED_APPEND_DEADLINE_MS, budgetOf, callDeadlineMs, pauseWithinMs, reconcileCompletion, withLocalDeadline } from '../../adapters/eventstoredb/deadline.js';
import { ESDB_LIMITS } from '../../adapters/eventstoredb/esdb-event-store.js';

describe('the claimed append deadline', () => {
  it('ends a claimed append within half the lease, where the old worst case (20 attempts of 10 s calls) was far beyond it', () => {
    expect(CLAIMED_APPEND_DEADLINE_MS * 2).toBeLessThanOrEqual(IDEMPOTENCY_CLAIM_LEASE_MS);
    const clientDefaultDeadlineMs = 10_000;
    expect(ESDB_LIMITS.maxAppendAttempts * clientDefaultDeadlineMs).toBeGreaterThan(IDEMPOTENCY_CLAIM_LEASE_MS);
  });

  it('property: every call gets what is left of the budget, and nothing left is EVENT_STORE_UNAVAILABLE', () => {
    fc.assert(
      fc.property(fc.nat({ max: 1e9 }), fc.integer({ min: 1, max: 60_000 }), fc.nat({ max: 120_000 }), (startMs, totalMs, elapsedMs) => {
        const budget = budgetOf(startMs, totalMs);
        if (elapsedMs < totalMs) {
          const left = callDeadlineMs(budget, startMs + elapsedMs)!;
          expect(left).toBeGreaterThan(0);
          expect(left).toBeLessThanOrEqual(totalMs - elapsedMs);
          expect(pauseWithinMs(budget, startMs + elapsedMs, 1e9)).toBeLessThanOrEqual(totalMs - elapsedMs);
        } else {
          expect(() => callDeadlineMs(budget, startMs + elapsedMs)).toThrow(expect.objectContaining({ code: 'EVENT_STORE_UNAVAILABLE' }));
          expect(pauseWithinMs(budget, startMs + elapsedMs, 250)).toBe(0);
        }
      }),
    );
  });

  it('leaves calls without a budget to the client default', () => {
    expect(callDeadlineMs(null, 123)).toBeUndefined();
    expect(pauseWithinMs(null, 123, 250)).toBe(250);
  });

  it('gives up itself on a call that never answers (a batch append carries its deadline to the server only)', async () => {
    const never = new Promise<never>(() => {});
    await expect(withLocalDeadline(never, 1, 'append to s')).rejects.toMatchObject({ code: 'EVENT_STORE_UNAVAILABLE', message: expect.stringContaining('append to s') });
    await expect(withLocalDeadline(Promise.resolve(7), 1, 'x')).resolves.toBe(7);
    await expect(withLocalDeadline(Promise.resolve(8), undefined, 'x')).resolves.toBe(8);
  });
});

describe('reconciling a lost completion', () => {
  const digest = 'a'.repeat(64);
  const result = { streamId: 's', firstRevision: 0, lastRevision: 0, commit: '1', prepare: '1' };
  const at = (record: KeyRecord, revision: number) => ({ record, revision });

  it('leaves an answer already recorded, or the key in another request\'s hands', () => {
    expect(reconcileCompletion(at({ kind: 'completed', requestDigest: digest, result }, 3), digest)).toEqual({ kind: 'leave' });
    expect(reconcileCompletion(at({ kind: 'claimed', requestDigest: 'b'.repeat(64), streamId: 's', eventIds: [], claimedAtMs: 0 }, 4), digest)).toEqual({ kind: 'leave' });
    expect(reconcileCompletion(at({ kind: 'completed', requestDigest: 'b'.repeat(64), result }, 5), digest)).toEqual({ kind: 'leave' });
    expect(reconcileCompletion(null, digest)).toEqual({ kind: 'leave' });
  });

  it('records our completion on top of a release or a re-claim of our own digest: our events are in', () => {
    expect(reconcileCompletion(at({ kind: 'released', requestDigest: digest }, 2), digest)).toEqual({ kind: 'write', afterRevision: 2 });
    expect(reconcileCompletion(at({ kind: 'claimed', requestDigest: digest, streamId: 's', eventIds: [], claimedAtMs: 0 }, 6), digest)).toEqual({ kind: 'write', afterRevision: 6 });
  });
});
