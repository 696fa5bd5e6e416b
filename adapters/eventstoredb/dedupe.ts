// Pure decisions behind idempotent appends: what the stream's tail says about a batch, and what an idempotency key's stream says about a claim.

import { sameEventContent } from '../event-store/hash-chain.js';
import type { AppendResult, IdempotencyClaim, LogPosition, RecordedEvent } from '../../domain/ports/event-store.js';
import { EventIdConflictError, IdempotencyKeyReusedError } from '../../domain/ports/event-store-errors.js';
import type { NormalizedEvent } from './envelope.js';
import { EVENT_STORE_LIMITS } from '../event-store/limits.js';

/**
 * How many events past the batch's own length the tail check reads. EventStoreDB deduplicates event ids
 * only on a best-effort basis (a recent-id cache, or ids at the exact expected positions), so the store
 * closes the gap itself: before each append, and again after a WrongExpectedVersion, it reads the
 * stream's last (batch length + this) events. A retry whose events are still there is answered with
 * their original positions. A retry that comes after more than this many other events were appended
 * to the same stream is not recognised:
 * - with an exact expected revision (every command handler's case) it fails WRONG_EXPECTED_REVISION,
 *   never writes twice;
 * - with 'any' or 'stream_exists' it IS written again: the adapter always sends the exact head it chained
 *   onto, and the server's own id check only looks at the revisions right after that head, so a second
 *   copy with the same event ids lands at new revisions (the chain stays valid; readers see the events
 *   twice). Callers that retry loose appends across that many other writes must use an idempotency key,
 *   whose claim is resolved by a forward scan, not by this window. Scanning back further on every loose
 *   append would cost a read of up to that many events per write, for a case retries do not hit.
 */
export const DEDUPE_TAIL_SLACK_EVENTS = 64;

export function dedupeWindow(batchLength: number): number {
  return batchLength + DEDUPE_TAIL_SLACK_EVENTS;
}

export type TailDecision =
  | Readonly<{ kind: 'fresh' }>
  | Readonly<{ kind: 'duplicate'; result: AppendResult }>
  /** The window cut through an earlier copy of this batch: read the last `count` events and decide again. */
  | Readonly<{ kind: 'read-further'; count: number }>;

/**
 * `tail` is the stream's last events, newest first (as read backwards). The batch is a duplicate when
 * every one of its ids is there with the same content; fresh when none is; anything between is a
 * conflict, as on PostgreSQL: an id reused for other content, or a batch half in the stream. One
 * exception: when only part of the batch is there and the oldest event read is one of that part, the
 * window may have cut through an earlier copy (one append is contiguous), so the caller reads as many
 * events further back as are missing and decides again with `canReadFurther` false.
 */
