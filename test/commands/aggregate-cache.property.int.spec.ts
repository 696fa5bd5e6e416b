// The aggregate cache gives exactly the state a full fold gives, over random histories appended in random chunks (PGlite).

import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { aggregateCacheFor } from '../../adapters/commands/aggregate-cache.js';
import { loadAggregate } from '../../adapters/commands/command-handler.js';
import { openEventStore } from '../../adapters/event-store/open-event-store.js';
import { ASSIGNMENT_STREAM_PREFIX } from '../../domain/assignment/index.js';
import { CONTRIBUTOR_STREAM_PREFIX } from '../../domain/contributor/index.js';
import { assignmentDecider, contributorDecider, decodeEvent, foldEvents, invoiceDecider, runDecider, toWire, type Decider } from '../../domain/index.js';
import { INVOICE_STREAM_PREFIX } from '../../domain/invoice/index.js';
import { PersistentMap } from '../../domain/persistent-map.js';
import type { EventStore, JsonObject, RecordedEvent } from '../../domain/ports/event-store.js';
import { RUN_STREAM_PREFIX } from '../../domain/run/index.js';
import { historyArbitrary, type HistoryEvent } from '../projections/history.js';

function deciderFor(streamId: string): Decider<any, any, any> {
  if (streamId.startsWith(RUN_STREAM_PREFIX)) return runDecider;
  if (streamId.startsWith(ASSIGNMENT_STREAM_PREFIX)) return assignmentDecider;
  if (streamId.startsWith(CONTRIBUTOR_STREAM_PREFIX)) return contributorDecider;
  if (streamId.startsWith(INVOICE_STREAM_PREFIX)) return invoiceDecider;
  throw new Error(`no decider for stream ${streamId}`);
}

/** Every event of the stream, folded from the initial state: the reference the cache must equal. */
async function fullFold(store: EventStore, streamId: string): Promise<unknown> {
  const events: RecordedEvent[] = [];
  for (let from = 0; ; ) {
    const page = await store.readStream(streamId, { fromRevision: from, maxCount: 1_000 });
    events.push(...page);
    if (page.length < 1_000) break;
    from = page[page.length - 1]!.revision + 1;
  }
  return canonical(foldEvents(deciderFor(streamId), events.map((e) => decodeEvent(e))));
}

/** States as plain data: persistent maps by their entries, bigints as strings, so shape never decides equality. */
function canonical(value: unknown): unknown {
  if (value instanceof PersistentMap || value instanceof Map) return [...value.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => [k, canonical(v)]);
  if (value instanceof Set) return [...value].sort();
  if (typeof value === 'bigint') return `${value}n`;
  if (Array.isArray(value)) return value.map(canonical);
  if (value !== null && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, canonical(v)]));
  return value;
}

describe('aggregate cache (PGlite)', () => {
  let store: EventStore;
  beforeAll(async () => {
    store = (await openEventStore({ engine: 'pglite' })).store;
  });
  afterAll(async () => store.close());

  it('loads exactly the state a full fold gives, whatever was cached before each append', async () => {
    const plan = fc.tuple(
      historyArbitrary({ maxRuns: 2, maxAssignments: 25, idPrefix: () => `c${randomUUID().slice(0, 8)}-` }),
      // Where the history is cut into chunks; after each chunk some streams are loaded through the cache.
      fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 6 }),
      fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: 1, maxLength: 6 }),
    );
    await fc.assert(
      fc.asyncProperty(plan, async ([history, cutFractions, picks]) => {
        const cuts = [...new Set(cutFractions.map((f) => Math.floor(f * history.length))), history.length].sort((a, b) => a - b);
        let done = 0;
        for (const cut of cuts) {
          await appendEvents(store, history.slice(done, cut));
          done = cut;
          const streams = [...new Set(history.slice(0, done).map((h) => h.streamId))];
          if (streams.length === 0) continue;
          for (const pick of picks) {
            const streamId = streams[Math.floor(pick * streams.length) % streams.length]!;
            const { state, lastRevision } = await loadAggregate(store, deciderFor(streamId), streamId);
            expect(canonical(state), streamId).toEqual(await fullFold(store, streamId));
            expect(lastRevision).toBe(history.slice(0, done).filter((h) => h.streamId === streamId).length - 1);
          }
        }
        for (const streamId of new Set(history.map((h) => h.streamId))) {
          expect(canonical((await loadAggregate(store, deciderFor(streamId), streamId)).state), streamId).toEqual(await fullFold(store, streamId));
        }
      }),
      { numRuns: 25 },
    );
  });

  it('folds only the new events after a cached load, and refolds a stream whose cached hash no longer links', async () => {
    const reads: { streamId: string; fromRevision: number | undefined; returned: number }[] = [];
    const counting: EventStore = Object.create(store, {
      readStream: {
        value: async (streamId: string, options?: { fromRevision?: number }) => {
          const page = await store.readStream(streamId, options);
          reads.push({ streamId, fromRevision: options?.fromRevision, returned: page.length });
          return page;
        },
      },
    });
    const history = (await fc.sample(historyArbitrary({ maxRuns: 1, maxAssignments: 30, idPrefix: `one${randomUUID().slice(0, 6)}-` }), { numRuns: 1, seed: 7 }))[0]!;
    const runStream = history.find((h) => h.streamId.startsWith(RUN_STREAM_PREFIX))!.streamId;
    const runEvents = history.filter((h) => h.streamId === runStream);
    await appendEvents(counting, runEvents.slice(0, -1));
    await loadAggregate(counting, runDecider, runStream);
    reads.length = 0;
    await appendEvents(counting, runEvents.slice(-1));
    const { lastRevision } = await loadAggregate(counting, runDecider, runStream);
    expect(lastRevision).toBe(runEvents.length - 1);
    expect(reads).toEqual([{ streamId: runStream, fromRevision: runEvents.length - 1, returned: 1 }]);

    // A cached entry whose hash does not match the log (as if the log were rewritten) is dropped and the stream folded again.
    const cache = aggregateCacheFor(counting);
    const cached = cache.get(runDecider, runStream)!;
    cache.clear();
    cache.put(runDecider, runStream, { ...cached, revision: cached.revision! - 1, hash: 'f'.repeat(64) });
    reads.length = 0;
    const again = await loadAggregate(counting, runDecider, runStream);
    expect(canonical(again.state)).toEqual(await fullFold(store, runStream));
    expect(reads.map((r) => r.fromRevision)).toEqual([runEvents.length - 1, 0]);
  });
});

async function appendEvents(store: EventStore, events: readonly HistoryEvent[]): Promise<void> {
  for (const { streamId, event } of events) {
    await store.append(streamId, [{ eventId: randomUUID(), type: event.type, data: toWire(event.data) as JsonObject }], { expectedRevision: 'any' });
  }
}
