// One overall deadline for an idempotent append, split into per-call gRPC deadlines, and what to do when recording 'completed' loses its race.

import { IDEMPOTENCY_CLAIM_LEASE_MS, type KeyRecord } from './dedupe.js';
import { EventStoreUnavailableError } from './errors.js';

/**
 * How long an append under an idempotency key may take from its claim on, all calls and retries
 * together. Half the lease: a request that finds the claim pending and the lease over knows the
 * claimant has stopped sending for at least as long again, so an append still in flight cannot land
 * after it releases the key. (Process clocks must agree to well within the other half.)
 */
export const CLAIMED_APPEND_DEADLINE_MS = IDEMPOTENCY_CLAIM_LEASE_MS / 2;

/** Extra wait past a call's gRPC deadline before this process gives up on it itself (batch appends carry the deadline to the server only). */
export const LOCAL_DEADLINE_GRACE_MS = 500;

/** An overall deadline on a monotonic clock (performance.now()); null: each call gets the client's default deadline. */
export type Budget = Readonly<{ deadlineAtMs: number }> | null;

export function budgetOf(nowMs: number, totalMs: number): Budget {
  return { deadlineAtMs: nowMs + totalMs };
}

/**
 * The deadline to pass to the next client call: what is left of the budget (undefined: no budget, the
 * client's default). Nothing left is a lost answer, as a timeout is: EVENT_STORE_UNAVAILABLE.
 */
export function callDeadlineMs(budget: Budget, nowMs: number): number | undefined {
  if (budget === null) return undefined;
  const leftMs = Math.floor(budget.deadlineAtMs - nowMs);
  if (leftMs <= 0) throw new EventStoreUnavailableError(`the append's overall deadline of ${CLAIMED_APPEND_DEADLINE_MS} ms passed`);
  return leftMs;
}

/** A pause before a re-send, cut to what the budget has left (so the pause itself never overruns it). */
export function pauseWithinMs(budget: Budget, nowMs: number, wantedMs: number): number {
  if (budget === null) return wantedMs;
  return Math.max(0, Math.min(wantedMs, Math.floor(budget.deadlineAtMs - nowMs)));
}

export type CompletionReconciliation =
  /** The key already records an answer: leave it. */
  | Readonly<{ kind: 'leave' }>
  /** Record 'completed' after this revision. */
  | Readonly<{ kind: 'write'; afterRevision: number }>;

/**
 * Recording 'completed' at the claim's next revision failed: another request moved the key stream
 * first. Our events are in, so the key's true answer is our result unless something already says so:
 * a 'completed' (another request found our events and completed it) or a record for another digest
 * (the key was released and reused; its holder owns it now) is left alone. A 'released' or a pending
 * claim of our digest (a retry that took the lease for over; only possible when clocks disagree) gets
 * our 'completed' on top, so every later request with the key is answered with it.
 */
export function reconcileCompletion(last: { record: KeyRecord; revision: number } | null, requestDigest: string): CompletionReconciliation {
  if (last === null) return { kind: 'leave' };
  if (last.record.kind === 'completed' || last.record.requestDigest !== requestDigest) return { kind: 'leave' };
  return { kind: 'write', afterRevision: last.revision };
}

/** Rejects with EVENT_STORE_UNAVAILABLE when `promise` has not settled `afterMs` (+ grace) from now. */
export function withLocalDeadline<T>(promise: Promise<T>, afterMs: number | undefined, what: string): Promise<T> {
  if (afterMs === undefined) return promise;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new EventStoreUnavailableError(`${what} had no answer within ${afterMs + LOCAL_DEADLINE_GRACE_MS} ms`)), afterMs + LOCAL_DEADLINE_GRACE_MS);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