export function decideOnTail(streamId: string, tail: readonly RecordedEvent[], batch: readonly NormalizedEvent[], canReadFurther = true): TailDecision {
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
    const oldest = tail[tail.length - 1]!;
    if (canReadFurther && oldest.revision > 0 && found.some((e) => e.revision === oldest.revision)) {
      return { kind: 'read-further', count: tail.length + (batch.length - found.length) };
    }
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
  /**
   * headRevision: the stream's last revision when the claim was made (null: no stream yet). The claimant
   * appends after the claim, so its events can only sit after that head, or inside the tail its dedupe
   * check read; a later request scans forwards from there, however many events came since. Absent on
   * claims written before it existed: those are scanned from revision 0.
   */
  | Readonly<{ kind: 'claimed'; requestDigest: string; streamId: string; eventIds: readonly string[]; claimedAtMs: number; headRevision?: number | null }>
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
  | Readonly<{ kind: 'wait' }>
  /** The lease is over but the bounded scan did not reach the stream's end: neither releasing nor completing is safe. */
  | Readonly<{ kind: 'unresolved'; scannedTo: number }>;

type Claimed = Extract<KeyRecord, { kind: 'claimed' }>;

/** Most events one request scans forwards looking for a pending claim's events (only after a crashed claimant). */
export const PENDING_SCAN_MAX_EVENTS = 100_000;

/**
 * The first revision a pending claim's events can be at: after the head recorded at claim time, less
 * the furthest back the claimant's own dedupe check reads (its tail window, plus the read further back
 * when that window cuts through a copy): it may have answered a duplicate found there.
 */
export function pendingScanStart(claim: Claimed): number {
  if (claim.headRevision === undefined || claim.headRevision === null) return 0;
  return Math.max(0, claim.headRevision + 1 - dedupeWindow(claim.eventIds.length) - claim.eventIds.length);
}

/** What a forward scan from pendingScanStart found: the claim's events among those read, whether it reached the stream's end, and the last revision read. */
export type PendingScan = Readonly<{ found: readonly RecordedEvent[]; reachedEnd: boolean; lastRevisionRead: number | null }>;

/** The events of one scanned page that belong to the claim. */
export function claimedIn(claim: Claimed, page: readonly RecordedEvent[]): RecordedEvent[] {
  const ids = new Set(claim.eventIds);
  return page.filter((e) => ids.has(e.eventId.toLowerCase()));
}

/**
 * Scans the claim's stream forwards from pendingScanStart, page by page (`readPage(from, count)` reads
 * revisions from `from` on, at most `count`), until its events are all found, the stream ends, or
 * `maxEvents` were read.
 */
export async function scanForClaim(
  claim: Claimed,
  readPage: (fromRevision: number, maxCount: number) => Promise<readonly RecordedEvent[]>,
  options: { maxEvents?: number; pageEvents?: number } = {},
): Promise<PendingScan> {
  const maxEvents = options.maxEvents ?? PENDING_SCAN_MAX_EVENTS;
  const pageEvents = options.pageEvents ?? EVENT_STORE_LIMITS.maxReadCount;
  const found: RecordedEvent[] = [];
  let lastRevisionRead: number | null = null;
  let from = pendingScanStart(claim);
  for (let scanned = 0; scanned < maxEvents; ) {
    const count = Math.min(pageEvents, maxEvents - scanned);
    const page = await readPage(from, count);
    found.push(...claimedIn(claim, page));
    if (page.length > 0) lastRevisionRead = page[page.length - 1]!.revision;
    if (page.length < count) return { found, reachedEnd: true, lastRevisionRead };
    if (found.length >= claim.eventIds.length) break;
    scanned += page.length;
    from = lastRevisionRead! + 1;
  }
  return { found, reachedEnd: false, lastRevisionRead };
}

/**
 * A pending claim's fate from a forward scan of its stream: all its events there, it succeeded (complete it);
 * none there, the scan reached the end and the lease is over, its writer died before appending (release it);
 * the lease over but the scan cut short by its bound: unresolved (the caller refuses with a stable code);
 * otherwise it may still be in flight, and the request is refused with IDEMPOTENCY_KEY_PENDING rather than
 * risking a second append.
 */
export function resolvePending(claim: Claimed, scan: PendingScan, nowMs: number): PendingResolution {
  const byId = new Map(scan.found.map((e) => [e.eventId.toLowerCase(), e]));
  const found = claim.eventIds.map((id) => byId.get(id)).filter((e): e is RecordedEvent => e !== undefined);
  if (found.length === claim.eventIds.length && found.length > 0) {
    found.sort((a, b) => a.revision - b.revision);
    const last = found[found.length - 1]!;
    return { kind: 'complete', result: { status: 'duplicate', streamId: claim.streamId, firstRevision: found[0]!.revision, lastRevision: last.revision, position: last.position } };
  }
  const leaseOver = nowMs - claim.claimedAtMs >= IDEMPOTENCY_CLAIM_LEASE_MS;
  if (found.length === 0 && leaseOver) return scan.reachedEnd ? { kind: 'release' } : { kind: 'unresolved', scannedTo: scan.lastRevisionRead ?? -1 };
  return { kind: 'wait' };
}
