// The dedupe-on-conflict decisions, no server: what a stream's tail says about a batch, and an idempotency key's claim, release and completion.

import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { RecordedEvent } from '../../domain/ports/event-store.js';
import { EventIdConflictError, IdempotencyKeyReusedError } from '../../domain/ports/event-store-errors.js';
import {
  DEDUPE_TAIL_SLACK_EVENTS,
  IDEMPOTENCY_CLAIM_LEASE_MS,
  claimedIn,
  decideClaim,
  decideOnTail,
  dedupeWindow,
  loadResult,
  pendingScanStart,
  resolvePending,
  scanForClaim,
  storeResult,
  type KeyRecord,
} from '../../adapters/eventstoredb/dedupe.js';
import { chainEvents, normalizeEvent, type NormalizedEvent } from '../../adapters/eventstoredb/envelope.js';

const STREAM = 'run-dedupe';

function fresh(type = 'T', data: Record<string, unknown> = {}): NormalizedEvent {
  return normalizeEvent({ eventId: randomUUID(), type, data: data as NormalizedEvent['data'] });
}

/** A stream of `events` as the store would have recorded them, with $all positions that leave gaps (they are not contiguous). */
function recorded(events: readonly NormalizedEvent[]): RecordedEvent[] {
  return chainEvents(STREAM, events, { revision: null, hash: null }, 1_000).map((c, i) => ({
    streamId: STREAM, revision: c.revision, position: { transactionId: 1_000n + 317n * BigInt(i), globalPosition: 1_000n + 317n * BigInt(i) },
    eventId: c.eventId, type: c.type, schemaVersion: c.schemaVersion, data: c.data, metadata: c.metadata, recordedAtMs: c.recordedAtMs, prevHash: c.prevHash, hash: c.hash,
  }));
}

/** The tail as the store reads it: the newest `count`, newest first. */
const tailOf = (stream: readonly RecordedEvent[], count: number) => stream.slice(-count).reverse();

