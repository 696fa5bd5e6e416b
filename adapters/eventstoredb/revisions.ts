// Expected and current revisions between the port (numbers, 'no_stream', ...) and @eventstore/db-client (bigint, NO_STREAM, ...).

import { ANY, NO_STREAM, STREAM_EXISTS, type AppendExpectedRevision, type CurrentRevision } from '@eventstore/db-client';
import type { ExpectedRevision } from '../../domain/ports/event-store.js';
import { WrongExpectedRevisionError } from '../../domain/ports/event-store-errors.js';

/** The port's revision of a stream's last event, or null for a stream with no events. */
export type StreamHeadRevision = number | null;

/** The port's expectation as the client spells it: a revision becomes a bigint, the rest map one to one. */
export function toClientExpectedRevision(expected: ExpectedRevision): AppendExpectedRevision {
  if (expected === 'any') return ANY;
  if (expected === 'no_stream') return NO_STREAM;
  if (expected === 'stream_exists') return STREAM_EXISTS;
  return BigInt(expected);
}

/**
 * What the append actually sends: the exact head it chained onto. The hash chain links each event to
 * its predecessor's hash, so an append chained onto revision r must land right after r or not at all;
 * sending the caller's looser 'any' or 'stream_exists' would let a racing writer slip in between and
 * leave a broken link. The caller's own expectation is checked first (checkExpectation).
 */
export function chainedExpectedRevision(head: StreamHeadRevision): AppendExpectedRevision {
  return head === null ? NO_STREAM : BigInt(head);
}

/** The client's current revision (from a WrongExpectedVersion) as the port reports it. */
export function fromClientCurrentRevision(current: CurrentRevision | undefined): number | 'no_stream' {
  if (current === undefined || current === NO_STREAM) return 'no_stream';
  // Revisions stay below 2^53: a stream of 9 quadrillion events is not something this ledger writes.
  if (typeof current !== 'bigint' || current < 0n || current > BigInt(Number.MAX_SAFE_INTEGER)) return 'no_stream';
  return Number(current);
}

/** A client revision (bigint) read from an event, as a port revision; refuses what cannot be one. */
export function fromClientRevision(revision: bigint): number {
  if (revision < 0n || revision > BigInt(Number.MAX_SAFE_INTEGER)) throw new RangeError(`stream revision ${revision} is outside 0..2^53-1`);
  return Number(revision);
}

/** Whether the caller's expectation holds against the head this append read, as the PostgreSQL store decides it. */
export function expectationHolds(expected: ExpectedRevision, head: StreamHeadRevision): boolean {
  if (expected === 'any') return true;
  if (expected === 'no_stream') return head === null;
  if (expected === 'stream_exists') return head !== null;
  return head !== null && head === expected;
}

export function checkExpectation(streamId: string, expected: ExpectedRevision, head: StreamHeadRevision): void {
  if (!expectationHolds(expected, head)) throw new WrongExpectedRevisionError(streamId, expected, head === null ? 'no_stream' : head);
}
