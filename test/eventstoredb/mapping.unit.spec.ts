// The EventStoreDB adapter's pure mappings, no server: revisions, positions and checkpoints, client errors, ESDB_URL, the event envelope.

import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import {
  ANY,
  NO_STREAM,
  START,
  STREAM_EXISTS,
  AccessDeniedError,
  DeadlineExceededError,
  MaxAppendSizeExceededError,
  NotLeaderError,
  StreamDeletedError,
  StreamNotFoundError,
  UnavailableError,
  WrongExpectedVersionError,
  type ResolvedEvent,
} from '@eventstore/db-client';
import { describe, expect, it } from 'vitest';
import { LOG_START, comparePositions, type ExpectedRevision, type LogPosition, type RecordedEvent } from '../../domain/ports/event-store.js';
import { EventStoreError, InvalidAppendError, WrongExpectedRevisionError } from '../../domain/ports/event-store-errors.js';
import { verifyChain } from '../../adapters/event-store/verify-chain.js';
import { ConfigError } from '../../adapters/config.js';
import { chainEvents, fromResolvedEvent, normalizeEvent, toEventData } from '../../adapters/eventstoredb/envelope.js';
import { isStreamNotFound, isWrongExpectedVersion, mapClientError } from '../../adapters/eventstoredb/errors.js';
import { parseEsdbUrl } from '../../adapters/eventstoredb/esdb-url.js';
import { isDomainEvent, liveRestartDelayMs, pageUpToHead } from '../../adapters/eventstoredb/esdb-event-store.js';
import { NO_POSITION_U64, decideCheckpoint, decodeCheckpoint, encodeCheckpoint, hasLogPosition, readFrom, toClientPosition, toLogPosition } from '../../adapters/eventstoredb/positions.js';
import { checkExpectation, chainedExpectedRevision, expectationHolds, fromClientCurrentRevision, toClientExpectedRevision } from '../../adapters/eventstoredb/revisions.js';

const u64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });
const position = fc.record({ transactionId: u64, globalPosition: u64 });
const expected: fc.Arbitrary<ExpectedRevision> = fc.oneof(fc.constantFrom('any' as const, 'no_stream' as const, 'stream_exists' as const), fc.nat({ max: 1_000_000 }));
const head = fc.option(fc.nat({ max: 1_000_000 }), { nil: null });

describe('expected revisions', () => {
  it('maps each port expectation onto the client constant or a bigint', () => {
    expect(toClientExpectedRevision('any')).toBe(ANY);
    expect(toClientExpectedRevision('no_stream')).toBe(NO_STREAM);
    expect(toClientExpectedRevision('stream_exists')).toBe(STREAM_EXISTS);
    expect(toClientExpectedRevision(0)).toBe(0n);
    expect(toClientExpectedRevision(41)).toBe(41n);
  });

  it('appends at exactly the head it chained onto: NO_STREAM for a new stream, else that revision', () => {
    expect(chainedExpectedRevision(null)).toBe(NO_STREAM);
    expect(chainedExpectedRevision(0)).toBe(0n);
    fc.assert(fc.property(fc.nat(), (r) => chainedExpectedRevision(r) === BigInt(r)));
  });

  it('decides an expectation against a head exactly as the PostgreSQL store does', () => {
    fc.assert(
      fc.property(expected, head, (e, h) => {
        const want = e === 'any' ? true : e === 'no_stream' ? h === null : e === 'stream_exists' ? h !== null : h === e;
        expect(expectationHolds(e, h)).toBe(want);
        if (want) expect(() => checkExpectation('s', e, h)).not.toThrow();
        else expect(() => checkExpectation('s', e, h)).toThrow(expect.objectContaining({ code: 'WRONG_EXPECTED_REVISION', expected: e, actual: h === null ? 'no_stream' : h }));
      }),
    );
  });

  it('reads the client current revision back as the port reports it', () => {
    expect(fromClientCurrentRevision(NO_STREAM)).toBe('no_stream');
    expect(fromClientCurrentRevision(undefined)).toBe('no_stream');
    expect(fromClientCurrentRevision(7n)).toBe(7);
  });
});