describe('the tail check on append', () => {
  it('answers a retried batch with its original revisions and position', () => {
    const batch = [fresh('A', { n: 1 }), fresh('B', { n: 2 })];
    const stream = recorded([fresh(), ...batch]);
    const decision = decideOnTail(STREAM, tailOf(stream, dedupeWindow(batch.length)), batch);
    expect(decision).toEqual({ kind: 'duplicate', result: { status: 'duplicate', streamId: STREAM, firstRevision: 1, lastRevision: 2, position: stream[2]!.position } });
  });

  it('treats a batch with none of its ids in the tail as fresh', () => {
    expect(decideOnTail(STREAM, tailOf(recorded([fresh(), fresh()]), 10), [fresh()])).toEqual({ kind: 'fresh' });
    expect(decideOnTail(STREAM, [], [fresh()])).toEqual({ kind: 'fresh' });
  });

  it('refuses an id reused for other content, and a batch half in the stream, with EVENT_ID_CONFLICT', () => {
    const original = fresh('A', { n: 1 });
    const stream = recorded([original]);
    expect(() => decideOnTail(STREAM, tailOf(stream, 10), [{ ...original, data: { n: 2 } }])).toThrow(EventIdConflictError);
    expect(() => decideOnTail(STREAM, tailOf(stream, 10), [{ ...original, type: 'Other' }])).toThrow(/different content/);
    expect(() => decideOnTail(STREAM, tailOf(stream, 10), [original, fresh()])).toThrow(/part of this batch/);
  });

  it('property: a retry is recognised whenever at most DEDUPE_TAIL_SLACK_EVENTS events came after it, whatever came before', () => {
    fc.assert(
      fc.property(fc.nat({ max: 20 }), fc.integer({ min: 1, max: 12 }), fc.nat({ max: DEDUPE_TAIL_SLACK_EVENTS }), (before, size, after) => {
        const batch = Array.from({ length: size }, (_, n) => fresh('B', { n }));
        const stream = recorded([...Array.from({ length: before }, () => fresh()), ...batch, ...Array.from({ length: after }, () => fresh())]);
        const decision = decideOnTail(STREAM, tailOf(stream, dedupeWindow(size)), batch);
        expect(decision).toMatchObject({ kind: 'duplicate', result: { firstRevision: before, lastRevision: before + size - 1, position: stream[before + size - 1]!.position } });
      }),
    );
  });

  it('property: a retry whose copy the window cuts through is recognised after one read further back, never EVENT_ID_CONFLICT', () => {
    fc.assert(
      fc.property(fc.nat({ max: 20 }), fc.integer({ min: 2, max: 12 }), fc.integer({ min: 1, max: 11 }), (before, size, overhang) => {
        fc.pre(overhang < size);
        const batch = Array.from({ length: size }, (_, n) => fresh('B', { n }));
        // DEDUPE_TAIL_SLACK_EVENTS + overhang events after the copy: the window holds only its newest size - overhang events.
        const stream = recorded([...Array.from({ length: before + 1 }, () => fresh()), ...batch, ...Array.from({ length: DEDUPE_TAIL_SLACK_EVENTS + overhang }, () => fresh())]);
        const first = decideOnTail(STREAM, tailOf(stream, dedupeWindow(size)), batch);
        expect(first).toEqual({ kind: 'read-further', count: dedupeWindow(size) + overhang });
        if (first.kind !== 'read-further') return;
        expect(decideOnTail(STREAM, tailOf(stream, first.count), batch, false)).toMatchObject({ kind: 'duplicate', result: { firstRevision: before + 1, lastRevision: before + size } });
      }),
    );
  });

  it('still refuses a batch truly half in the stream, also after reading further', () => {
    const batch = [fresh(), fresh()];
    // Its second event is the oldest read, its first never stored: the further read shows it missing.
    const stream = recorded([fresh(), batch[1]!, ...Array.from({ length: DEDUPE_TAIL_SLACK_EVENTS + 1 }, () => fresh())]);
    const first = decideOnTail(STREAM, tailOf(stream, dedupeWindow(2)), batch);
    expect(first).toEqual({ kind: 'read-further', count: dedupeWindow(2) + 1 });
    expect(() => decideOnTail(STREAM, tailOf(stream, dedupeWindow(2) + 1), batch, false)).toThrow(/part of this batch/);
    // A found event that is not the oldest read is no cut: refused at once.
    expect(() => decideOnTail(STREAM, tailOf(recorded([fresh(), batch[0]!, fresh()]), 10), batch)).toThrow(EventIdConflictError);
  });

  it('property: a batch of fresh ids is never taken for a duplicate, and never writes over another id', () => {
    fc.assert(
      fc.property(fc.nat({ max: 80 }), fc.integer({ min: 1, max: 12 }), (length, size) => {
        const stream = recorded(Array.from({ length }, () => fresh()));
        expect(decideOnTail(STREAM, tailOf(stream, dedupeWindow(size)), Array.from({ length: size }, () => fresh()))).toEqual({ kind: 'fresh' });
      }),
    );
  });
});

