// $all positions: the client's {commit, prepare} as the port's LogPosition, and a checkpoint's text form.

import { START, type Position, type ReadPosition } from '@eventstore/db-client';
import { LOG_START, comparePositions, type LogPosition } from '../../domain/ports/event-store.js';
import { EventStoreError } from '../../domain/ports/event-store-errors.js';

/**
 * The port orders positions by (transactionId, globalPosition); $all is ordered by (commit, prepare).
 * So commit goes in transactionId and prepare in globalPosition, and comparePositions orders ESDB
 * positions exactly as $all does. They are NOT contiguous: they are byte offsets in the transaction
 * file, with gaps for system events, other streams' metadata and scavenged records. Nothing above
 * the port may compute "the next position" or count events by subtracting positions.
 */
export function toLogPosition(position: Position): LogPosition {
  return { transactionId: position.commit, globalPosition: position.prepare };
}

export function toClientPosition(position: LogPosition): Position {
  return { commit: position.transactionId, prepare: position.globalPosition };
}

/**
 * Whether a stream read carried a real $all position. The client always fills one in (protobuf
 * defaults), so "absent" never reaches this adapter as undefined: servers before 21.10 answer stream
 * reads with commit = prepare = 2^64 - 1 ("no position"); 0/0 is a real position (the log's start).
 */
export function hasLogPosition(position: Position | undefined): position is Position {
  if (position === undefined) return false;
  if (position.commit === NO_POSITION_U64 && position.prepare === NO_POSITION_U64) return false;
  return position.commit >= 0n && position.prepare >= 0n && position.commit <= NO_POSITION_U64 - 1n && position.prepare <= NO_POSITION_U64 - 1n;
}

/** What old servers send for "this read has no $all position". */
export const NO_POSITION_U64 = (1n << 64n) - 1n;

/** Where a forward read of $all starts for "strictly after `after`": START for the log's start, else `after` itself (inclusive; the caller drops it). */
export function readFrom(after: LogPosition): ReadPosition {
  return after.transactionId === LOG_START.transactionId && after.globalPosition === LOG_START.globalPosition ? START : toClientPosition(after);
}

/** Longest decimal a 64-bit position needs (2^64 - 1 has 20 digits). */
const MAX_POSITION_DIGITS = 20;
const CHECKPOINT_PATTERN = new RegExp(`^(\\d{1,${MAX_POSITION_DIGITS}})/(\\d{1,${MAX_POSITION_DIGITS}})$`);
const MAX_U64 = (1n << 64n) - 1n;

/** A checkpoint as stored in its stream: "commit/prepare" in decimal, exact at any size (no float touches it). */
export function encodeCheckpoint(position: LogPosition): string {
  if (position.transactionId < 0n || position.globalPosition < 0n || position.transactionId > MAX_U64 || position.globalPosition > MAX_U64) {
    throw new EventStoreError('INVALID_CHECKPOINT', `a checkpoint position is two unsigned 64-bit integers, got ${position.transactionId}/${position.globalPosition}`);
  }
  return `${position.transactionId}/${position.globalPosition}`;
}

export function decodeCheckpoint(text: unknown): LogPosition {
  const match = typeof text === 'string' ? CHECKPOINT_PATTERN.exec(text) : null;
  if (!match) throw new EventStoreError('INVALID_CHECKPOINT', `a stored checkpoint must read "commit/prepare" in decimal, got ${JSON.stringify(text)?.slice(0, 80)}`);
  const position = { transactionId: BigInt(match[1]!), globalPosition: BigInt(match[2]!) };
  if (position.transactionId > MAX_U64 || position.globalPosition > MAX_U64) throw new EventStoreError('INVALID_CHECKPOINT', `checkpoint ${text} is beyond 64 bits`);
  return position;
}

export type CheckpointDecision =
  /** Append the new checkpoint at exactly this revision of its stream (null: the stream is new). */
  | Readonly<{ kind: 'write'; afterRevision: number | null }>
  /** The stored checkpoint is this position already. */
  | Readonly<{ kind: 'skip' }>;

/**
 * A checkpoint only moves forwards: two runners of one subscription (a misconfiguration, or a
 * replaced process still finishing its batch) must not let the slower one set it back, which would
 * hand every event since over again. The one backward move allowed is to LOG_START: the explicit
 * "replay from scratch" an operator or a test asks for. The append then goes in at exactly the stream's
 * last revision, so a concurrent save between this read and that append is seen and decided again.
 */
export function decideCheckpoint(subscriptionId: string, stored: { position: LogPosition; revision: number } | null, next: LogPosition): CheckpointDecision {
  if (stored === null) return { kind: 'write', afterRevision: null };
  const order = comparePositions(next, stored.position);
  if (order === 0) return { kind: 'skip' };
  if (order < 0 && comparePositions(next, LOG_START) !== 0) {
    throw new EventStoreError('CHECKPOINT_BACKWARDS', `checkpoint ${subscriptionId} is at ${encodeCheckpoint(stored.position)}; refusing to move it back to ${encodeCheckpoint(next)} (is a second runner of this subscription going? LOG_START resets it on purpose)`);
  }
  return { kind: 'write', afterRevision: stored.revision };
}
