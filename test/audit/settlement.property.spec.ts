// Properties of the pure settlement derivation over generated valid histories: it folds every assignment, finds no money without a verdict, and ignores event order across streams.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { toWire } from '../../domain/codec.js';
import type { JsonObject, RecordedEvent } from '../../domain/ports/event-store.js';
import { deriveSettlement, settlementDiscrepancies } from '../../replay/audit/settlement.js';
import { historyArbitrary, type HistoryEvent } from '../projections/history.js';

/** The history as a log would store it: revisions per stream, global positions in order, wire JSON. */
function recorded(history: readonly HistoryEvent[]): RecordedEvent[] {
  const revisions = new Map<string, number>();
  return history.map(({ streamId, event }, i) => {
    const revision = (revisions.get(streamId) ?? -1) + 1;
    revisions.set(streamId, revision);
    const data = JSON.parse(JSON.stringify(toWire(event.data))) as JsonObject;
    return { streamId, revision, position: { transactionId: BigInt(i + 1), globalPosition: BigInt(i + 1) }, eventId: `e${i}`, type: event.type, schemaVersion: 1, data, metadata: {}, recordedAtMs: 0, prevHash: '', hash: '' };
  });
}

/** Each assignment's events: its stream plus every invoice stream that names it. */
function byAssignment(events: readonly RecordedEvent[]): Map<string, RecordedEvent[]> {
  const groups = new Map<string, RecordedEvent[]>();
  for (const e of events) {
    if (!e.streamId.startsWith('assignment-') && !e.streamId.startsWith('invoice-')) continue;
    const id = e.data.assignmentId as string;
    groups.set(id, [...(groups.get(id) ?? []), e]);
  }
  return groups;
}

const FAR_FUTURE_MS = Date.UTC(2100, 0, 1);

describe('deriveSettlement over generated histories', () => {
  it('folds every assignment and never finds money paid without a verdict', () => {
    fc.assert(
      fc.property(historyArbitrary({ maxAssignments: 30 }), (history) => {
        for (const [assignmentId, events] of byAssignment(recorded(history))) {
          const d = deriveSettlement(assignmentId, events, FAR_FUTURE_MS);
          expect(d.unfoldable, assignmentId).toBeNull();
          const codes = settlementDiscrepancies(d, { nowMs: FAR_FUTURE_MS, settlementGraceMs: 0 }).map((f) => f.code);
          expect(codes, assignmentId).not.toContain('SETTLED_WITHOUT_ACCEPTED_VERDICT');
          expect(codes).not.toContain('ASSIGNMENT_UNFOLDABLE');
        }
      }),
      { numRuns: 25 },
    );
  });

  it('gives the same settlement whatever order the streams and events arrive in', () => {
    fc.assert(
      fc.property(historyArbitrary({ maxAssignments: 15 }), fc.integer(), (history, seed) => {
        for (const [assignmentId, events] of byAssignment(recorded(history))) {
          const shuffled = fc.sample(fc.shuffledSubarray(events, { minLength: events.length, maxLength: events.length }), { numRuns: 1, seed })[0]!;
          const a = deriveSettlement(assignmentId, events, FAR_FUTURE_MS);
          const b = deriveSettlement(assignmentId, [...shuffled], FAR_FUTURE_MS);
          expect(b).toEqual(a);
        }
      }),
      { numRuns: 20 },
    );
  });

  it('names the event a stream stops folding on, and reports it as ASSIGNMENT_UNFOLDABLE', () => {
    const history = recorded(fc.sample(historyArbitrary({ maxAssignments: 10 }), { numRuns: 1, seed: 3 })[0]!);
    const [assignmentId, events] = [...byAssignment(history)].find(([, list]) => list.filter((e) => e.streamId.startsWith('assignment-')).length >= 2)!;
    // The same WorkAssigned twice: the domain's evolve refuses it.
    const first = events.find((e) => e.type === 'WorkAssigned')!;
    const broken = [...events, { ...first, revision: 99, position: { transactionId: 999_999n, globalPosition: 999_999n } }];
    const d = deriveSettlement(assignmentId, broken, FAR_FUTURE_MS);
    expect(d.unfoldable).toMatchObject({ event: { streamId: first.streamId, revision: 99, globalPosition: '999999', eventType: 'WorkAssigned' } });
    expect(settlementDiscrepancies(d, { nowMs: FAR_FUTURE_MS, settlementGraceMs: 0 })).toEqual([expect.objectContaining({ code: 'ASSIGNMENT_UNFOLDABLE', subject: assignmentId })]);
  });
});
