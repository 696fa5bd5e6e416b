// The event-store port on EventStoreDB/KurrentDB through @eventstore/db-client: chained appends at an exact revision, tail-checked dedupe, $all reads.
//
// What EventStoreDB does not promise, and how the layers above stay correct without it:
// - No multi-stream atomic append: this store has no appendAtomically, so handleCommandsAtomically
//   (adapters/commands/command-handler.ts) appends each part in order. The one command that writes two
//   streams is POST /v1/assignments: ReserveBudget on run-<id>, then AssignWork on assignment-<id>. A crash
//   between them leaves a reservation without its assignment; the settler releases it after
//   ORPHAN_RESERVATION_MS (adapters/lightning/assignment-settler.ts) and the assignment id is refused from
//   then on (RESERVATION_RELEASED), so money is never reserved twice nor paid without its assignment. With an
//   Idempotency-Key header each part carries its own derived key, so a retry redoes only the missing part.
//   Idempotency keys themselves live in a stream of their own (claimed before the events, completed after).
// - Positions are not contiguous: (commit, prepare) are byte offsets in the transaction log. Readers page
//   by "after this position", never by arithmetic on positions, and a short page means the end.
// - Delivery through this store's own checkpoints is at least once: a checkpoint is saved after its batch, so a
//   crash between the two hands the batch over again. The running system therefore keeps no checkpoint here: the
//   split composition (adapters/event-store/split-log.ts) keeps them in the read models' SQL database and commits
//   each projection batch's rows with its checkpoint in one transaction there (exactly once); the reactions that
//   act outside it (escrow, replay feeder, validator) are idempotent per event (keyed commands, upserts).

