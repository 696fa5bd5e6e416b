// The history generator's own checks: every history folds through each aggregate's evolve, times increase, all event types appear.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  assignmentDecider,
  contributorDecider,
  type Decider,
  DOMAIN_EVENT_TYPES,
  type DomainEvent,
  EVENT_CATALOG,
  invoiceDecider,
  runDecider,
} from '../../domain/index.js';
import { generateHistory, historyArbitrary, type HistoryEvent, paymentHashFor, preimageFor } from './history.js';
import { createHash } from 'node:crypto';

const DECIDERS = {
  run: runDecider,
  contributor: contributorDecider,
  assignment: assignmentDecider,
  invoice: invoiceDecider,
} as const satisfies Record<string, Decider<any, any, any>>;

/** Folds every stream through its aggregate's evolve; evolve throws on any event that cannot follow. */
function foldAll(history: readonly HistoryEvent[]): Map<string, unknown> {
  const states = new Map<string, unknown>();
  for (const { streamId, event } of history) {
    const aggregate = EVENT_CATALOG[event.type].aggregate;
    expect(streamId.startsWith(`${aggregate}-`)).toBe(true);
    const decider = DECIDERS[aggregate] as Decider<any, DomainEvent, unknown>;
    states.set(streamId, decider.evolve(states.get(streamId) ?? decider.initialState(), event));
  }
  return states;
}

function atMsOf(event: DomainEvent): number {
  return event.data.atMs;
}

describe('history generator', () => {
  it('produces histories every aggregate folds, with strictly increasing times', () => {
    fc.assert(
      fc.property(historyArbitrary(), (history) => {
        foldAll(history);
        for (let i = 1; i < history.length; i += 1) expect(atMsOf(history[i]!.event)).toBeGreaterThan(atMsOf(history[i - 1]!.event));
      }),
      { numRuns: 60 },
    );
  });

  it('covers every event type across a few samples and spans several days', () => {
    const seen = new Set<string>();
    let spanMs = 0;
    for (let seed = 1; seed <= 4; seed += 1) {
      const history = generateHistory(seed, { runs: 3, assignments: 40 });
      history.forEach(({ event }) => seen.add(event.type));
      spanMs = Math.max(spanMs, atMsOf(history.at(-1)!.event) - atMsOf(history[0]!.event));
    }
    expect([...DOMAIN_EVENT_TYPES].filter((type) => !seen.has(type))).toEqual([]);
    expect(spanMs).toBeGreaterThan(2 * 86_400_000);
  });

  it('is deterministic per seed and keys payment hashes to sha256 of their preimage', () => {
    expect(generateHistory(7, { runs: 2, assignments: 10 })).toEqual(generateHistory(7, { runs: 2, assignments: 10 }));
    const preimage = preimageFor('a1', 'escrow');
    expect(paymentHashFor('a1', 'escrow')).toBe(createHash('sha256').update(Buffer.from(preimage, 'hex')).digest('hex'));
    const settled = generateHistory(3, { runs: 2, assignments: 30 }).find((h) => h.event.type === 'InvoiceSettled');
    expect(settled).toBeDefined();
  });

  it('scales linearly enough for large benchmark histories', () => {
    const started = performance.now();
    const history = generateHistory(11, { runs: 20, assignments: 4_000 });
    expect(history.length).toBeGreaterThan(20_000);
    expect(performance.now() - started).toBeLessThan(20_000);
  });
});
