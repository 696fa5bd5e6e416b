// Pure decisions behind idempotent appends: what the stream's tail says about a batch, and what an idempotency key's stream says about a claim.

import { sameEventContent } from '../event-store/hash-chain.js';
import type { AppendResult, IdempotencyClaim, LogPosition, RecordedEvent } from '../../domain/ports/event-store.js';
import { EventIdConflictError, IdempotencyKeyReusedError } from '../../domain/ports/event-store-errors.js';
import type { NormalizedEvent } from './envelope.js';

/**
 * How many events past the batch's own length the tail check reads. EventStoreDB deduplicates event ids
 * only on a best-effort basis (a recent-id cache, or ids at the exact expected positions), so the store
 * closes the gap itself: before each append, and again after a WrongExpectedVersion, it reads the
 * stream's last (batch length + this) events. A retry whose events are still there is answered with
 * their original positions. A retry that comes after more than this many other events were appended
 * to the same stream is not recognised: with an exact expected revision (every command handler's case)
 * it fails WRONG_EXPECTED_REVISION, never writes twice; with 'any' it falls back to the server's own
 * best-effort dedupe.
 */
export const DEDUPE_TAIL_SLACK = 64;

export function dedupeWindow(batchLength: number): number {
  return batchLength + DEDUPE_TAIL_SLACK;
}

export type TailDecision =
  | Readonly<{ kind: 'fresh' }>
  | Readonly<{ kind: 'duplicate'; result: AppendResult }>;

/**
 * `tail` is the stream's last events, newest first (as read backwards). The batch is a duplicate when
 * every one of its ids is there with the same content; fresh when none is; anything between is a
 * conflict, as on PostgreSQL: an id reused for other content, or a batch half in the stream.
 */
export function decideOnTail(streamId: string, tail: readonly RecordedEvent[], batch: readonly NormalizedEvent[]): TailDecision {
  const byId = new Map(tail.map((e) => [e.eventId.toLowerCase(), e]));
  const found: RecordedEvent[] = [];
  for (const event of batch) {
    const stored = byId.get(event.eventId);
    if (!stored) continue;
    if (!sameEventContent(stored, event)) throw new EventIdConflictError(streamId, event.eventId, 'the id is already used by an event with different content');
    found.push(stored);
  }
  if (found.length === 0) return { kind: 'fresh' };
  if (found.length < batch.length) {
    throw new EventIdConflictError(streamId, batch.find((e) => !byId.has(e.eventId))!.eventId, 'part of this batch is already in the stream and part is not');
  }
  found.sort((a, b) => a.revision - b.revision);
  const last = found[found.length - 1]!;
  return { kind: 'duplicate', result: { status: 'duplicate', streamId, firstRevision: found[0]!.revision, lastRevision: last.revision, position: last.position } };
}

/**
 * An idempotency key's own stream holds its history: Claimed (before the events are appended),
 * then Completed (with the result) or Released (the append failed, the key is free again).
 * The claim is what makes two requests with one key exclusive: each appends its Claimed at the
 * revision it read, so only one wins, without a multi-stream transaction.
 */
export type KeyRecord =
  | Readonly<{ kind: 'claimed'; requestDigest: string; streamId: string; eventIds: readonly string[]; claimedAtMs: number }>
  | Readonly<{ kind: 'completed'; requestDigest: string; result: StoredAppendResult }>
  | Readonly<{ kind: 'released'; requestDigest: string }>;

/** An AppendResult as JSON (positions as decimal strings). */
export type StoredAppendResult = Readonly<{ streamId: string; firstRevision: number; lastRevision: number; commit: string; prepare: string }>;

export function storeResult(result: AppendResult): StoredAppendResult {
  return {
    streamId: result.streamId,
    firstRevision: result.firstRevision,
    lastRevision: result.lastRevision,
    commit: result.position.transactionId.toString(),
    prepare: result.position.globalPosition.toString(),
  };
}

export function loadResult(stored: StoredAppendResult): AppendResult {
  const position: LogPosition = { transactionId: BigInt(stored.commit), globalPosition: BigInt(stored.prepare) };
  return { status: 'duplicate', streamId: stored.streamId, firstRevision: stored.firstRevision, lastRevision: stored.lastRevision, position };
}

/**
 * How long a claim with none of its events in the stream may stay pending before another request with
 * the same key may release it: a writer that crashed between its claim and its append leaves exactly that.
 */
export const IDEMPOTENCY_CLAIM_LEASE_MS = 30_000;

export type ClaimDecision =
  /** Nobody holds the key: claim it at this revision (null: the key's stream does not exist yet). */
  | Readonly<{ kind: 'claim'; afterRevision: number | null }>
  /** The key's request already completed: answer with its result. */
  | Readonly<{ kind: 'answered'; result: AppendResult }>
  /** Another request holds the key and may still be appending: look for its events before deciding. */
  | Readonly<{ kind: 'pending'; claim: Extract<KeyRecord, { kind: 'claimed' }>; revision: number }>;

/** Decides from the key stream's last record (and its revision) what a request with `claim` does. */
export function decideClaim(last: { record: KeyRecord; revision: number } | null, claim: IdempotencyClaim): ClaimDecision {
  if (!last) return { kind: 'claim', afterRevision: null };
  const { record, revision } = last;
  if (record.kind === 'released') return { kind: 'claim', afterRevision: revision };
  if (record.requestDigest !== claim.requestDigest) throw new IdempotencyKeyReusedError(claim.key);
  if (record.kind === 'completed') return { kind: 'answered', result: loadResult(record.result) };
  return { kind: 'pending', claim: record, revision };
}

export type PendingResolution =
  | Readonly<{ kind: 'complete'; result: AppendResult }>
  | Readonly<{ kind: 'release' }>
  | Readonly<{ kind: 'wait' }>;

/**
 * A pending claim's fate from what its stream's tail shows: all its events there, it succeeded (complete it);
 * none there and the lease is over, its writer died before appending (release it); otherwise it may still be
 * in flight, and the request is refused with IDEMPOTENCY_KEY_PENDING rather than risking a second append.
 */
export function resolvePending(claim: Extract<KeyRecord, { kind: 'claimed' }>, tail: readonly RecordedEvent[], nowMs: number): PendingResolution {
  const byId = new Map(tail.map((e) => [e.eventId.toLowerCase(), e]));
  const found = claim.eventIds.map((id) => byId.get(id)).filter((e): e is RecordedEvent => e !== undefined);
  if (found.length === claim.eventIds.length && found.length > 0) {
    found.sort((a, b) => a.revision - b.revision);
    const last = found[found.length - 1]!;
    return { kind: 'complete', result: { status: 'duplicate', streamId: claim.streamId, firstRevision: found[0]!.revision, lastRevision: last.revision, position: last.position } };
  }
  if (found.length === 0 && nowMs - claim.claimedAtMs >= IDEMPOTENCY_CLAIM_LEASE_MS) return { kind: 'release' };
  return { kind: 'wait' };
}