describe('positions and checkpoints', () => {
  it('keeps $all order: (commit, prepare) compare as the port compares positions', () => {
    fc.assert(
      fc.property(position, position, (a, b) => {
        const ca = toClientPosition(a);
        const cb = toClientPosition(b);
        const esdbOrder = ca.commit !== cb.commit ? (ca.commit < cb.commit ? -1 : 1) : ca.prepare !== cb.prepare ? (ca.prepare < cb.prepare ? -1 : 1) : 0;
        expect(comparePositions(a, b)).toBe(esdbOrder);
        expect(toLogPosition(ca)).toEqual(a);
      }),
    );
  });

  it('encodes a checkpoint as "commit/prepare" and decodes it exactly, at any 64-bit size', () => {
    fc.assert(fc.property(position, (p) => {
      expect(decodeCheckpoint(encodeCheckpoint(p))).toEqual(p);
    }));
    expect(encodeCheckpoint({ transactionId: 1234n, globalPosition: 1200n })).toBe('1234/1200');
  });

  it('refuses a checkpoint that is not two unsigned 64-bit decimals, with INVALID_CHECKPOINT', () => {
    for (const bad of ['', '1', '1/', '/1', '-1/0', '1.5/2', '1/2/3', ' 1/2', 'x/y', `${1n << 64n}/0`, '1'.repeat(21) + '/0', 12, null, undefined, { commit: 1 }]) {
      expect(() => decodeCheckpoint(bad)).toThrow(expect.objectContaining({ code: 'INVALID_CHECKPOINT' }));
    }
    expect(() => encodeCheckpoint({ transactionId: -1n, globalPosition: 0n })).toThrow(expect.objectContaining({ code: 'INVALID_CHECKPOINT' }));
  });

  it('reads $all from START for the log start, else from the checkpoint itself (inclusive; the store drops it)', () => {
    expect(readFrom(LOG_START)).toBe(START);
    expect(readFrom({ transactionId: 10n, globalPosition: 9n })).toEqual({ commit: 10n, prepare: 9n });
    const tiny: LogPosition = { transactionId: 0n, globalPosition: 1n };
    expect(readFrom(tiny)).toEqual({ commit: 0n, prepare: 1n });
  });
});

describe('client errors as port errors', () => {
  it('maps WrongExpectedVersion to WrongExpectedRevisionError with the actual revision', () => {
    const error = new WrongExpectedVersionError(undefined, { streamName: 'run-1', expected: 3n, current: 5n });
    expect(isWrongExpectedVersion(error)).toBe(true);
    const mapped = mapClientError(error, { streamId: 'run-1', expected: 3 });
    expect(mapped).toBeInstanceOf(WrongExpectedRevisionError);
    expect(mapped).toMatchObject({ code: 'WRONG_EXPECTED_REVISION', streamId: 'run-1', expected: 3, actual: 5 });
    const created = mapClientError(new WrongExpectedVersionError(undefined, { streamName: 'run-2', expected: NO_STREAM, current: NO_STREAM }), { expected: 'stream_exists' });
    expect(created).toMatchObject({ streamId: 'run-2', expected: 'stream_exists', actual: 'no_stream' });
  });

  it('maps unavailability, access, deletion and size onto stable codes', () => {
    expect(mapClientError(new UnavailableError())).toMatchObject({ code: 'EVENT_STORE_UNAVAILABLE' });
    expect(mapClientError(new DeadlineExceededError())).toMatchObject({ code: 'EVENT_STORE_UNAVAILABLE' });
    expect(mapClientError(new AccessDeniedError(), { streamId: 's' })).toMatchObject({ code: 'EVENT_STORE_ACCESS_DENIED' });
    expect(mapClientError(StreamDeletedError.fromStreamName('gone'))).toMatchObject({ code: 'STREAM_DELETED' });
    const tooBig = mapClientError(MaxAppendSizeExceededError.fromMaxAppendSize(1_048_576), { streamId: 's' });
    expect(tooBig).toBeInstanceOf(InvalidAppendError);
    expect(tooBig).toMatchObject({ code: 'INVALID_APPEND' });
  });

  it('passes port errors and non-client errors through untouched', () => {
    const port = new EventStoreError('X', 'y');
    expect(mapClientError(port)).toBe(port);
    const bug = new TypeError('a bug');
    expect(mapClientError(bug)).toBe(bug);
    expect(mapClientError({ type: 'not-a-client-type' })).toEqual({ type: 'not-a-client-type' });
  });

  it('recognises a missing stream, which reads as empty', () => {
    expect(isStreamNotFound(new StreamNotFoundError(undefined, 'nope'))).toBe(true);
    expect(isStreamNotFound(new UnavailableError())).toBe(false);
    expect(isWrongExpectedVersion(new UnavailableError())).toBe(false);
  });

  it('maps a not-leader answer to unavailable (the client reconnects to the leader; the command retries)', () => {
    const error = Object.assign(Object.create(NotLeaderError.prototype) as NotLeaderError, { type: 'not-leader', message: 'not leader' });
    expect(mapClientError(error)).toMatchObject({ code: 'EVENT_STORE_UNAVAILABLE' });
  });
});

