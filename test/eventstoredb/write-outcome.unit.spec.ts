// Whose append a server success was, no server: racing writers of one batch, lost answers, ids at the wrong revisions, and the writeId's place outside the hash.

import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import type { ResolvedEvent } from '@eventstore/db-client';
import { describe, expect, it } from 'vitest';
import type { RecordedEvent } from '../../domain/ports/event-store.js';
import { EventIdConflictError } from '../../domain/ports/event-store-errors.js';
import { chainEvents, fromResolvedEvent, normalizeEvent, toEventData, writeIdOf, type NormalizedEvent } from '../../adapters/eventstoredb/envelope.js';
import { decideWritten, type StoredEvent } from '../../adapters/eventstoredb/write-outcome.js';

const STREAM = 'run-written';

function fresh(n = 0): NormalizedEvent {
  return normalizeEvent({ eventId: randomUUID(), type: 'T', data: { n } });
}

/** The batch as the server stores it after `head`, written by the attempt `writeId`, read back through the client's event shape. */
function stored(batch: readonly NormalizedEvent[], head: number | null, writeId: string | null, recordedAtMs = 5_000): StoredEvent[] {
  return chainEvents(STREAM, batch, { revision: head, hash: head === null ? null : 'f'.repeat(64) }, recordedAtMs).map((c, i) => {
    const data = toEventData(c, writeId ?? 'unused');
    const metadata = writeId === null ? { ...(data.metadata as object), trainledger: { ...(data.metadata as { trainledger: object }).trainledger, writeId: undefined } } : data.metadata;
    // Commit positions of one transaction are shared; prepare positions differ per event and are not contiguous.
    const resolved = { event: { streamId: STREAM, id: data.id, isJson: true, type: data.type, data: data.data, metadata, revision: BigInt(c.revision), created: new Date(), position: { commit: 9_000n, prepare: 8_000n + 211n * BigInt(i) } } } as unknown as ResolvedEvent;
    return { event: fromResolvedEvent(resolved), writeId: writeIdOf(resolved) };
  });
}

describe('after a successful append', () => {
  it('answers the racing loser as a duplicate with the winner\'s stored positions, the winner as appended', () => {
    const batch = [fresh(1), fresh(2)];
    const readBack = stored(batch, 0, 'winner');
    const last = readBack[1]!.event;
    expect(decideWritten(STREAM, batch, readBack, new Set(['loser']))).toEqual({ status: 'duplicate', streamId: STREAM, firstRevision: 1, lastRevision: 2, position: last.position });
    expect(decideWritten(STREAM, batch, readBack, new Set(['winner']))).toEqual({ status: 'appended', streamId: STREAM, firstRevision: 1, lastRevision: 2, position: last.position });
  });

  it('owns events written by an earlier attempt of the same call whose answer was lost', () => {
    const batch = [fresh()];
    expect(decideWritten(STREAM, batch, stored(batch, null, 'attempt-1'), new Set(['attempt-1', 'attempt-2'])).status).toBe('appended');
  });

  it('takes events written without a writeId (before it existed) as another writer\'s', () => {
    const batch = [fresh()];
    expect(decideWritten(STREAM, batch, stored(batch, null, null), new Set(['mine'])).status).toBe('duplicate');
  });

  it('takes the position of the last event from the read-back, not the transaction\'s commit position', () => {
    const batch = [fresh(), fresh(), fresh()];
    const readBack = stored(batch, 4, 'w');
    expect(decideWritten(STREAM, batch, readBack, new Set(['w'])).position).toEqual({ transactionId: 9_000n, globalPosition: 8_000n + 422n });
  });

  it('refuses an idempotent success over other content or other ids with EVENT_ID_CONFLICT', () => {
    const batch = [fresh(1)];
    const otherContent = stored([{ ...batch[0]!, data: { n: 99 } }], null, 'w');
    expect(() => decideWritten(STREAM, batch, otherContent, new Set())).toThrow(EventIdConflictError);
    expect(() => decideWritten(STREAM, batch, stored([fresh()], null, 'w'), new Set(['w']))).toThrow(/do not hold this event/);
  });

  it('matches by id: a retry listing the ids in another order, or a subset, is the same duplicate', () => {
    const batch = [fresh(1), fresh(2), fresh(3)];
    const readBack = stored(batch, 6, 'w');
    expect(decideWritten(STREAM, [batch[2]!, batch[0]!, batch[1]!], [readBack[2]!, readBack[0]!, readBack[1]!], new Set())).toMatchObject({ status: 'duplicate', firstRevision: 7, lastRevision: 9, position: readBack[2]!.event.position });
    expect(decideWritten(STREAM, [batch[2]!, batch[0]!], [readBack[2]!, readBack[0]!], new Set())).toMatchObject({ status: 'duplicate', firstRevision: 7, lastRevision: 9 });
  });

  it('refuses a read-back that is not one append: wrong length, mixed writers', () => {
    const batch = [fresh(), fresh()];
    const readBack = stored(batch, null, 'a');
    expect(() => decideWritten(STREAM, batch, readBack.slice(0, 1), new Set(['a']))).toThrow(/read back 1 events/);
    const mixed = [readBack[0]!, { ...readBack[1]!, writeId: 'b' }];
    expect(() => decideWritten(STREAM, batch, mixed, new Set(['a']))).toThrow(/mixes/);
  });

  it('property: the writeId stays outside the hashed content, so either writer\'s copy verifies the same', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 8 }), fc.option(fc.nat({ max: 1_000 }), { nil: null }), fc.uuid(), fc.uuid(), (size, head, a, b) => {
        const batch = Array.from({ length: size }, (_, n) => fresh(n));
        const strip = (e: StoredEvent): RecordedEvent => e.event;
        expect(stored(batch, head, a).map(strip)).toEqual(stored(batch, head, b).map(strip));
        const result = decideWritten(STREAM, batch, stored(batch, head, a), new Set([b]));
        expect(result).toMatchObject({ status: a === b ? 'appended' : 'duplicate', firstRevision: head === null ? 0 : head + 1, lastRevision: (head === null ? 0 : head + 1) + size - 1 });
      }),
    );
  });
});