describe('idempotency key records', () => {
  const claim = { key: 'k-1', requestDigest: 'a'.repeat(64) };
  const result = { status: 'appended' as const, streamId: STREAM, firstRevision: 3, lastRevision: 4, position: { transactionId: (1n << 63n) + 5n, globalPosition: 17n } };

  it('claims a key nobody holds, at the stream start or after a release', () => {
    expect(decideClaim(null, claim)).toEqual({ kind: 'claim', afterRevision: null });
    expect(decideClaim({ record: { kind: 'released', requestDigest: 'b'.repeat(64) }, revision: 1 }, claim)).toEqual({ kind: 'claim', afterRevision: 1 });
  });

  it('answers a completed key with the stored result as a duplicate, exact to 64 bits', () => {
    const completed: KeyRecord = { kind: 'completed', requestDigest: claim.requestDigest, result: storeResult(result) };
    expect(decideClaim({ record: completed, revision: 1 }, claim)).toEqual({ kind: 'answered', result: { ...result, status: 'duplicate' } });
    expect(loadResult(JSON.parse(JSON.stringify(storeResult(result))))).toEqual({ ...result, status: 'duplicate' });
  });

  it('refuses the key for another request digest while claimed or completed', () => {
    const other = { key: claim.key, requestDigest: 'c'.repeat(64) };
    const claimed: KeyRecord = { kind: 'claimed', requestDigest: claim.requestDigest, streamId: STREAM, eventIds: [randomUUID()], claimedAtMs: 0 };
    expect(() => decideClaim({ record: claimed, revision: 0 }, other)).toThrow(IdempotencyKeyReusedError);
    expect(() => decideClaim({ record: { kind: 'completed', requestDigest: claim.requestDigest, result: storeResult(result) }, revision: 1 }, other)).toThrow(/already used for a different request/);
  });

  /** The forward reader the adapter hands scanForClaim, over an in-memory stream. */
  const reader = (stream: readonly RecordedEvent[]) => async (from: number, count: number) => stream.slice(from, from + count);

  it('resolves a pending claim: complete when its events are in, release past the lease when none are, else wait', async () => {
    const batch = [fresh(), fresh()];
    const stream = recorded([fresh(), ...batch]);
    const claimed = { kind: 'claimed' as const, requestDigest: claim.requestDigest, streamId: STREAM, eventIds: batch.map((e) => e.eventId), claimedAtMs: 10_000, headRevision: 0 };
    expect(decideClaim({ record: claimed, revision: 0 }, claim)).toEqual({ kind: 'pending', claim: claimed, revision: 0 });
    expect(resolvePending(claimed, await scanForClaim(claimed, reader(stream)), 10_001)).toEqual({ kind: 'complete', result: { status: 'duplicate', streamId: STREAM, firstRevision: 1, lastRevision: 2, position: stream[2]!.position } });
    const empty = recorded([fresh()]);
    expect(resolvePending(claimed, await scanForClaim(claimed, reader(empty)), 10_000 + IDEMPOTENCY_CLAIM_LEASE_MS - 1)).toEqual({ kind: 'wait' });
    expect(resolvePending(claimed, await scanForClaim(claimed, reader(empty)), 10_000 + IDEMPOTENCY_CLAIM_LEASE_MS)).toEqual({ kind: 'release' });
    // Half its events in (a concurrent writer mid-way is impossible in one append, but a truncated tail is): never release, never complete.
    expect(resolvePending(claimed, await scanForClaim(claimed, reader(recorded([batch[0]!]))), 10_000 + 10 * IDEMPOTENCY_CLAIM_LEASE_MS)).toEqual({ kind: 'wait' });
  });

  it('finds a crashed claimant\'s events however many events came after them, scanning from the head recorded at claim time', async () => {
    const batch = [fresh(), fresh(), fresh()];
    const before = 500;
    const after = 5 * DEDUPE_TAIL_SLACK_EVENTS + 1_000;
    const stream = recorded([...Array.from({ length: before }, () => fresh()), ...batch, ...Array.from({ length: after }, () => fresh())]);
    const claimed = { kind: 'claimed' as const, requestDigest: claim.requestDigest, streamId: STREAM, eventIds: batch.map((e) => e.eventId), claimedAtMs: 0, headRevision: before - 1 };
    const pages: number[] = [];
    const scan = await scanForClaim(claimed, async (from, count) => (pages.push(from), stream.slice(from, from + count)), { pageEvents: 100 });
    // It started just inside the furthest tail read below the recorded head, and stopped once all were found.
    expect(pages[0]).toBe(before - dedupeWindow(batch.length) - batch.length);
    expect(pages.length).toBeLessThanOrEqual(2);
    expect(resolvePending(claimed, scan, IDEMPOTENCY_CLAIM_LEASE_MS * 100)).toMatchObject({ kind: 'complete', result: { firstRevision: before, lastRevision: before + 2 } });
    // The tail window alone (the old rule) would have missed them and released the key.
    expect(resolvePending(claimed, { found: claimedIn(claimed, tailOf(stream, dedupeWindow(batch.length))), reachedEnd: true, lastRevisionRead: null }, IDEMPOTENCY_CLAIM_LEASE_MS * 100)).toEqual({ kind: 'release' });
  });

  it('refuses to release a key when the bounded scan did not reach the end: unresolved, never a second append', async () => {
    const batch = [fresh()];
    const stream = recorded(Array.from({ length: 300 }, () => fresh()));
    const claimed = { kind: 'claimed' as const, requestDigest: claim.requestDigest, streamId: STREAM, eventIds: batch.map((e) => e.eventId), claimedAtMs: 0, headRevision: null };
    const scan = await scanForClaim(claimed, reader(stream), { maxEvents: 250, pageEvents: 100 });
    expect(scan).toMatchObject({ reachedEnd: false, lastRevisionRead: 249 });
    expect(resolvePending(claimed, scan, IDEMPOTENCY_CLAIM_LEASE_MS)).toEqual({ kind: 'unresolved', scannedTo: 249 });
    expect(resolvePending(claimed, scan, IDEMPOTENCY_CLAIM_LEASE_MS - 1)).toEqual({ kind: 'wait' });
  });

  it('property: a claim whose events landed anywhere after its recorded head is completed, never released', async () => {
    await fc.assert(
      fc.asyncProperty(fc.nat({ max: 200 }), fc.nat({ max: 400 }), fc.nat({ max: 50 }), fc.integer({ min: 1, max: 6 }), async (before, gap, after, size) => {
        const batch = Array.from({ length: size }, () => fresh());
        const stream = recorded([...Array.from({ length: before + gap }, () => fresh()), ...batch, ...Array.from({ length: after }, () => fresh())]);
        const claimed = { kind: 'claimed' as const, requestDigest: claim.requestDigest, streamId: STREAM, eventIds: batch.map((e) => e.eventId), claimedAtMs: 0, headRevision: before === 0 ? null : before - 1 };
        const decision = resolvePending(claimed, await scanForClaim(claimed, reader(stream), { pageEvents: 64 }), IDEMPOTENCY_CLAIM_LEASE_MS);
        expect(decision).toMatchObject({ kind: 'complete', result: { firstRevision: before + gap, lastRevision: before + gap + size - 1 } });
      }),
      { numRuns: 60 },
    );
  });

  it('also finds events the claimant answered as duplicates from its tail reads, below the recorded head', async () => {
    const size = 4;
    const batch = Array.from({ length: size }, () => fresh());
    // The copy's first event sits as far back as the claimant's tail check can reach: window plus the read further back.
    const after = dedupeWindow(size) + size - 1 - size;
    const stream = recorded([...Array.from({ length: 10 }, () => fresh()), ...batch, ...Array.from({ length: after }, () => fresh())]);
    const headRevision = stream.length - 1;
    const claimed = { kind: 'claimed' as const, requestDigest: claim.requestDigest, streamId: STREAM, eventIds: batch.map((e) => e.eventId), claimedAtMs: 0, headRevision };
    expect(pendingScanStart(claimed)).toBeLessThanOrEqual(10);
    expect(resolvePending(claimed, await scanForClaim(claimed, reader(stream)), 0)).toMatchObject({ kind: 'complete', result: { firstRevision: 10, lastRevision: 13 } });
  });

  it('scans a claim written before headRevision existed from revision 0', () => {
    const legacy = { kind: 'claimed' as const, requestDigest: claim.requestDigest, streamId: STREAM, eventIds: [randomUUID()], claimedAtMs: 0 };
    expect(pendingScanStart(legacy)).toBe(0);
    expect(pendingScanStart({ ...legacy, headRevision: 1_000 })).toBe(1_001 - dedupeWindow(1) - 1);
  });
});

describe('the documented limit of the tail window', () => {
  it('takes a loose retry that comes after more than DEDUPE_TAIL_SLACK_EVENTS other events for fresh: it would be written again', () => {
    const batch = [fresh('B')];
    const stream = recorded([batch[0]!, ...Array.from({ length: DEDUPE_TAIL_SLACK_EVENTS + 1 }, () => fresh())]);
    expect(decideOnTail(STREAM, tailOf(stream, dedupeWindow(batch.length)), batch)).toEqual({ kind: 'fresh' });
  });
});