import { createHash, randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import {
  BACKWARDS,
  END,
  FORWARDS,
  NO_STREAM,
  START,
  jsonEvent,
  streamNameFilter,
  type AllStreamSubscription,
  type EventStoreDBClient,
  type ResolvedEvent,
} from '@eventstore/db-client';
import { invariant } from '../../domain/errors.js';
import {
  LOG_START,
  comparePositions,
  type AppendOptions,
  type AppendResult,
  type ChainVerification,
  type EventStore,
  type IdempotencyClaim,
  type LogPosition,
  type NewEvent,
  type ReadAllOptions,
  type ReadStreamOptions,
  type RecordedEvent,
  type StoredIdempotentResult,
} from '../../domain/ports/event-store.js';
import { EventStoreError, InvalidAppendError } from '../../domain/ports/event-store-errors.js';
import { GENESIS_HASH, chainHash } from '../event-store/hash-chain.js';
import { EVENT_STORE_LIMITS } from '../event-store/limits.js';
import { validateAppend } from '../event-store/validate-append.js';
import { verifyChain } from '../event-store/verify-chain.js';
import { PENDING_SCAN_MAX_EVENTS, decideClaim, decideOnTail, dedupeWindow, resolvePending, scanForClaim, storeResult, type KeyRecord } from './dedupe.js';
import { chainEvents, fromResolvedEvent, normalizeEvent, toEventData, writeIdOf, type NormalizedEvent } from './envelope.js';
import { EventStoreUnavailableError, isStreamNotFound, isWrongExpectedVersion, mapClientError } from './errors.js';
import { decideCheckpoint, decodeCheckpoint, encodeCheckpoint, readFrom, toLogPosition } from './positions.js';
import { CLAIMED_APPEND_DEADLINE_MS, budgetOf, callDeadlineMs, pauseWithinMs, reconcileCompletion, withLocalDeadline, type Budget } from './deadline.js';
import { decideWritten, type StoredEvent } from './write-outcome.js';
import { checkExpectation, chainedExpectedRevision, fromClientRevision, type StreamHeadRevision } from './revisions.js';

/**
 * TrainLedger's own bookkeeping streams start with '#', which a domain stream id can never hold
 * (validateAppend allows [A-Za-z0-9._:-]), so they never collide with one and the $all filter can
 * leave them out together with the system's '$' streams.
 */
export const INTERNAL_STREAM_PREFIX = '#trainledger/';
const CHECKPOINT_STREAM = (subscriptionId: string) => `${INTERNAL_STREAM_PREFIX}checkpoint/${subscriptionId}`;
/** Keys are hashed into the stream name: a key may hold any characters and up to 200 of them. */
const KEY_STREAM = (key: string) => `${INTERNAL_STREAM_PREFIX}idempotency/${createHash('sha256').update(key).digest('hex')}`;

/**
 * What $all readers see: events of domain streams only. One server-side stream-name filter leaves out
 * system streams ('$...': $stats, $settings, $$metadata) and the internal '#trainledger/' streams; the
 * same test runs on every event read from $all, for reads (readAll has no server filter in 6.x).
 */
export const DOMAIN_STREAMS_REGEX = '^[^$#]';
export function isDomainEvent(streamId: string, type: string): boolean {
  return !streamId.startsWith('$') && !streamId.startsWith('#') && !type.startsWith('$');
}

/** Bounds on the work one call may do. */
export const ESDB_LIMITS = Object.freeze({
  /** Re-chaining attempts for an 'any' or 'stream_exists' append that keeps losing the race for the head. */
  maxAppendAttempts: 20,
  /** Appends re-sent after a lost answer (timeout, unavailable, not leader) before the error reaches the caller. */
  maxTransportRetries: 3,
  /** The first pause before such a re-send; the n-th waits n times this. */
  transportRetryBaseMs: 250,
  /** Tries to record an idempotency key's 'completed' when other requests keep moving its stream. */
  maxCompletionAttempts: 3,
  /** Tries to save a checkpoint when other runners keep moving its stream. */
  maxCheckpointAttempts: 5,
  /** First pause before restarting a lost live wake-up subscription; it doubles per loss in a row. */
  liveRestartBaseMs: 500,
  /** Longest pause between restarts of the live wake-up subscription. */
  liveRestartMaxMs: 30_000,
  /** Events one $all page reads from the server while skipping system and internal events. */
  allPageEvents: 1_000,
  /** Streams verifyAll keeps a (revision, hash) entry for, ~200 bytes each. */
  maxVerifiedStreams: 10_000_000,
  /** Checkpoint streams this process remembers having capped at $maxCount (beyond it, each save re-sets the cap). */
  rememberedCheckpointStreams: 10_000,
});

/** How many checkpoint records a checkpoint stream keeps; older ones go at the next scavenge. */
const CHECKPOINT_STREAM_MAX_COUNT = 2;

export type EsdbEventStoreOptions = Readonly<{
  nowMs: () => number;
  /** Whether onAppended also wakes on other processes' appends, through a live filtered subscription to $all. */
  liveWakeups?: boolean;
}>;

export class EsdbEventStore implements EventStore {
  private readonly appended = new EventEmitter();
  private readonly cappedCheckpointStreams = new Set<string>();
  private live: AllStreamSubscription | null = null;
  private liveRestart: NodeJS.Timeout | null = null;
  /** Live subscriptions lost in a row since the last event one delivered. */
  private liveFailures = 0;
  private closed = false;

  constructor(readonly client: EventStoreDBClient, private readonly options: EsdbEventStoreOptions) {
    this.appended.setMaxListeners(0);
  }

  /**
   * Reads the tail (which gives the head to chain onto and the dedupe check), checks the caller's
   * expectation against that head, chains the batch, and appends at exactly that head. A
   * WrongExpectedVersion means a writer slipped in between: the loop reads the tail again, which also
   * recognises a concurrent retry of this very batch, and either answers, refuses, or re-chains.
   */
  async append(streamId: string, events: readonly NewEvent[], options: AppendOptions): Promise<AppendResult> {
    validateAppend(streamId, events, options);
    const batch = events.map(normalizeEvent);
    if (options.idempotency) return this.appendClaimed(streamId, batch, options, options.idempotency);
    return this.appendChained(streamId, batch, options);
  }

  private async appendChained(streamId: string, batch: readonly NormalizedEvent[], options: AppendOptions, budget: Budget = null): Promise<AppendResult> {
    // Every attempt's writeId: events carrying one of them were written by this call (perhaps by an
    // attempt whose answer was lost), events carrying another by a concurrent writer of the same batch.
    const ownWriteIds = new Set<string>();
    let transportRetries = 0;
    for (let attempt = 0; attempt < ESDB_LIMITS.maxAppendAttempts; attempt += 1) {
      let tail = await this.readStoredTail(streamId, dedupeWindow(batch.length), budget);
      let decision = decideOnTail(streamId, tail.map((e) => e.event), batch);
      if (decision.kind === 'read-further') {
        // The window cut through an earlier copy of this batch: one more read, just far enough back.
        tail = await this.readStoredTail(streamId, decision.count, budget);
        decision = decideOnTail(streamId, tail.map((e) => e.event), batch, false);
      }
      invariant(decision.kind !== 'read-further', 'a second tail read decides');
      if (decision.kind === 'duplicate') {
        const tailById = new Map(tail.map((e) => [e.event.eventId.toLowerCase(), e]));
        const stored = batch.map((e) => tailById.get(e.eventId)).filter((e): e is StoredEvent => e !== undefined);
        return this.answered(decideWritten(streamId, batch, stored, ownWriteIds));
      }
      const newest = tail[0]?.event;
      const head: StreamHeadRevision = newest ? newest.revision : null;
      checkExpectation(streamId, options.expectedRevision, head);
      const chained = chainEvents(streamId, batch, { revision: head, hash: newest?.hash ?? null }, this.options.nowMs());
      const writeId = randomUUID();
      ownWriteIds.add(writeId);
      try {
        const deadline = callDeadlineMs(budget, monotonicMs());
        const written = await withLocalDeadline(
          this.client.appendToStream(streamId, chained.map((e) => toEventData(e, writeId)), { expectedRevision: chainedExpectedRevision(head), deadline }),
          deadline,
          `append to ${streamId}`,
        );
        // With throwOnAppendFailure=false in the connection string the client answers a lost race instead of throwing it.
        if (!written.success) continue;
        // A success is also the server's answer to a concurrent writer's identical batch (same ids at the
        // same expected revision): read the events back to learn whose they are and where they sit.
        const lastRevision = fromClientRevision(written.nextExpectedRevision);
        const firstRevision = lastRevision - batch.length + 1;
        invariant(firstRevision >= 0, `append to ${streamId} answered revision ${lastRevision} for a batch of ${batch.length}`);
        const readBack = await this.readStored(streamId, { direction: FORWARDS, fromRevision: BigInt(firstRevision), maxCount: BigInt(batch.length) }, budget);
        const result = decideWritten(streamId, batch, readBack, ownWriteIds);
        if (result.status === 'appended') invariant(result.firstRevision === chained[0]!.revision, `append to ${streamId} landed at ${result.firstRevision}, chained for ${chained[0]!.revision}`);
        return this.answered(result);
      } catch (error) {
        if (isWrongExpectedVersion(error)) continue;
        const mapped = mapClientError(error, { streamId, expected: options.expectedRevision });
        if (mapped instanceof EventStoreUnavailableError && transportRetries < ESDB_LIMITS.maxTransportRetries) {
          transportRetries += 1;
          // The write may have happened; the next tail read finds it by its ids and owns it by its writeId.
          // The client reconnects (to the new leader, after an election) meanwhile; give it a moment, growing.
          await new Promise((resolve) => setTimeout(resolve, pauseWithinMs(budget, monotonicMs(), ESDB_LIMITS.transportRetryBaseMs * transportRetries)));
          continue;
        }
        throw mapped;
      }
    }
    throw new EventStoreError('APPEND_CONTENDED', `stream ${streamId}: lost the race for the head ${ESDB_LIMITS.maxAppendAttempts} times in a row; retry later`);
  }

  /** Wakes listeners only for what this call wrote: a duplicate wrote nothing. */
  private answered(result: AppendResult): AppendResult {
    if (result.status === 'appended') this.appended.emit('appended');
    return result;
  }

  /**
   * An append under an idempotency key. Without a transaction spanning two streams, the key's own
   * stream is claimed first (an append at the revision read, so one request wins), then the events go
   * in, then the result is recorded. A crash after the claim leaves it pending: the next request with the
   * key scans the stream forwards from the head recorded in the claim, finds the claimed events there (and
   * completes the record) or, past the lease with none there, releases the key. The whole request runs
   * under one deadline of half the lease, so a claimant past its lease has stopped writing.
   */
  private async appendClaimed(streamId: string, batch: readonly NormalizedEvent[], options: AppendOptions, claim: IdempotencyClaim): Promise<AppendResult> {
    const keyStream = KEY_STREAM(claim.key);
    // Every call from here on shares one deadline, so the whole request ends well inside the claim's lease.
    const budget = budgetOf(monotonicMs(), CLAIMED_APPEND_DEADLINE_MS);
    for (let attempt = 0; attempt < ESDB_LIMITS.maxAppendAttempts; attempt += 1) {
      const decision = decideClaim(await this.lastKeyRecord(keyStream, budget), claim);
      if (decision.kind === 'answered') return decision.result;
      if (decision.kind === 'pending') {
        const resolution = resolvePending(decision.claim, await scanForClaim(decision.claim, (fromRevision, maxCount) => this.readStoredEvents(decision.claim.streamId, fromRevision, maxCount, budget), { pageEvents: ESDB_LIMITS.allPageEvents }), this.options.nowMs());
        if (resolution.kind === 'wait') {
          throw new EventStoreError('IDEMPOTENCY_KEY_PENDING', `idempotency key ${claim.key} is held by a request still in progress; retry in a few seconds`);
        }
        if (resolution.kind === 'unresolved') {
          throw new EventStoreError('IDEMPOTENCY_KEY_UNRESOLVED', `idempotency key ${claim.key}: its claimant crashed and its events were not found in the first ${PENDING_SCAN_MAX_EVENTS} events of ${decision.claim.streamId} after the claim (scanned to revision ${resolution.scannedTo}); an operator must check that stream and complete or release the key`);
        }
        const record: KeyRecord = resolution.kind === 'complete'
          ? { kind: 'completed', requestDigest: claim.requestDigest, result: storeResult(resolution.result) }
          : { kind: 'released', requestDigest: claim.requestDigest };
        if (!(await this.appendKeyRecord(keyStream, record, decision.revision, budget))) continue;
        if (resolution.kind === 'complete') return resolution.result;
        continue;
      }
      // The head before the claim bounds where the claimant's events can land: a later request scans from there.
      const [newest] = await this.readStoredTail(streamId, 1, budget);
      const claimed: KeyRecord = { kind: 'claimed', requestDigest: claim.requestDigest, streamId, eventIds: batch.map((e) => e.eventId), claimedAtMs: this.options.nowMs(), headRevision: newest ? newest.event.revision : null };
      if (!(await this.appendKeyRecord(keyStream, claimed, decision.afterRevision, budget))) continue;
      const claimRevision = decision.afterRevision === null ? 0 : decision.afterRevision + 1;
      let result: AppendResult;
      try {
        result = await this.appendChained(streamId, batch, options, budget);
      } catch (error) {
        // A refusal means the events are not in: free the key, as PostgreSQL's rolled-back transaction does.
        // A lost answer may have written them: the claim stays pending, and the next request with the key
        // completes it by scanning forwards from the head it recorded, or releases it once the lease shows nothing came.
        if (!(error instanceof EventStoreUnavailableError)) {
          await this.appendKeyRecord(keyStream, { kind: 'released', requestDigest: claim.requestDigest }, claimRevision, budget).catch(() => false);
        }
        throw error;
      }
      await this.recordCompleted(keyStream, claim.requestDigest, result, claimRevision, budget);
      return result;
    }
    throw new EventStoreError('APPEND_CONTENDED', `idempotency key ${claim.key}: lost the race for its record ${ESDB_LIMITS.maxAppendAttempts} times in a row; retry later`);
  }

  /**
   * Records 'completed' at the claim's next revision; when another request moved the key stream first,
   * reads it again and reconciles (reconcileCompletion), a bounded number of times. The events are in
   * either way: a failure here leaves the claim pending, and the next request completes it by its scan.
   */
  private async recordCompleted(keyStream: string, requestDigest: string, result: AppendResult, claimRevision: number, budget: Budget): Promise<void> {
    const record: KeyRecord = { kind: 'completed', requestDigest, result: storeResult(result) };
    let afterRevision = claimRevision;
    for (let attempt = 0; attempt < ESDB_LIMITS.maxCompletionAttempts; attempt += 1) {
      if (await this.appendKeyRecord(keyStream, record, afterRevision, budget)) return;
      const reconciliation = reconcileCompletion(await this.lastKeyRecord(keyStream, budget), requestDigest);
      if (reconciliation.kind === 'leave') return;
      afterRevision = reconciliation.afterRevision;
    }
  }

  /** Appends one key record after `afterRevision` (null: the stream is new); false when another request moved it first. */
  private async appendKeyRecord(keyStream: string, record: KeyRecord, afterRevision: number | null, budget: Budget): Promise<boolean> {
    try {
      const deadline = callDeadlineMs(budget, monotonicMs());
      const written = await withLocalDeadline(
        this.client.appendToStream(keyStream, jsonEvent({ type: `TrainLedger.Idempotency.${record.kind}`, data: record as unknown as Record<string, unknown> }), {
          expectedRevision: afterRevision === null ? NO_STREAM : BigInt(afterRevision),
          deadline,
        }),
        deadline,
        `append to ${keyStream}`,
      );
      return written.success;
    } catch (error) {
      if (isWrongExpectedVersion(error)) return false;
      throw mapClientError(error, { streamId: keyStream });
    }
  }

  private async lastKeyRecord(keyStream: string, budget: Budget = null): Promise<{ record: KeyRecord; revision: number } | null> {
    const [last] = await this.readRaw(keyStream, { direction: BACKWARDS, fromRevision: END, maxCount: 1n }, budget);
    if (!last?.event) return null;
    return { record: last.event.data as unknown as KeyRecord, revision: fromClientRevision(last.event.revision) };
  }

  /** The last `count` events with their writeIds, newest first; [] for a stream that does not exist. */
  private readStoredTail(streamId: string, count: number, budget: Budget): Promise<StoredEvent[]> {
    return this.readStored(streamId, { direction: BACKWARDS, fromRevision: END, maxCount: BigInt(Math.min(count, EVENT_STORE_LIMITS.maxReadCount)) }, budget);
  }

  private async readStoredEvents(streamId: string, fromRevision: number, maxCount: number, budget: Budget): Promise<RecordedEvent[]> {
    return (await this.readStored(streamId, { direction: FORWARDS, fromRevision: BigInt(fromRevision), maxCount: BigInt(maxCount) }, budget)).map((e) => e.event);
  }

  private async readStored(streamId: string, options: RawReadOptions, budget: Budget): Promise<StoredEvent[]> {
    return (await this.readRaw(streamId, options, budget)).map((resolved) => ({ event: fromResolvedEvent(resolved), writeId: writeIdOf(resolved) }));
  }

  async readStream(streamId: string, options: ReadStreamOptions = {}): Promise<RecordedEvent[]> {
    const maxCount = boundedCount(options.maxCount);
    const backwards = options.direction === 'backwards';
    const fromRevision = options.fromRevision === undefined ? (backwards ? END : START) : BigInt(options.fromRevision);
    const resolved = await this.readRaw(streamId, { direction: backwards ? BACKWARDS : FORWARDS, fromRevision, maxCount: BigInt(maxCount) });
    return resolved.map(fromResolvedEvent);
  }

  /** A stream read; with a budget, under what is left of it (a read is one gRPC call: the client enforces its deadline). */
  private async readRaw(streamId: string, options: RawReadOptions, budget: Budget = null): Promise<ResolvedEvent[]> {
    const out: ResolvedEvent[] = [];
    try {
      const deadline = callDeadlineMs(budget, monotonicMs());
      for await (const resolved of this.client.readStream(streamId, deadline === undefined ? options : { ...options, deadline })) out.push(resolved);
    } catch (error) {
      if (isStreamNotFound(error)) return [];
      throw mapClientError(error, { streamId });
    }
    return out;
  }

  /**
   * Domain events strictly after `after` in $all order. The client's fromPosition is inclusive, so the
   * event at `after` itself is dropped; system and internal events are skipped and the read goes on, so a
   * short page still means the end of the log, as callers paging through it expect.
   */
  async readAll(options: ReadAllOptions = {}): Promise<RecordedEvent[]> {
    const maxCount = boundedCount(options.maxCount);
    const out: RecordedEvent[] = [];
    // Everything at or before `floor` has been considered: the caller's bound, then each page's last event.
    let floor = options.after ?? LOG_START;
    for (;;) {
      let read = 0;
      let lastPosition: LogPosition | null = null;
      try {
        for await (const resolved of this.client.readAll({ fromPosition: readFrom(floor), direction: FORWARDS, maxCount: BigInt(ESDB_LIMITS.allPageEvents) })) {
          read += 1;
          const event = resolved.event;
          if (!event) continue;
          const position = toLogPosition(event.position);
          if (comparePositions(position, floor) <= 0) continue;
          lastPosition = position;
          if (!isDomainEvent(event.streamId, event.type)) continue;
          out.push(fromResolvedEvent(resolved));
          if (out.length === maxCount) break;
        }
      } catch (error) {
        throw mapClientError(error, { streamId: '$all' });
      }
      if (out.length === maxCount || read < ESDB_LIMITS.allPageEvents || lastPosition === null) return out;
      floor = lastPosition;
    }
  }

  /** The position of the newest domain event, scanning back past system and internal events. */
  async headPosition(): Promise<LogPosition> {
    let from: typeof END | { commit: bigint; prepare: bigint } = END;
    for (;;) {
      let read = 0;
      let last: LogPosition | null = null;
      try {
        for await (const resolved of this.client.readAll({ fromPosition: from, direction: BACKWARDS, maxCount: BigInt(ESDB_LIMITS.allPageEvents) })) {
          read += 1;
          const event = resolved.event;
          if (!event) continue;
          const position = toLogPosition(event.position);
          if (last !== null && comparePositions(position, last) >= 0) continue; // the inclusive first event of a later page
          last = position;
          if (isDomainEvent(event.streamId, event.type)) return position;
        }
      } catch (error) {
        throw mapClientError(error, { streamId: '$all' });
      }
      if (read < ESDB_LIMITS.allPageEvents || last === null) return LOG_START;
      from = { commit: last.transactionId, prepare: last.globalPosition };
    }
  }

  async loadCheckpoint(subscriptionId: string): Promise<LogPosition> {
    return (await this.storedCheckpoint(CHECKPOINT_STREAM(subscriptionId)))?.position ?? LOG_START;
  }

  private async storedCheckpoint(streamId: string): Promise<{ position: LogPosition; revision: number } | null> {
    const [last] = await this.readRaw(streamId, { direction: BACKWARDS, fromRevision: END, maxCount: 1n });
    if (!last?.event) return null;
    return { position: decodeCheckpoint((last.event.data as { position?: unknown }).position), revision: fromClientRevision(last.event.revision) };
  }

  /** Forwards only (decideCheckpoint), appended at the checkpoint stream's exact last revision; a lost race is read and decided again. */
  async saveCheckpoint(subscriptionId: string, position: LogPosition): Promise<void> {
    const streamId = CHECKPOINT_STREAM(subscriptionId);
    const data = { position: encodeCheckpoint(position), savedAtMs: this.options.nowMs() };
    for (let attempt = 0; attempt < ESDB_LIMITS.maxCheckpointAttempts; attempt += 1) {
      const decision = decideCheckpoint(subscriptionId, await this.storedCheckpoint(streamId), position);
      if (decision.kind === 'skip') return;
      try {
        const written = await this.client.appendToStream(streamId, jsonEvent({ type: 'TrainLedger.Checkpoint', data }), {
          expectedRevision: decision.afterRevision === null ? NO_STREAM : BigInt(decision.afterRevision),
        });
        if (!written.success) continue;
        if (!this.cappedCheckpointStreams.has(streamId)) {
          // Only the newest record matters: cap the stream so scavenging reclaims the rest.
          await this.client.setStreamMetadata(streamId, { maxCount: CHECKPOINT_STREAM_MAX_COUNT });
          if (this.cappedCheckpointStreams.size < ESDB_LIMITS.rememberedCheckpointStreams) this.cappedCheckpointStreams.add(streamId);
        }
        return;
      } catch (error) {
        if (isWrongExpectedVersion(error)) continue;
        throw mapClientError(error, { streamId });
      }
    }
    throw new EventStoreError('APPEND_CONTENDED', `checkpoint ${subscriptionId}: lost the race for its stream ${ESDB_LIMITS.maxCheckpointAttempts} times in a row; is more than one runner saving it?`);
  }

  async lookupIdempotencyKey(key: string): Promise<StoredIdempotentResult | null> {
    const last = await this.lastKeyRecord(KEY_STREAM(key));
    if (!last || last.record.kind !== 'completed') return null;
    const decision = decideClaim(last, { key, requestDigest: last.record.requestDigest });
    invariant(decision.kind === 'answered', 'a completed key record answers its own digest');
    return { requestDigest: last.record.requestDigest, result: decision.result };
  }

  /**
   * EventStoreDB keeps no separate head row: the head is the stream's last event as the server numbers
   * it, read backwards, so a tail cut off by truncation or a $maxCount shows up as a revision gap at the
   * start, and an edited event (only possible by rewriting the database files) as a hash mismatch.
   */
  async verifyStream(streamId: string): Promise<ChainVerification> {
    // The head first: events appended while the pages are read lie past it and are left for the next
    // check, instead of a head read afterwards naming an event the pages never saw.
    const [newest] = await this.readStream(streamId, { direction: 'backwards', maxCount: 1 });
    if (!newest) return verifyChain(streamId, [], null);
    const events: RecordedEvent[] = [];
    for (let from: number | null = 0; from !== null; ) {
      const page = await this.readStream(streamId, { fromRevision: from, maxCount: EVENT_STORE_LIMITS.maxReadCount });
      const next = pageUpToHead(page, newest.revision, EVENT_STORE_LIMITS.maxReadCount);
      events.push(...next.keep);
      from = next.nextFrom;
    }
    return verifyChain(streamId, events, { revision: newest.revision, headHash: newest.hash });
  }

  /**
   * One pass over $all, keeping each stream's last (revision, hash): there is no list of streams to walk
   * without the $streams system projection, and one pass reads every event once.
   */
  async verifyAll(): Promise<ChainVerification> {
    const heads = new Map<string, { revision: number; hash: string }>();
    let eventsChecked = 0;
    for (let after = LOG_START; ; ) {
      const page = await this.readAll({ after, maxCount: EVENT_STORE_LIMITS.maxReadCount });
      for (const event of page) {
        const head = heads.get(event.streamId);
        const expectedRevision = head ? head.revision + 1 : 0;
        const prevHash = head ? head.hash : GENESIS_HASH;
        if (event.revision !== expectedRevision) {
          return { ok: false, streamId: event.streamId, revision: expectedRevision, problem: 'revision-gap', detail: `expected revision ${expectedRevision}, found ${event.revision}` };
        }
        if (event.prevHash !== prevHash) {
          return { ok: false, streamId: event.streamId, revision: event.revision, problem: 'broken-link', detail: `prev_hash ${event.prevHash} does not equal the predecessor's hash ${prevHash}` };
        }
        const recomputed = chainHash(prevHash, event);
        if (recomputed !== event.hash) {
          return { ok: false, streamId: event.streamId, revision: event.revision, problem: 'hash-mismatch', detail: `stored hash ${event.hash}, content hashes to ${recomputed}` };
        }
        if (!head && heads.size >= ESDB_LIMITS.maxVerifiedStreams) {
          throw new EventStoreError('VERIFY_TOO_LARGE', `verifyAll keeps one entry per stream and stops at ${ESDB_LIMITS.maxVerifiedStreams} streams; verify streams one by one`);
        }
        heads.set(event.streamId, { revision: event.revision, hash: event.hash });
        eventsChecked += 1;
      }
      if (page.length < EVENT_STORE_LIMITS.maxReadCount) break;
      after = page[page.length - 1]!.position;
    }
    return { ok: true, streamsChecked: heads.size, eventsChecked };
  }

  /**
   * Own appends wake listeners at once; with liveWakeups, a catch-up subscription to $all from its end,
   * filtered to domain streams on the server, wakes them for other processes' appends too. The
   * subscription only wakes: the reader still reads from its own checkpoint, so a dropped
   * subscription costs latency (polling covers it), never an event; a lost one is restarted with backoff.
   */
  onAppended(listener: () => void): () => void {
    this.appended.on('appended', listener);
    if (this.options.liveWakeups && !this.live && !this.liveRestart && !this.closed) this.startLive();
    return () => {
      this.appended.off('appended', listener);
      if (this.appended.listenerCount('appended') === 0) this.stopLive();
    };
  }

  private startLive(): void {
    this.liveRestart = null;
    const live = this.client.subscribeToAll({ fromPosition: END, filter: streamNameFilter({ regex: DOMAIN_STREAMS_REGEX }) });
    live.on('data', () => {
      this.liveFailures = 0;
      this.appended.emit('appended');
    });
    // An error, or an end this store did not ask for (a leader change closes the call): start again after a
    // growing pause while anyone listens. Readers poll meanwhile, and one wake-up on the restart covers
    // whatever was appended while it was down.
    const lost = () => {
      if (this.live !== live) return;
      this.live = null;
      if (this.closed || this.appended.listenerCount('appended') === 0) return;
      this.liveFailures += 1;
      this.liveRestart = setTimeout(() => {
        if (this.closed || this.live || this.appended.listenerCount('appended') === 0) return;
        this.startLive();
        this.appended.emit('appended');
      }, liveRestartDelayMs(this.liveFailures));
      this.liveRestart.unref();
    };
    live.on('error', lost);
    live.on('end', lost);
    live.on('close', lost);
    this.live = live;
  }

  private stopLive(): void {
    if (this.liveRestart) clearTimeout(this.liveRestart);
    this.liveRestart = null;
    this.liveFailures = 0;
    const live = this.live;
    this.live = null;
    void live?.unsubscribe().catch(() => {});
  }

  async close(): Promise<void> {
    this.closed = true;
    this.stopLive();
    this.appended.removeAllListeners();
    await this.client.dispose();
  }
}

type RawReadOptions = { direction: typeof FORWARDS | typeof BACKWARDS; fromRevision: bigint | typeof START | typeof END; maxCount: bigint };

/** Budgets run on a monotonic clock: a wall-clock step must not stretch or cut an append's deadline. */
function monotonicMs(): number {
  return performance.now();
}

/**
 * One forward page of a stream check that stops at `headRevision`: the events to keep (up to the head)
 * and where the next page starts (null: done, the head or the stream's end reached).
 */
export function pageUpToHead(page: readonly RecordedEvent[], headRevision: number, pageEvents: number): { keep: RecordedEvent[]; nextFrom: number | null } {
  const keep = page.filter((e) => e.revision <= headRevision);
  const last = page[page.length - 1];
  if (last === undefined || page.length < pageEvents || last.revision >= headRevision) return { keep, nextFrom: null };
  return { keep, nextFrom: last.revision + 1 };
}

/** The pause before restarting a lost live subscription the n-th time in a row: doubling from half a second, at most 30 s. */
export function liveRestartDelayMs(failures: number): number {
  const n = Math.max(1, Math.min(failures, 32));
  return Math.min(ESDB_LIMITS.liveRestartBaseMs * 2 ** (n - 1), ESDB_LIMITS.liveRestartMaxMs);
}

function boundedCount(maxCount: number | undefined): number {
  const count = maxCount ?? EVENT_STORE_LIMITS.defaultReadCount;
  if (!Number.isInteger(count) || count < 1 || count > EVENT_STORE_LIMITS.maxReadCount) {
    throw new InvalidAppendError(`maxCount must be an integer from 1 to ${EVENT_STORE_LIMITS.maxReadCount}, got ${String(maxCount)}`);
  }
  return count;
}