describe('ESDB_URL', () => {
  it('accepts esdb:// and kurrentdb:// clusters, TLS on unless tls=false, and hides credentials', () => {
    const three = parseEsdbUrl('esdb://node1:2113,node2:2113,node3:2113?tls=true&nodePreference=leader');
    expect(three).toMatchObject({ engine: 'eventstoredb', tls: true, connectionString: 'esdb://node1:2113,node2:2113,node3:2113?tls=true&nodePreference=leader' });
    expect(parseEsdbUrl('kurrentdb://node1:2113')).toMatchObject({ tls: true, connectionString: 'esdb://node1:2113', display: 'kurrentdb://node1:2113' });
    expect(parseEsdbUrl('kurrentdb+discover://admin:changeit@cluster.internal:2113?tls=false')).toMatchObject({
      tls: false,
      connectionString: 'esdb+discover://admin:changeit@cluster.internal:2113?tls=false',
      display: 'kurrentdb+discover://***@cluster.internal:2113?tls=false',
    });
    expect(parseEsdbUrl('esdb://127.0.0.1:2113/?TLS=False').tls).toBe(false);
  });

  it('refuses what is not a connection string with INVALID_CONFIG, never echoing a password', () => {
    for (const bad of ['', 'http://node1:2113', 'esdb://', 'esdb://node 1:2113', 'esdb://node1:99999', 'esdb://node1:2113?tls=maybe', 'x'.repeat(3_000)]) {
      expect(() => parseEsdbUrl(bad)).toThrow(ConfigError);
    }
    expect(() => parseEsdbUrl('https://admin:hunter2@node1:2113')).toThrow(expect.objectContaining({ message: expect.not.stringContaining('hunter2') }));
  });
});

describe('saving a checkpoint', () => {
  it('property: moves only forwards, at the exact revision read; equal is a no-op; LOG_START is the one reset allowed', () => {
    fc.assert(
      fc.property(position, position, fc.nat({ max: 1_000_000 }), (stored, next, revision) => {
        const order = comparePositions(next, stored);
        const decide = () => decideCheckpoint('sub', { position: stored, revision }, next);
        if (order === 0) expect(decide()).toEqual({ kind: 'skip' });
        else if (order > 0 || comparePositions(next, LOG_START) === 0) expect(decide()).toEqual({ kind: 'write', afterRevision: revision });
        else expect(decide).toThrow(expect.objectContaining({ code: 'CHECKPOINT_BACKWARDS' }));
      }),
    );
  });

  it('writes the first checkpoint of a subscription at NO_STREAM, and refuses a slower runner\'s older position', () => {
    expect(decideCheckpoint('sub', null, { transactionId: 5n, globalPosition: 5n })).toEqual({ kind: 'write', afterRevision: null });
    expect(() => decideCheckpoint('sub', { position: { transactionId: 9n, globalPosition: 9n }, revision: 3 }, { transactionId: 9n, globalPosition: 8n })).toThrow(/refusing to move it back to 9\/8/);
    expect(decideCheckpoint('sub', { position: { transactionId: 9n, globalPosition: 9n }, revision: 3 }, LOG_START)).toEqual({ kind: 'write', afterRevision: 3 });
  });
});

describe('the event envelope', () => {
  it('round-trips a chained batch through the client event shape, and its chain verifies', () => {
    const events = [normalizeEvent({ eventId: randomUUID().toUpperCase(), type: 'A', data: { b: 1, a: [1, 'x'] }, metadata: { by: 'me' } }), normalizeEvent({ eventId: randomUUID(), type: 'B', schemaVersion: 2, data: {} })];
    const chained = chainEvents('run-1', events, { revision: null, hash: null }, 1_700_000_000_000);
    const recorded = chained.map((c, i) => {
      const data = toEventData(c, 'w-1');
      const resolved = {
        event: { streamId: 'run-1', id: data.id, isJson: true, type: data.type, data: data.data, metadata: data.metadata, revision: BigInt(c.revision), created: new Date(), position: { commit: 100n + BigInt(i), prepare: 100n + BigInt(i) } },
      } as unknown as ResolvedEvent;
      return fromResolvedEvent(resolved);
    });
    expect(recorded.map((r) => [r.revision, r.type, r.schemaVersion, r.eventId])).toEqual([[0, 'A', 1, events[0]!.eventId], [1, 'B', 2, events[1]!.eventId]]);
    expect(recorded[0]!.eventId).toBe(recorded[0]!.eventId.toLowerCase());
    expect(recorded[0]!.metadata).toEqual({ by: 'me' });
    expect(verifyChain('run-1', recorded, { revision: 1, headHash: recorded[1]!.hash })).toEqual({ ok: true, streamsChecked: 1, eventsChecked: 2 });
    const more = chainEvents('run-1', [normalizeEvent({ eventId: randomUUID(), type: 'C', data: {} })], { revision: 1, hash: recorded[1]!.hash }, 1_700_000_000_001);
    expect(more[0]).toMatchObject({ revision: 2, prevHash: recorded[1]!.hash });
  });

  it('refuses events another tool wrote: no chain metadata, binary data', () => {
    const foreign = { event: { streamId: 's', id: randomUUID(), isJson: true, type: 'X', data: {}, metadata: {}, revision: 0n, created: new Date(), position: { commit: 1n, prepare: 1n } } } as unknown as ResolvedEvent;
    expect(() => fromResolvedEvent(foreign)).toThrow(expect.objectContaining({ code: 'EVENT_STORE_FOREIGN_EVENT' }));
    const binary = { event: { ...foreign.event!, isJson: false } } as unknown as ResolvedEvent;
    expect(() => fromResolvedEvent(binary)).toThrow(expect.objectContaining({ code: 'EVENT_STORE_FOREIGN_EVENT' }));
  });

  it('refuses a stream read without $all positions (2^64 - 1 from servers before 21.10) with EVENT_STORE_UNSUPPORTED_SERVER', () => {
    const [c] = chainEvents('run-1', [normalizeEvent({ eventId: randomUUID(), type: 'A', data: {} })], { revision: null, hash: null }, 1);
    const data = toEventData(c!, 'w');
    const at = (position: unknown) => ({ event: { streamId: 'run-1', id: data.id, isJson: true, type: data.type, data: data.data, metadata: data.metadata, revision: 0n, created: new Date(), position } }) as unknown as ResolvedEvent;
    const none = (1n << 64n) - 1n;
    expect(NO_POSITION_U64).toBe(none);
    for (const position of [{ commit: none, prepare: none }, { commit: none, prepare: 5n }, undefined]) {
      expect(() => fromResolvedEvent(at(position))).toThrow(expect.objectContaining({ code: 'EVENT_STORE_UNSUPPORTED_SERVER' }));
    }
    expect(fromResolvedEvent(at({ commit: 0n, prepare: 0n })).position).toEqual(LOG_START);
    fc.assert(fc.property(fc.bigInt({ min: 0n, max: none - 1n }), fc.bigInt({ min: 0n, max: none - 1n }), (commit, prepare) => hasLogPosition({ commit, prepare })));
    expect(hasLogPosition({ commit: none, prepare: none })).toBe(false);
  });

  it('counts only domain streams as the log: not $ system streams, $ event types or the # internal ones', () => {
    expect(isDomainEvent('run-1', 'RunOpened')).toBe(true);
    expect(isDomainEvent('$stats-127.0.0.1:2113', '$statsCollected')).toBe(false);
    expect(isDomainEvent('$$run-1', '$metadata')).toBe(false);
    expect(isDomainEvent('#trainledger/checkpoint/ledger', 'TrainLedger.Checkpoint')).toBe(false);
    expect(isDomainEvent('run-1', '$>')).toBe(false);
  });
});

describe('verifying one stream', () => {
  const ev = (revision: number) => ({ revision }) as RecordedEvent;
  const stream = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => ev(from + i));

  it('property: pages up to the head read first, never past it, and stops there', () => {
    fc.assert(
      fc.property(fc.nat({ max: 300 }), fc.nat({ max: 50 }), fc.integer({ min: 1, max: 40 }), (head, appendedSince, pageEvents) => {
        // The stream as it is while the check pages through it: `appendedSince` more events than the head it read.
        const all = stream(0, head + appendedSince);
        const kept: number[] = [];
        let pages = 0;
        for (let from: number | null = 0; from !== null; pages += 1) {
          const next = pageUpToHead(all.slice(from, from + pageEvents), head, pageEvents);
          kept.push(...next.keep.map((e) => e.revision));
          from = next.nextFrom;
        }
        expect(kept).toEqual(stream(0, head).map((e) => e.revision));
        expect(pages).toBe(Math.ceil((head + 1) / pageEvents));
      }),
    );
  });

  it('stops at a short page (the end) even below the head', () => {
    expect(pageUpToHead(stream(0, 2), 10, 5)).toEqual({ keep: stream(0, 2), nextFrom: null });
    expect(pageUpToHead([], 10, 5)).toEqual({ keep: [], nextFrom: null });
  });
});

describe('restarting the live wake-up subscription', () => {
  it('property: waits longer after each loss in a row, from half a second, never more than 30 s', () => {
    expect(liveRestartDelayMs(1)).toBe(500);
    expect(liveRestartDelayMs(2)).toBe(1_000);
    expect(liveRestartDelayMs(1_000)).toBe(30_000);
    fc.assert(fc.property(fc.integer({ min: 1, max: 10_000 }), (n) => {
      expect(liveRestartDelayMs(n + 1)).toBeGreaterThanOrEqual(liveRestartDelayMs(n));
      expect(liveRestartDelayMs(n)).toBeLessThanOrEqual(30_000);
    }));
  });
});
